package tickets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/projections/tickets"
	"github.com/opsdesk/opsdesk/services/intake/migrations"
)

// owners maps each test database's pool (acting as pgdb.AppRole, under
// row-level security) to a pool of the table owner, which sees every
// tenant's rows.
var owners sync.Map

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, url := pgtest.NewDB(t)
	if err := pgdb.Migrate(context.Background(), pool, "intake", migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	owners.Store(pool, pgtest.Owner(t, url))
	return pool
}

func owner(pool *pgxpool.Pool) *pgxpool.Pool {
	o, _ := owners.Load(pool)
	return o.(*pgxpool.Pool)
}

// apply applies events in one transaction, as the runner does: each in its
// own tenant (the tables force row-level security).
func apply(t *testing.T, pool *pgxpool.Pool, events ...es.Event) error {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	for _, e := range events {
		if err := pgdb.SetTenant(ctx, tx, e.Tenant); err != nil {
			return err
		}
		if err := (tickets.Projection{}).Apply(ctx, tx, e); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

var t0 = time.Date(2025, 11, 3, 9, 0, 0, 0, time.UTC)

func created(seq uint64, tenant string, n int, at time.Time) es.Event {
	id := fmt.Sprintf("tk_01JB8ZQ5M6V8Y0K3W4X2N7R%03d", n)
	data, _ := json.Marshal(ticketv1.TicketCreated{
		TicketID: id, Number: fmt.Sprintf("OPS-%d", n), Type: ticketv1.TypeIncident,
		Title: fmt.Sprintf("Ticket %d", n), Description: "printer jam", Impact: "low", Urgency: "low",
		Priority: "P5", Requester: "a@example.com", Channel: "api", CreatedAt: at,
	})
	return es.Event{
		ID: fmt.Sprintf("01JB8ZQ5M6V8Y0K3W4X2N7E%03d", seq), Type: ticketv1.TypeTicketCreated,
		Source: ticketv1.Source, Tenant: tenant, AggregateID: id, Time: at, Actor: "a@example.com",
		Data: data, Subject: "ticket." + tenant + "." + id, Sequence: seq,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

func other(seq uint64, of es.Event, typ string) es.Event {
	return es.Event{
		ID: fmt.Sprintf("01JB8ZQ5M6V8Y0K3W4X2N7E%03d", seq), Type: typ, Source: ticketv1.Source,
		Tenant: of.Tenant, AggregateID: of.AggregateID, Time: of.Time.Add(time.Minute), Actor: "bob",
		Data: []byte(`{"note":"hi"}`), Subject: of.Subject, Sequence: seq,
	}
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := owner(pool).QueryRow(context.Background(), "SELECT count(*) FROM intake."+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	rm := tickets.NewReadModel(pool)
	c := created(1, "ten", 1, t0)
	later := other(2, c, "opsdesk.ticket.commented.v1")
	for range 2 { // a redelivery past the checkpoint must not change anything
		if err := apply(t, pool, c, later); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, "tickets"); n != 1 {
		t.Fatalf("%d tickets", n)
	}
	if n := count(t, pool, "ticket_events"); n != 2 {
		t.Fatalf("%d events", n)
	}
	ctx := context.Background()
	got, err := rm.Ticket(ctx, query.Scope{Tenant: "ten"}, c.AggregateID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !got.UpdatedAt.Equal(later.Time) || !got.CreatedAt.Equal(t0) || got.Status != "new" || got.Priority != "P5" {
		t.Fatalf("ticket %+v", got)
	}
	evs, err := rm.Events(ctx, query.Scope{Tenant: "ten"}, "OPS-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Version != 1 || evs[1].Version != 2 || evs[0].Sequence != 1 ||
		evs[0].TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || evs[1].TraceID != "" || evs[1].Type != "opsdesk.ticket.commented.v1" {
		t.Fatalf("events %+v", evs)
	}
}

func TestApplyRejectsPoison(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	good := created(1, "ten", 1, t0)
	if err := apply(t, pool, good); err != nil {
		t.Fatal(err)
	}
	badJSON := created(2, "ten", 2, t0)
	badJSON.Data = []byte(`{"ticket_id":`)
	badSubject := created(3, "ten", 3, t0)
	badSubject.Subject = "ticket.ten"
	mismatch := created(4, "ten", 4, t0)
	mismatch.Subject = "ticket.ten.tk_other"
	dupNumber := created(5, "ten", 5, t0)
	{
		var p ticketv1.TicketCreated
		_ = json.Unmarshal(dupNumber.Data, &p)
		p.Number = "OPS-1" // already taken by another ticket
		dupNumber.Data, _ = json.Marshal(p)
	}
	orphan := other(6, created(0, "ten", 9, t0), "opsdesk.ticket.commented.v1")
	for name, e := range map[string]es.Event{
		"undecodable created": badJSON, "short subject": badSubject, "id mismatch": mismatch,
		"duplicate number": dupNumber, "event before created": orphan,
	} {
		if err := apply(t, pool, e); err == nil {
			t.Errorf("%s: applied", name)
		}
	}
	if n := count(t, pool, "tickets"); n != 1 {
		t.Fatalf("%d tickets after rejected events", n)
	}
	if n := count(t, pool, "ticket_events"); n != 1 {
		t.Fatalf("%d events after rejected events", n)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	if err := apply(t, pool, created(1, "ten", 1, t0)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := (tickets.Projection{}).Reset(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if count(t, pool, "tickets")+count(t, pool, "ticket_events") != 0 {
		t.Fatal("reset left rows")
	}
	// Replaying after a reset rebuilds the same row.
	if err := apply(t, pool, created(1, "ten", 1, t0)); err != nil || count(t, pool, "tickets") != 1 {
		t.Fatalf("replay after reset: %v", err)
	}
}

// TestKeysetWithTies pages through tickets created in the same microsecond:
// the id breaks the tie, so no page repeats or skips one.
func TestKeysetWithTies(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	var events []es.Event
	for i := 1; i <= 10; i++ {
		at := t0
		if i > 7 {
			at = t0.Add(time.Duration(i) * time.Microsecond)
		}
		events = append(events, created(uint64(i), "ten", i, at))
	}
	if err := apply(t, pool, events...); err != nil {
		t.Fatal(err)
	}
	rm := tickets.NewReadModel(pool)
	ctx := context.Background()
	var got []string
	f := query.Filter{Limit: 3}
	for {
		page, err := rm.List(ctx, query.Scope{Tenant: "ten"}, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got = append(got, it.Number)
		}
		if page.Next == nil {
			break
		}
		// The cursor survives its opaque form.
		cur, err := query.DecodeCursor(page.Next.Encode())
		if err != nil {
			t.Fatal(err)
		}
		f.After = &cur
	}
	want := []string{"OPS-10", "OPS-9", "OPS-8", "OPS-7", "OPS-6", "OPS-5", "OPS-4", "OPS-3", "OPS-2", "OPS-1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
}

func TestReadModelIsTenantScoped(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	a := created(1, "tenant_a", 1, t0)
	if err := apply(t, pool, a); err != nil {
		t.Fatal(err)
	}
	rm := tickets.NewReadModel(pool)
	ctx := context.Background()
	for _, ref := range []string{a.AggregateID, "OPS-1"} {
		if _, err := rm.Ticket(ctx, query.Scope{Tenant: "tenant_b"}, ref); !errors.Is(err, query.ErrNotFound) {
			t.Errorf("Ticket(%s) from tenant_b: %v", ref, err)
		}
		if _, err := rm.Events(ctx, query.Scope{Tenant: "tenant_b"}, ref); !errors.Is(err, query.ErrNotFound) {
			t.Errorf("Events(%s) from tenant_b: %v", ref, err)
		}
		if _, err := rm.Ticket(ctx, query.Scope{Tenant: "tenant_a"}, ref); err != nil {
			t.Errorf("Ticket(%s) from tenant_a: %v", ref, err)
		}
	}
	page, err := rm.List(ctx, query.Scope{Tenant: "tenant_b"}, query.Filter{Query: "printer"})
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("tenant_b list: %v %+v", err, page)
	}
}

// applyBatch applies events in one transaction as the runner does: one
// ApplyBatch call per run of events of one tenant, with that tenant set.
func applyBatch(t *testing.T, pool *pgxpool.Pool, events ...es.Event) error {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	for len(events) > 0 {
		n := 1
		for n < len(events) && events[n].Tenant == events[0].Tenant {
			n++
		}
		if err := pgdb.SetTenant(ctx, tx, events[0].Tenant); err != nil {
			return err
		}
		if err := (tickets.Projection{}).ApplyBatch(ctx, tx, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	return tx.Commit(ctx)
}

// dump returns both tables' rows as text, in a stable order.
func dump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	err := owner(pool).QueryRow(context.Background(), `
SELECT coalesce((SELECT string_agg(t::text, E'\n' ORDER BY tenant_id, id) FROM intake.tickets t), '') || E'\n--\n' ||
       coalesce((SELECT string_agg(e::text, E'\n' ORDER BY seq) FROM intake.ticket_events e), '')`).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyBatchMatchesApply folds the same mixed history (creations of two
// tenants, later events on tickets created earlier in the same batch and
// in an earlier one) through ApplyBatch and through Apply one event at a
// time: the read models must be identical, and a repeat must change nothing.
func TestApplyBatchMatchesApply(t *testing.T) {
	t.Parallel()
	first := created(1, "ten", 1, t0)
	c2 := created(3, "ten", 2, t0.Add(time.Second))
	c3 := created(4, "other", 3, t0.Add(2*time.Second))
	batch := []es.Event{
		other(2, first, "opsdesk.ticket.commented.v1"),
		c2, c3,
		other(5, c2, "opsdesk.ticket.commented.v1"),
		created(6, "ten", 4, t0.Add(3*time.Second)),
		other(7, c3, "opsdesk.ticket.assigned.v1"),
		other(8, c3, "opsdesk.ticket.commented.v1"),
	}

	oneByOne := newDB(t)
	if err := apply(t, oneByOne, append([]es.Event{first}, batch...)...); err != nil {
		t.Fatal(err)
	}
	batched := newDB(t)
	if err := applyBatch(t, batched, first); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time is a redelivery: no change
		if err := applyBatch(t, batched, batch...); err != nil {
			t.Fatal(err)
		}
	}
	want, got := dump(t, oneByOne), dump(t, batched)
	if got != want {
		t.Fatalf("ApplyBatch read model:\n%s\nApply read model:\n%s", got, want)
	}
	if n := count(t, batched, "ticket_events"); n != 8 {
		t.Fatalf("%d events, want 8", n)
	}
	page, err := tickets.NewReadModel(batched).List(context.Background(), query.Scope{Tenant: "ten"}, query.Filter{Query: "printer"})
	if err != nil || len(page.Items) != 3 {
		t.Fatalf("search after ApplyBatch: %v, %d items", err, len(page.Items))
	}
}

// TestApplyBatchFailsWhole shows that one bad event fails the whole call,
// so the runner can fall back to Apply per event to find it.
func TestApplyBatchFailsWhole(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	mismatch := created(2, "ten", 2, t0)
	mismatch.Subject = "ticket.ten.tk_other"
	badJSON := created(2, "ten", 2, t0)
	badJSON.Data = []byte(`{"ticket_id":`)
	dupNumber := created(2, "ten", 2, t0)
	{
		var p ticketv1.TicketCreated
		_ = json.Unmarshal(dupNumber.Data, &p)
		p.Number = "OPS-1" // the number of the first event of the batch
		dupNumber.Data, _ = json.Marshal(p)
	}
	orphan := other(2, created(0, "ten", 9, t0), "opsdesk.ticket.commented.v1")
	for name, bad := range map[string]es.Event{
		"id mismatch": mismatch, "undecodable": badJSON, "duplicate number": dupNumber, "event before created": orphan,
	} {
		if err := applyBatch(t, pool, created(1, "ten", 1, t0), bad, created(3, "ten", 3, t0)); err == nil {
			t.Errorf("%s: batch applied", name)
		}
	}
	if n := count(t, pool, "tickets") + count(t, pool, "ticket_events"); n != 0 {
		t.Fatalf("%d rows left by failed batches", n)
	}
}

// TestRequesterScope: a requester's scope shows only the tickets whose
// requester_id is theirs, and every other ticket is not found.
func TestRequesterScope(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	withRequester := func(e es.Event, user string) es.Event {
		var p ticketv1.TicketCreated
		_ = json.Unmarshal(e.Data, &p)
		p.RequesterID = user
		e.Data, _ = json.Marshal(p)
		return e
	}
	const ada, bob = "u_01JB8ZQ5M6V8Y0K3W4X2N7RADA", "u_01JB8ZQ5M6V8Y0K3W4X2N7RB0B"
	mine := withRequester(created(1, "ten", 1, t0), ada)
	theirs := withRequester(created(2, "ten", 2, t0.Add(time.Second)), bob)
	anonymous := created(3, "ten", 3, t0.Add(2*time.Second))
	if err := applyBatch(t, pool, mine, theirs, anonymous); err != nil {
		t.Fatal(err)
	}
	rm := tickets.NewReadModel(pool)
	ctx := context.Background()
	own := query.Scope{Tenant: "ten", Requester: ada}
	page, err := rm.List(ctx, own, query.Filter{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != mine.AggregateID || page.Items[0].RequesterID != ada {
		t.Fatalf("ada's list: %v %+v", err, page.Items)
	}
	for _, ref := range []string{theirs.AggregateID, "OPS-2", anonymous.AggregateID} {
		if _, err := rm.Ticket(ctx, own, ref); !errors.Is(err, query.ErrNotFound) {
			t.Errorf("ada gets %s: %v, want not found", ref, err)
		}
		if _, err := rm.Events(ctx, own, ref); !errors.Is(err, query.ErrNotFound) {
			t.Errorf("ada gets the events of %s: %v, want not found", ref, err)
		}
	}
	if _, err := rm.Events(ctx, own, "OPS-1"); err != nil {
		t.Errorf("ada's own events: %v", err)
	}
	if page, err := rm.List(ctx, query.Scope{Tenant: "ten"}, query.Filter{}); err != nil || len(page.Items) != 3 {
		t.Fatalf("the tenant's list: %v, %d items", err, len(page.Items))
	}
}
