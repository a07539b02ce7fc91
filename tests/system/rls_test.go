package system_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/testwait"
)

// rlsExempt are the tables of the service schemas that hold no tenant's
// data, and why; every other table must carry tenant_id (or be
// identity.tenants) and force row-level security.
var rlsExempt = map[string]string{
	"identity.tenant_directory":       "slug -> tenant id for sign-in before any tenant is known; which slugs exist is no secret",
	"identity.signing_keys":           "installation-wide Ed25519 keys, private halves sealed",
	"identity.login_attempts":         "installation-wide failure counters keyed by a SHA-256 (no address or e-mail stored)",
	"identity.projection_checkpoints": "one row per projection: a stream position",
	"intake.projection_checkpoints":   "one row per projection: a stream position",
	"identity.goose_db_version":       "migration versions",
	"intake.goose_db_version":         "migration versions",
	// The auto-close sweeper reads it across tenants; checked below to hold
	// nothing but the ids and the time.
	"intake.due_closures": "the auto-close timer: tenant id, ticket id and a due time, read across tenants by the sweeper",
}

// dueClosuresColumns are all intake.due_closures may hold, row-level
// security being off on it.
var dueClosuresColumns = []string{"due_at", "tenant_id", "ticket_id"}

// TestRowLevelSecurity (issue 3): with data of three tenants in every
// table (a provider and two clients: users, credentials, grants, groups,
// API tokens and their use, refresh tokens, password resets, tickets and
// their events, comments, attachments and their blobs, links, inbound mail,
// resolutions, idempotency keys, alert incidents and quarantined payloads),
// a connection acting as the services' role sees, in a
// transaction of tenant A, only A's rows of every tenant table, all of them,
// and without a tenant none; each such table forces row-level security and
// is not owned by that role. Tables are discovered from the catalog: a new
// one is checked, or must be listed as exempt.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	admin := s.signIn(providerSlug, adminEmail, adminPassword).Access
	home := s.me(admin)
	provider := home.TenantID
	client1, client2 := s.createTenant(admin, "northwind"), s.createTenant(admin, "contoso")
	s.grant(admin, home.ID, client1, auth.RoleAdmin)
	s.grant(admin, home.ID, client2, auth.RoleAdmin)
	admin = s.signIn(providerSlug, adminEmail, adminPassword).Access
	tenants := map[string]string{provider: providerSlug, client1: "northwind", client2: "contoso"}
	names := map[string]string{provider: "provider", client1: "client1", client2: "client2"}

	for id, slug := range tenants {
		in := []header(nil)
		if id != provider {
			in = acting(id)
		}
		email, pw := "ada@"+slug+".example", "passphrase of ada in "+slug
		s.onboard(admin, email, pw, []string{auth.RoleAgent}, in...)
		s.createGroup(admin, "Desk of "+slug, in...)
		_, apiToken := s.createAPITokenSecret(admin, "Integration of "+slug, in...)
		tk := s.createTicket(admin, "Ticket of "+slug, in...)
		intakeData(t, s, admin, slug, tk.ID, in...)
		s.signIn(slug, email, pw) // a refresh token
		expect(t, s.do(http.MethodPost, "/v1/auth/password-reset", "", map[string]string{"tenant": slug, "email": email}),
			http.StatusAccepted, "password reset in "+slug)
		// The API token's use is recorded (through NATS, asynchronously);
		// the token works once the verifiers have seen its creation.
		testwait.Until(t, 5*time.Second, "the API token of "+slug+" accepted at intake", func() bool {
			return s.do(http.MethodGet, "/v1/tickets", apiToken, nil).status == http.StatusOK
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owned := func(table string) map[string]int { // rows per tenant, as the owner sees them
		col := "tenant_id"
		if table == "identity.tenants" {
			col = "id"
		}
		rows, err := s.owner.Query(ctx, "SELECT "+col+", count(*) FROM "+table+" GROUP BY 1")
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		out := map[string]int{}
		for rows.Next() {
			var tenant string
			var n int
			if err := rows.Scan(&tenant, &n); err != nil {
				t.Fatal(err)
			}
			out[tenant] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Every tenant has rows in each table its data goes to (the read models
	// and the asynchronous ones caught up); user_grants only in the provider.
	testwait.Until(t, 10*time.Second, "every tenant's rows in every tenant table", func() bool {
		for _, table := range []string{"identity.users", "identity.groups", "identity.api_tokens", "identity.credentials",
			"identity.refresh_tokens", "identity.password_resets", "identity.api_token_usage", "intake.tickets", "intake.ticket_events",
			"intake.ticket_comments", "intake.ticket_attachments", "intake.ticket_links", "intake.message_ids", "intake.due_closures",
			"intake.idempotency_keys", "intake.blobs", "intake.alert_incidents", "intake.quarantine"} {
			got := owned(table)
			for id := range tenants {
				if got[id] == 0 {
					return false
				}
			}
		}
		return owned("identity.user_grants")[provider] > 0
	})

	app, err := pgdb.Connect(ctx, s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var role string
	if err := app.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != pgdb.AppRole {
		t.Fatalf("pgdb.Connect acts as %q (%v), want %s", role, err, pgdb.AppRole)
	}

	type table struct {
		name                    string
		rls, force, hasTenantID bool
		owner                   string
	}
	rows, err := s.owner.Query(ctx, `
SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
       EXISTS (SELECT 1 FROM information_schema.columns col
                WHERE col.table_schema = n.nspname AND col.table_name = c.relname AND col.column_name = 'tenant_id')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('identity', 'intake') AND c.relkind IN ('r', 'p')
 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var x table
		return x, r.Scan(&x.name, &x.rls, &x.force, &x.owner, &x.hasTenantID)
	})
	if err != nil {
		t.Fatal(err)
	}

	var report strings.Builder
	checked := 0
	for _, tb := range tables {
		if why, ok := rlsExempt[tb.name]; ok {
			if tb.name == "intake.due_closures" {
				var cols []string
				err := s.owner.QueryRow(ctx, `SELECT array_agg(column_name::text ORDER BY column_name) FROM information_schema.columns
					WHERE table_schema = 'intake' AND table_name = 'due_closures'`).Scan(&cols)
				if err != nil || !slices.Equal(cols, dueClosuresColumns) {
					t.Errorf("%s, without row-level security, holds %v (%v); want only %v", tb.name, cols, err, dueClosuresColumns)
				}
			}
			fmt.Fprintf(&report, "  %-32s exempt: %s\n", tb.name, why)
			continue
		}
		if !tb.hasTenantID && tb.name != "identity.tenants" {
			t.Errorf("table %s has no tenant_id and is not listed as exempt: classify it", tb.name)
			continue
		}
		checked++
		if !tb.rls || !tb.force {
			t.Errorf("table %s: row level security enabled %v, forced %v; want both", tb.name, tb.rls, tb.force)
		}
		if tb.owner == pgdb.AppRole {
			t.Errorf("table %s is owned by %s, which row-level security then does not hold back", tb.name, pgdb.AppRole)
		}
		perTenant := owned(tb.name)
		if len(perTenant) == 0 {
			t.Errorf("table %s holds no row: the test made no data for it, so isolation is not checked", tb.name)
		}

		var line []string
		for _, a := range []string{provider, client1, client2} {
			var visible int
			err := pgdb.InTenantTx(ctx, app, a, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, "SELECT * FROM "+tb.name)
				if err != nil {
					return err
				}
				defer rows.Close()
				idx := map[string]int{}
				for i, fd := range rows.FieldDescriptions() {
					idx[fd.Name] = i
				}
				for rows.Next() {
					vals, err := rows.Values()
					if err != nil {
						return err
					}
					visible++
					if tb.name == "identity.tenants" {
						// A tenant sees itself and its children (a provider its clients).
						if id, parent := vals[idx["id"]], vals[idx["parent_id"]]; id != a && parent != a {
							t.Errorf("%s: %s sees tenant %v (parent %v)", tb.name, names[a], id, parent)
						}
					} else if owner := vals[idx["tenant_id"]]; owner != a {
						t.Errorf("%s: in a transaction of %s, a row of %v is visible: %v", tb.name, names[a], owner, vals)
					}
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatalf("%s as %s: %v", tb.name, names[a], err)
			}
			want := perTenant[a]
			if tb.name == "identity.tenants" && a == provider {
				want += perTenant[client1] + perTenant[client2]
			}
			if visible != want {
				t.Errorf("%s: %s sees %d rows, owns %d", tb.name, names[a], visible, want)
			}
			line = append(line, fmt.Sprintf("%s %d", names[a], visible))
		}
		// Without a tenant, nothing.
		var none int
		err := pgdb.InTx(ctx, app, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM "+tb.name).Scan(&none)
		})
		if err != nil || none != 0 {
			t.Errorf("%s: without app.tenant_id, %d rows are visible (%v)", tb.name, none, err)
		}
		fmt.Fprintf(&report, "  %-32s forced RLS, owner %s; visible: %s; no tenant: %d\n", tb.name, tb.owner, strings.Join(line, ", "), none)
	}
	if checked == 0 || !slices.ContainsFunc(tables, func(x table) bool { return x.name == "intake.tickets" }) {
		t.Fatalf("no tenant tables found: %+v", tables)
	}
	t.Logf("row-level security, %d tenant tables checked:\n%s", checked, report.String())
}

// intakeData gives the tenant the caller acts in rows in every intake
// table: a comment, an upload, a link, an inbound mail (its Message-ID, the
// raw message and its attachment), a resolved ticket (the auto-close
// timer), an idempotent create, an alert incident and a quarantined payload.
func intakeData(t *testing.T, s *stack, token, slug, ticketID string, in ...header) {
	t.Helper()
	expect(t, s.do(http.MethodPost, "/v1/tickets/"+ticketID+"/comments", token, map[string]string{"body": "A reply in " + slug}, in...),
		http.StatusOK, "comment in "+slug)
	s.upload(token, ticketID, "notes-"+slug+".txt", in...)
	other := s.createTicket(token, "Related ticket of "+slug, in...)
	expect(t, s.do(http.MethodPost, "/v1/tickets/"+ticketID+"/links", token, map[string]string{"kind": "related", "target": other.ID}, in...),
		http.StatusOK, "link in "+slug)
	s.resolve(token, other.ID, in...)
	mail := rfc822("someone@"+slug+".example", slug+"@opsdesk.localhost", "Mail to "+slug, "rls-"+slug+"@"+slug+".example")
	a := expect(t, s.do(http.MethodPost, "/v1/inbound/email", token, mail, append(in, hdr("Content-Type", ctypeRFC822)...)...),
		http.StatusOK, "inbound mail in "+slug)
	if !strings.Contains(string(a.body), `"outcome":"created"`) {
		t.Fatalf("inbound mail in %s: %s", slug, a.body)
	}
	expect(t, s.do(http.MethodPost, "/v1/tickets", token, map[string]string{
		"type": "incident", "title": "Idempotent ticket of " + slug, "impact": "low", "urgency": "low",
	}, append(in, hdr("Idempotency-Key", "rls-"+slug)...)...), http.StatusCreated, "idempotent create in "+slug)
	expect(t, s.do(http.MethodPost, "/v1/inbound/alerts", token, map[string]string{"title": "Disk full", "severity": "high", "group": "db"}, in...),
		http.StatusOK, "alert in "+slug)
	s.quarantineAlert(token, in...)
}
