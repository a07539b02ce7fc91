package system_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/testwait"
)

// Principals of the authorization matrix.
const (
	pAdmin      = "admin"      // the provider's bootstrap admin (operator tenant), granted admin in client1 and client2
	pOperator   = "operator"   // a provider agent granted agent in client1 only: the MSP operator
	pRequester  = "requester"  // provider users with one role each
	pAgent      = "agent"      //
	pSupervisor = "supervisor" //
	pForeign    = "c2admin"    // the admin of client2, "another tenant"
)

// roleUser is the provider user holding exactly that role.
var roleUser = map[string]string{
	auth.RoleRequester: pRequester, auth.RoleAgent: pAgent, auth.RoleSupervisor: pSupervisor, auth.RoleAdmin: pAdmin,
}

// matrixFixtures is what the matrix's requests name.
type matrixFixtures struct {
	s              *stack
	provider       string
	client1, slug1 string
	client2        string
	client3        string // suspended and reactivated by the matrix
	tokens         map[string]string
	passwords      map[string]string
	emails         map[string]string

	// Resources of client1.
	user, suspendee, leaver, pwUser string
	grantee                         string // a provider user granted (and revoked) access to client1
	group, doomedGroup              string
	apiToken, doomedAPIToken        string
	ticket                          ticketBody
	// Intake fixtures of client1 (see setUpIntakeMatrix).
	lifecycle   ticketBody // new: opened, started, pended, resolved and reopened by the matrix
	cancellable ticketBody // new: cancelled by the matrix
	rated       ticketBody // resolved, its requester the operator: rated and closed by the matrix
	linkTarget  ticketBody // linked to ticket and unlinked by the matrix
	attachment  string     // a file on ticket
	quarantined string     // a malformed alert payload held in the quarantine
	// Dead letters (platform-wide).
	replayLetter, doomedLetter uint64

	// Markers: ids that must show in client1's lists and never in another tenant's.
	client1Markers, client2Markers []string
}

// req is the concrete request of a route.
type req struct {
	path string
	body any
	// ctype is the body's Content-Type when it is not JSON (multipart
	// uploads, raw mail).
	ctype string
}

// headers are the request's own headers (its Content-Type), then extra.
func (r req) headers(extra ...header) []header {
	if r.ctype == "" {
		return extra
	}
	return append(hdr("Content-Type", r.ctype), extra...)
}

// Kinds of route, by what "another tenant's token" must get.
type routeKind int

const (
	resourceRoute routeKind = iota // names a resource of client1 in its path: 404
	listRoute                      // lists the tenant acted in: nothing of client1
	ownRoute                       // acts on the caller's own tenant (creates, me, logout): naming client1 in X-Acting-Tenant is 404
)

// routeCase is the fixture of one route: how to build a concrete request,
// and who is allowed to call it.
type routeCase struct {
	key  string          // "METHOD /echo/path" as e.Routes() lists it
	perm auth.Permission // for routes outside the OpenAPI documents (the platform's)
	kind routeKind
	// build makes the request every refused call sends (naming client1's
	// resources), and the allowed call unless allowed says otherwise.
	build func(f *matrixFixtures) req
	// allowedAs is who makes the allowed call: "operator@client1",
	// "admin@client1" (acting, by grant) or "admin@home"; empty: the
	// operator when its agent grant has the permission, else admin@client1,
	// admin@home for platform routes.
	allowedAs string
	allowed   func(f *matrixFixtures) req
	token     func(f *matrixFixtures) string // the allowed call's token (default: allowedAs's)
	want      int                            // the allowed call's status
	// foreignWant overrides the 404 of resource and own routes.
	foreignWant int
	check       func(t *testing.T, f *matrixFixtures, a answer) // more checks on the allowed answer
}

// specPermissions maps "METHOD /echo/path" to x-permission for every
// operation of the OpenAPI documents.
func specPermissions(t *testing.T) map[string]auth.Permission {
	t.Helper()
	out := map[string]auth.Permission{}
	files, err := filepath.Glob("../../api/openapi/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("OpenAPI documents: %v %v", files, err)
	}
	for _, file := range files {
		doc, err := openapi3.NewLoader().LoadFromFile(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				perm, ok := op.Extensions[auth.ExtensionPermission].(string)
				if !ok {
					t.Fatalf("%s: %s %s has no %s", file, method, path, auth.ExtensionPermission)
				}
				out[strings.ToUpper(method)+" "+auth.EchoPath(path)] = auth.Permission(perm)
			}
		}
	}
	return out
}

// platformPublic are the platform's own routes that take no credential.
var platformPublic = []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /services"}

func routeCases() []routeCase {
	okList := func(marker func(f *matrixFixtures) string) func(t *testing.T, f *matrixFixtures, a answer) {
		return func(t *testing.T, f *matrixFixtures, a answer) {
			t.Helper()
			if m := marker(f); !bytes.Contains(a.body, []byte(m)) {
				t.Errorf("client1's list lacks %s: %s", m, a.body)
			}
			for _, m := range append([]string{f.client2}, f.client2Markers...) {
				if bytes.Contains(a.body, []byte(m)) {
					t.Errorf("client1's list shows %s of another tenant: %s", m, a.body)
				}
			}
		}
	}
	path := func(format string, ids ...func(f *matrixFixtures) string) func(f *matrixFixtures) req {
		return func(f *matrixFixtures) req {
			args := make([]any, len(ids))
			for i, id := range ids {
				args[i] = id(f)
			}
			return req{path: fmt.Sprintf(format, args...)}
		}
	}
	withBody := func(build func(f *matrixFixtures) req, body any) func(f *matrixFixtures) req {
		return func(f *matrixFixtures) req { r := build(f); r.body = body; return r }
	}
	client1 := func(f *matrixFixtures) string { return f.client1 }
	client3 := func(f *matrixFixtures) string { return f.client3 }
	user := func(f *matrixFixtures) string { return f.user }
	group := func(f *matrixFixtures) string { return f.group }
	ticket := func(f *matrixFixtures) string { return f.ticket.ID }
	static := func(p string) func(f *matrixFixtures) req { return func(*matrixFixtures) req { return req{path: p} } }
	// withRaw sends body as is, with its Content-Type.
	withRaw := func(build func(f *matrixFixtures) req, body func(t testing.TB) ([]byte, string)) func(f *matrixFixtures) req {
		return func(f *matrixFixtures) req {
			r := build(f)
			r.body, r.ctype = body(f.s.t)
			return r
		}
	}
	lifecycle := func(f *matrixFixtures) string { return f.lifecycle.ID }
	cancellable := func(f *matrixFixtures) string { return f.cancellable.ID }
	rated := func(f *matrixFixtures) string { return f.rated.ID }
	linkTarget := func(f *matrixFixtures) string { return f.linkTarget.ID }
	attachment := func(f *matrixFixtures) string { return f.attachment }
	quarantined := func(f *matrixFixtures) string { return f.quarantined }
	// okTicket checks the ticket a command answers.
	okTicket := func(id func(f *matrixFixtures) string, field, want string) func(t *testing.T, f *matrixFixtures, a answer) {
		return func(t *testing.T, f *matrixFixtures, a answer) {
			t.Helper()
			got := decode[map[string]any](t, a)
			if got["id"] != id(f) || fmt.Sprint(got[field]) != want {
				t.Errorf("want ticket %s with %s %s: %s", id(f), field, want, a.body)
			}
		}
	}
	okContains := func(want func(f *matrixFixtures) string) func(t *testing.T, f *matrixFixtures, a answer) {
		return func(t *testing.T, f *matrixFixtures, a answer) {
			t.Helper()
			if w := want(f); !bytes.Contains(a.body, []byte(w)) {
				t.Errorf("answer lacks %s: %s", w, a.body)
			}
		}
	}

	return []routeCase{
		{key: "GET /v1/me", kind: ownRoute, build: static("/v1/me"), want: http.StatusOK,
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				m := decode[me](t, a)
				if m.TenantID != f.client1 || m.HomeTenant != f.provider || !m.Acting || !slices.Equal(m.Roles, []string{auth.RoleAgent}) {
					t.Errorf("GET /v1/me acting in client1: %s", a.body)
				}
			}},
		{key: "POST /v1/auth/logout", kind: ownRoute, build: static("/v1/auth/logout"), want: http.StatusNoContent,
			// Its own session: logging out must not end the operator's session the matrix uses.
			token: func(f *matrixFixtures) string {
				return f.s.signIn(providerSlug, f.emails[pOperator], f.passwords[pOperator]).Access
			}},

		{key: "GET /v1/tenants", kind: listRoute, build: static("/v1/tenants"), want: http.StatusOK,
			check: okList(client1)},
		{key: "POST /v1/tenants", kind: ownRoute, allowedAs: "admin@home", want: http.StatusCreated,
			// A client has no children (409 acting in client1): a provider creates them.
			build: withBody(static("/v1/tenants"), map[string]string{"slug": "tailspin", "name": "Tailspin", "time_zone": "UTC", "locale": "en"})},
		{key: "GET /v1/tenants/:tenant_id", build: path("/v1/tenants/%s", client1), want: http.StatusOK},
		{key: "PATCH /v1/tenants/:tenant_id", build: withBody(path("/v1/tenants/%s", client1), map[string]string{"name": "Northwind Traders"}),
			want: http.StatusOK},
		{key: "POST /v1/tenants/:tenant_id/suspend", build: path("/v1/tenants/%s/suspend", client1),
			// A tenant cannot suspend itself: its provider suspends another client.
			allowedAs: "admin@home", allowed: path("/v1/tenants/%s/suspend", client3), want: http.StatusOK},
		{key: "POST /v1/tenants/:tenant_id/reactivate", build: path("/v1/tenants/%s/reactivate", client1),
			allowedAs: "admin@home", allowed: path("/v1/tenants/%s/reactivate", client3), want: http.StatusOK},

		{key: "GET /v1/users", kind: listRoute, build: static("/v1/users"), want: http.StatusOK, check: okList(user)},
		{key: "POST /v1/users", kind: ownRoute, want: http.StatusCreated,
			build: withBody(static("/v1/users"), map[string]any{"email": "new.hire@northwind.example", "name": "New Hire", "roles": []string{"requester"}})},
		{key: "GET /v1/users/:user_id", build: path("/v1/users/%s", user), want: http.StatusOK},
		{key: "PATCH /v1/users/:user_id", build: withBody(path("/v1/users/%s", user), map[string]string{"name": "Renamed User"}), want: http.StatusOK},
		{key: "POST /v1/users/:user_id/suspend", build: path("/v1/users/%s/suspend", func(f *matrixFixtures) string { return f.suspendee }), want: http.StatusOK},
		{key: "POST /v1/users/:user_id/reactivate", build: path("/v1/users/%s/reactivate", func(f *matrixFixtures) string { return f.suspendee }), want: http.StatusOK},
		{key: "POST /v1/users/:user_id/offboard", build: path("/v1/users/%s/offboard", func(f *matrixFixtures) string { return f.leaver }), want: http.StatusOK},
		{key: "PUT /v1/users/:user_id/password", want: http.StatusNoContent,
			build: withBody(path("/v1/users/%s/password", func(f *matrixFixtures) string { return f.pwUser }), map[string]string{"password": "a brand new passphrase"})},
		// Grants are of provider users, so the provider's admin grants at home.
		{key: "PUT /v1/users/:user_id/grants/:tenant_id", allowedAs: "admin@home", want: http.StatusOK,
			build: withBody(path("/v1/users/%s/grants/%s", func(f *matrixFixtures) string { return f.grantee }, client1), map[string]string{"role": "agent"})},
		{key: "DELETE /v1/users/:user_id/grants/:tenant_id", allowedAs: "admin@home", want: http.StatusOK,
			build: path("/v1/users/%s/grants/%s", func(f *matrixFixtures) string { return f.grantee }, client1)},

		{key: "GET /v1/groups", kind: listRoute, build: static("/v1/groups"), want: http.StatusOK, check: okList(group)},
		{key: "POST /v1/groups", kind: ownRoute, want: http.StatusCreated,
			build: withBody(static("/v1/groups"), map[string]any{"name": "Network Team", "tier": 2})},
		{key: "GET /v1/groups/:group_id", build: path("/v1/groups/%s", group), want: http.StatusOK},
		{key: "PATCH /v1/groups/:group_id", build: withBody(path("/v1/groups/%s", group), map[string]any{"tier": 3}), want: http.StatusOK},
		{key: "DELETE /v1/groups/:group_id", build: path("/v1/groups/%s", func(f *matrixFixtures) string { return f.doomedGroup }), want: http.StatusNoContent},
		{key: "GET /v1/groups/:group_id/members", build: path("/v1/groups/%s/members", group), want: http.StatusOK},
		{key: "PUT /v1/groups/:group_id/members/:user_id", build: path("/v1/groups/%s/members/%s", group, user), want: http.StatusNoContent},
		{key: "DELETE /v1/groups/:group_id/members/:user_id", build: path("/v1/groups/%s/members/%s", group, user), want: http.StatusNoContent},

		{key: "GET /v1/api-tokens", kind: listRoute, build: static("/v1/api-tokens"), want: http.StatusOK,
			check: okList(func(f *matrixFixtures) string { return f.apiToken })},
		{key: "POST /v1/api-tokens", kind: ownRoute, want: http.StatusCreated,
			build: withBody(static("/v1/api-tokens"), map[string]any{"name": "Monitoring", "scopes": []string{"tickets:create"}})},
		{key: "DELETE /v1/api-tokens/:token_id", build: path("/v1/api-tokens/%s", func(f *matrixFixtures) string { return f.doomedAPIToken }), want: http.StatusNoContent},

		{key: "POST /v1/tickets", kind: ownRoute, want: http.StatusCreated,
			build: withBody(static("/v1/tickets"), map[string]string{"type": "incident", "title": "Printer on fire", "description": "Smoke.", "impact": "high", "urgency": "high"})},
		{key: "GET /v1/tickets", kind: listRoute, build: static("/v1/tickets"), want: http.StatusOK, check: okList(ticket)},
		{key: "GET /v1/tickets/:id", build: path("/v1/tickets/%s", ticket), want: http.StatusOK},
		{key: "GET /v1/tickets/:id/events", build: path("/v1/tickets/%s/events", ticket), want: http.StatusOK},
		{key: "PATCH /v1/tickets/:id", build: withBody(path("/v1/tickets/%s", ticket), map[string]any{"title": "VPN down in Berlin and Hamburg"}),
			want: http.StatusOK, check: okTicket(ticket, "title", "VPN down in Berlin and Hamburg")},
		{key: "GET /v1/ticket-counts", kind: ownRoute, build: static("/v1/ticket-counts"), want: http.StatusOK,
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				c := decode[struct {
					Counts map[string]int
					Total  int
				}](t, a)
				if c.Total < 1 || c.Counts["new"] < 1 {
					t.Errorf("client1's ticket counts: %s", a.body)
				}
			}},
		{key: "GET /v1/tickets/:id/timeline", build: path("/v1/tickets/%s/timeline", ticket), want: http.StatusOK,
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				for _, w := range []string{`"opsdesk.ticket.created.v1"`, `"kind":"comment"`, `"kind":"attachment"`} {
					if !bytes.Contains(a.body, []byte(w)) {
						t.Errorf("client1's ticket's timeline lacks %s: %s", w, a.body)
					}
				}
			}},

		// The lifecycle, each action on a ticket in a status that allows it.
		{key: "POST /v1/tickets/:id/open", build: path("/v1/tickets/%s/open", lifecycle), want: http.StatusOK,
			check: okTicket(lifecycle, "status", "open")},
		{key: "POST /v1/tickets/:id/start", build: path("/v1/tickets/%s/start", lifecycle), want: http.StatusOK,
			check: okTicket(lifecycle, "status", "in_progress")},
		{key: "POST /v1/tickets/:id/pend", build: withBody(path("/v1/tickets/%s/pend", lifecycle), map[string]string{"reason": "awaiting_requester"}),
			want: http.StatusOK, check: okTicket(lifecycle, "status", "pending")},
		{key: "POST /v1/tickets/:id/resolve", want: http.StatusOK, check: okTicket(lifecycle, "status", "resolved"),
			build: withBody(path("/v1/tickets/%s/resolve", lifecycle), map[string]string{"code": "fixed", "note": "Replaced the cable."})},
		// Within the reopen window: the ticket itself goes back to open.
		{key: "POST /v1/tickets/:id/reopen", build: withBody(path("/v1/tickets/%s/reopen", lifecycle), map[string]string{"reason": "Still broken."}),
			want: http.StatusOK, check: okTicket(lifecycle, "status", "open")},
		{key: "POST /v1/tickets/:id/cancel", build: withBody(path("/v1/tickets/%s/cancel", cancellable), map[string]string{"reason": "Raised twice."}),
			want: http.StatusOK, check: okTicket(cancellable, "status", "cancelled")},
		// Only the requester rates: the operator, who logged it.
		{key: "POST /v1/tickets/:id/satisfaction", allowedAs: "operator@client1", want: http.StatusOK,
			build: withBody(path("/v1/tickets/%s/satisfaction", rated), map[string]any{"rating": 4, "comment": "Quick, thanks."}),
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				t.Helper()
				// Recorded (the read model, read after the write) ...
				g := f.s.do(http.MethodGet, "/v1/tickets/"+f.rated.ID, f.tokens[pOperator], nil,
					append(acting(f.client1), hdr("X-Consistency-Token", a.header.Get("X-Consistency-Token"))...)...)
				if v := decode[struct{ Satisfaction *int }](t, g); v.Satisfaction == nil || *v.Satisfaction != 4 {
					t.Errorf("the rating is not recorded: %s", describe(g))
				}
				// ... and the ticket answered is the ticket after the rating.
				if v := decode[struct{ Satisfaction *int }](t, a); v.Satisfaction == nil || *v.Satisfaction != 4 {
					t.Errorf("POST /v1/tickets/:id/satisfaction answers the ticket without its rating: %s", a.body)
				}
			}},
		{key: "POST /v1/tickets/:id/close", build: path("/v1/tickets/%s/close", rated), want: http.StatusOK,
			check: okTicket(rated, "status", "closed")},

		// Collaboration.
		{key: "POST /v1/tickets/:id/comments", build: withBody(path("/v1/tickets/%s/comments", ticket), map[string]any{"body": "Any news?"}),
			want: http.StatusOK, check: okTicket(ticket, "comment_count", "2")},
		{key: "GET /v1/tickets/:id/comments", build: path("/v1/tickets/%s/comments", ticket), want: http.StatusOK,
			check: okContains(func(*matrixFixtures) string { return matrixComment })},
		{key: "POST /v1/tickets/:id/attachments", want: http.StatusCreated,
			build: withRaw(path("/v1/tickets/%s/attachments", ticket), func(t testing.TB) ([]byte, string) { return multipartFiles(t, "ping.txt", "mtr.txt") }),
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				type file struct {
					Filename    string `json:"filename"`
					ContentType string `json:"content_type"`
				}
				v := decode[struct{ Items []file }](t, a)
				if len(v.Items) != 2 || v.Items[0].Filename != "ping.txt" || v.Items[1].Filename != "mtr.txt" ||
					!strings.HasPrefix(v.Items[0].ContentType, "text/plain") {
					t.Errorf("upload of two files: %s", a.body)
				}
			}},
		{key: "GET /v1/tickets/:id/attachments", build: path("/v1/tickets/%s/attachments", ticket), want: http.StatusOK,
			check: okContains(attachment)},
		{key: "GET /v1/tickets/:id/attachments/:attachment_id", build: path("/v1/tickets/%s/attachments/%s", ticket, attachment),
			want: http.StatusOK, check: func(t *testing.T, f *matrixFixtures, a answer) {
				if string(a.body) != attachmentText || a.header.Get("X-Content-Type-Options") != "nosniff" ||
					!strings.HasPrefix(a.header.Get("Content-Disposition"), "attachment") {
					t.Errorf("download: %v %q", a.header, a.body)
				}
			}},
		{key: "POST /v1/tickets/:id/links", want: http.StatusOK,
			build: func(f *matrixFixtures) req {
				return req{path: "/v1/tickets/" + f.ticket.ID + "/links", body: map[string]string{"kind": "related", "target": f.linkTarget.ID}}
			},
			check: okContains(linkTarget)},
		{key: "DELETE /v1/tickets/:id/links/:kind/:target", build: path("/v1/tickets/%s/links/related/%s", ticket, linkTarget),
			want: http.StatusOK, check: func(t *testing.T, f *matrixFixtures, a answer) {
				if bytes.Contains(a.body, []byte(f.linkTarget.ID)) {
					t.Errorf("the link is still there: %s", a.body)
				}
			}},

		// Settings and channels.
		{key: "GET /v1/settings/intake", kind: ownRoute, build: static("/v1/settings/intake"), want: http.StatusOK,
			check: okContains(func(f *matrixFixtures) string { return `"default_address":"` + f.slug1 + `@opsdesk.localhost"` })},
		{key: "PUT /v1/settings/intake", kind: ownRoute, want: http.StatusOK,
			build: withBody(static("/v1/settings/intake"), map[string]any{"reopen_window_days": 14, "auto_close_days": 7,
				"unknown_senders": "create_requester", "alerts_auto_resolve": true}),
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				v := decode[struct {
					Version           int
					AlertsAutoResolve bool `json:"alerts_auto_resolve"`
				}](t, a)
				if v.Version < 1 || !v.AlertsAutoResolve {
					t.Errorf("settings after the PUT: %s", a.body)
				}
			}},
		{key: "POST /v1/inbound/email", kind: ownRoute, want: http.StatusOK,
			build: withRaw(static("/v1/inbound/email"), func(testing.TB) ([]byte, string) {
				return rfc822("someone@northwind.example", "northwind@opsdesk.localhost", "Printer jams", "matrix-1@northwind.example"), ctypeRFC822
			}),
			check: okContains(func(*matrixFixtures) string { return `"outcome":"created"` })},
		{key: "POST /v1/inbound/alerts", kind: ownRoute, want: http.StatusOK,
			build: withBody(static("/v1/inbound/alerts"), map[string]string{"title": "Disk full on db1", "severity": "critical"}),
			check: okContains(func(*matrixFixtures) string { return `"created":true` })},
		{key: "GET /v1/quarantine", kind: listRoute, build: static("/v1/quarantine"), want: http.StatusOK, check: okList(quarantined)},
		{key: "GET /v1/quarantine/:qid/raw", build: path("/v1/quarantine/%s/raw", quarantined), want: http.StatusOK,
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				if !bytes.Equal(a.body, malformedAlert) {
					t.Errorf("the quarantined payload: %q, want %q", a.body, malformedAlert)
				}
			}},
		// A malformed payload stays malformed.
		{key: "POST /v1/quarantine/:qid/reprocess", build: path("/v1/quarantine/%s/reprocess", quarantined), want: http.StatusConflict},

		// The platform's operator routes: admins of the operator tenant, at home.
		{key: "GET /config", perm: auth.PermPlatformOperate, kind: ownRoute, foreignWant: http.StatusForbidden,
			build: static("/config"), want: http.StatusOK},
		{key: "GET /admin/deadletters", perm: auth.PermPlatformOperate, kind: ownRoute, foreignWant: http.StatusForbidden,
			build: static("/admin/deadletters"), want: http.StatusOK,
			check: func(t *testing.T, f *matrixFixtures, a answer) {
				if !bytes.Contains(a.body, []byte(`"consumer":"systemtest"`)) {
					t.Errorf("dead letters do not list the test's letters: %s", a.body)
				}
			}},
		{key: "POST /admin/deadletters/:seq/replay", perm: auth.PermPlatformOperate, kind: ownRoute, foreignWant: http.StatusForbidden,
			build: func(f *matrixFixtures) req {
				return req{path: fmt.Sprintf("/admin/deadletters/%d/replay", f.replayLetter)}
			}, want: http.StatusNoContent},
		{key: "DELETE /admin/deadletters/:seq", perm: auth.PermPlatformOperate, kind: ownRoute, foreignWant: http.StatusForbidden,
			build: func(f *matrixFixtures) req { return req{path: fmt.Sprintf("/admin/deadletters/%d", f.doomedLetter)} }, want: http.StatusNoContent},
		// Echo's not-found handlers of the /admin group run its middleware:
		// probing for admin routes without being an operator tells nothing.
		{key: echo.RouteNotFound + " /admin", perm: auth.PermPlatformOperate, kind: ownRoute, foreignWant: http.StatusForbidden,
			build: static("/admin"), want: http.StatusNotFound},
		{key: echo.RouteNotFound + " /admin/*", perm: auth.PermPlatformOperate, kind: ownRoute, foreignWant: http.StatusForbidden,
			build: static("/admin/no-such-route"), want: http.StatusNotFound},
	}
}

// setUpMatrix builds the tenants, principals and resources the matrix names.
func setUpMatrix(t *testing.T, s *stack) *matrixFixtures {
	f := &matrixFixtures{s: s, tokens: map[string]string{}, passwords: map[string]string{}, emails: map[string]string{}}
	f.emails[pAdmin], f.passwords[pAdmin] = adminEmail, adminPassword
	admin := s.signIn(providerSlug, adminEmail, adminPassword).Access
	f.provider = s.me(admin).TenantID
	f.slug1 = "northwind"
	f.client1 = s.createTenant(admin, f.slug1)
	f.client2 = s.createTenant(admin, "contoso")
	f.client3 = s.createTenant(admin, "fabrikam")

	for name, roles := range map[string][]string{
		pOperator: {auth.RoleAgent}, pRequester: {auth.RoleRequester}, pAgent: {auth.RoleAgent}, pSupervisor: {auth.RoleSupervisor},
	} {
		f.emails[name], f.passwords[name] = name+"@msp.example", "passphrase of the "+name
		id := s.onboard(admin, f.emails[name], f.passwords[name], roles)
		if name == pOperator {
			s.grant(admin, id, f.client1, auth.RoleAgent)
		}
	}
	f.grantee = s.onboard(admin, "grantee@msp.example", "", []string{auth.RoleRequester})
	adminID := s.me(admin).ID
	s.grant(admin, adminID, f.client1, auth.RoleAdmin)
	s.grant(admin, adminID, f.client2, auth.RoleAdmin)
	// Access tokens carry the grants held when they were issued.
	admin = s.signIn(providerSlug, adminEmail, adminPassword).Access
	f.tokens[pAdmin] = admin
	for _, name := range []string{pOperator, pRequester, pAgent, pSupervisor} {
		f.tokens[name] = s.signIn(providerSlug, f.emails[name], f.passwords[name]).Access
	}

	// client2's admin: onboarded by the provider's admin acting there, its
	// password set by that admin, signing in with client2's slug.
	in2 := acting(f.client2)
	c2admin := s.onboard(admin, "admin@contoso.example", "", []string{auth.RoleAdmin}, in2...)
	f.emails[pForeign], f.passwords[pForeign] = "admin@contoso.example", "contoso admin passphrase"
	expect(t, s.do(http.MethodPut, "/v1/users/"+c2admin+"/password", admin, map[string]string{"password": f.passwords[pForeign]}, in2...),
		http.StatusNoContent, "set client2 admin's password")
	f.tokens[pForeign] = s.signIn("contoso", f.emails[pForeign], f.passwords[pForeign]).Access

	// client1's resources, made by the provider's admin and the operator acting there.
	in1 := acting(f.client1)
	f.user = s.onboard(admin, "ada@northwind.example", "", []string{auth.RoleAgent}, in1...)
	f.suspendee = s.onboard(admin, "sus@northwind.example", "", []string{auth.RoleRequester}, in1...)
	f.leaver = s.onboard(admin, "leaver@northwind.example", "", []string{auth.RoleRequester}, in1...)
	f.pwUser = s.onboard(admin, "pw@northwind.example", "", []string{auth.RoleRequester}, in1...)
	f.group = s.createGroup(admin, "Service Desk", in1...)
	f.doomedGroup = s.createGroup(admin, "Doomed", in1...)
	f.apiToken = s.createAPIToken(admin, "Integration", in1...)
	f.doomedAPIToken = s.createAPIToken(admin, "Doomed integration", in1...)
	f.ticket = s.createTicket(f.tokens[pOperator], "VPN down in Berlin", in1...)
	f.client1Markers = []string{f.client1, f.user, f.suspendee, f.leaver, f.pwUser, f.group, f.doomedGroup, f.apiToken, f.doomedAPIToken, f.ticket.ID}
	setUpIntakeMatrix(t, f)

	// client2's own resources, so its lists are not trivially empty.
	c2 := f.tokens[pForeign]
	c2ticket := s.createTicket(c2, "Coffee machine broken")
	f.client2Markers = []string{c2admin, s.createGroup(c2, "Contoso Desk"), s.createAPIToken(c2, "Contoso integration"), c2ticket.ID,
		s.quarantineAlert(c2)}

	// The projections and read models have caught up with every fixture.
	testwait.Until(t, 10*time.Second, "client1's and client2's tickets and tokens in the read models", func() bool {
		return s.do(http.MethodGet, "/v1/tickets/"+f.ticket.ID, f.tokens[pOperator], nil, in1...).status == http.StatusOK &&
			s.do(http.MethodGet, "/v1/tickets/"+c2ticket.ID, c2, nil).status == http.StatusOK &&
			bytes.Contains(s.do(http.MethodGet, "/v1/api-tokens", admin, nil, in1...).body, []byte(f.doomedAPIToken)) &&
			bytes.Contains(s.do(http.MethodGet, "/v1/api-tokens", c2, nil).body, []byte(f.client2Markers[2]))
	})

	// Two dead letters of a consumer whose replay succeeds.
	s.plat.DeadLetters.Register("systemtest", func(context.Context, es.Event) error { return nil })
	f.replayLetter = s.deadLetter(t, 1)
	f.doomedLetter = s.deadLetter(t, 2)
	return f
}

// createGroup creates a support group and returns its id.
func (s *stack) createGroup(token, name string, headers ...header) string {
	s.t.Helper()
	a := expect(s.t, s.do(http.MethodPost, "/v1/groups", token, map[string]any{"name": name, "tier": 1}, headers...),
		http.StatusCreated, "create group "+name)
	return decode[struct{ ID string }](s.t, a).ID
}

// createAPIToken creates an API token with every scope and returns its id.
func (s *stack) createAPIToken(token, name string, headers ...header) string {
	s.t.Helper()
	id, _ := s.createAPITokenSecret(token, name, headers...)
	return id
}

// createAPITokenSecret creates an API token with every scope and returns
// its id and secret form.
func (s *stack) createAPITokenSecret(token, name string, headers ...header) (string, string) {
	s.t.Helper()
	scopes := make([]string, len(auth.Scopes))
	for i, sc := range auth.Scopes {
		scopes[i] = string(sc)
	}
	a := expect(s.t, s.do(http.MethodPost, "/v1/api-tokens", token, map[string]any{"name": name, "scopes": scopes}, headers...),
		http.StatusCreated, "create API token "+name)
	v := decode[struct{ ID, Token string }](s.t, a)
	return v.ID, v.Token
}

// deadLetter dead-letters the IDENTITY event at seq for consumer
// "systemtest" and returns the letter's DLQ sequence.
func (s *stack) deadLetter(t *testing.T, seq uint64) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := s.js.Stream(ctx, identityv1.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := str.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := deadletter.PublishOriginal(ctx, s.js, "systemtest", deadletter.Original{
		Stream: identityv1.Stream, Subject: m.Subject, Sequence: m.Sequence, Header: m.Header, Data: m.Data,
	}, fmt.Errorf("made up by the system test"), 1); err != nil {
		t.Fatal(err)
	}
	dlq, err := s.js.Stream(ctx, deadletter.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(deadletter.SubjectPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestAuthorizationMatrix (issue 3): every route the running all-in-one
// binary serves, except the platform's probes and the routes its OpenAPI
// document declares public, refuses a missing, expired or tampered
// credential (401), hides client1's resources from another tenant (404, or
// lists without them), refuses a role without the route's permission (403),
// lets the MSP operator act in the client it was granted (within the
// grant's role) and not in another (404). A route without a fixture here
// fails the test: a new route cannot be forgotten.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	f := setUpMatrix(t, s)

	specs := specPermissions(t)
	cases := routeCases()
	byKey := map[string]routeCase{}
	for _, rc := range cases {
		if _, dup := byKey[rc.key]; dup {
			t.Fatalf("two fixtures for %s", rc.key)
		}
		byKey[rc.key] = rc
	}

	// Every route on the shared Echo, classified.
	var todo []routeCase
	var skipped []string
	registered := map[string]bool{}
	for _, r := range s.echo.Routes() {
		key := r.Method + " " + r.Path
		registered[key] = true
		specPerm, inSpec := specs[key]
		switch {
		case slices.Contains(platformPublic, key):
			skipped = append(skipped, key+" (platform probe)")
			continue
		case inSpec && specPerm == auth.PermPublic:
			skipped = append(skipped, key+" (x-permission: public)")
			continue
		}
		rc, ok := byKey[key]
		switch {
		case !ok:
			t.Errorf("route %s has no fixture in the authorization matrix: add one", key)
			continue
		case inSpec && rc.perm != "" && rc.perm != specPerm:
			t.Errorf("fixture of %s says %s, its OpenAPI operation %s", key, rc.perm, specPerm)
		case inSpec:
			rc.perm = specPerm
		case rc.perm == "":
			t.Errorf("route %s is in no OpenAPI document and its fixture names no permission", key)
			continue
		}
		todo = append(todo, rc)
	}
	for key := range specs {
		if !registered[key] {
			t.Errorf("operation %s of the OpenAPI documents is not served", key)
		}
	}
	for _, rc := range cases {
		if !registered[rc.key] {
			t.Errorf("fixture for %s, which is not a route (stale fixture?)", rc.key)
		}
	}
	// In the table's order (suspend before reactivate, add before remove).
	order := map[string]int{}
	for i, rc := range cases {
		order[rc.key] = i
	}
	sort.Slice(todo, func(i, j int) bool { return order[todo[i].key] < order[todo[j].key] })

	// Credentials that must never pass.
	admin := f.tokens[pAdmin]
	now := time.Now()
	expired := s.remint(admin, now.Add(-3*time.Minute), now.Add(-time.Minute)) // beyond the 30 s leeway
	// The same claims, signed the same way but not expired, pass: the key
	// is right, so the expiry is what the 401 answers.
	control := s.remint(admin, now.Add(-time.Minute), now.Add(10*time.Minute))
	expect(t, s.do(http.MethodGet, "/v1/me", control, nil), http.StatusOK, "a reminted unexpired token (control)")
	expect(t, s.do(http.MethodGet, "/v1/tickets", control, nil, acting(f.client1)...), http.StatusOK, "a reminted unexpired token at intake (control)")
	tamperedSig := tamperSignature(admin)
	tamperedClaims := tamperClaims(t, f.tokens[pRequester]) // a requester claiming to be an operator admin

	// Acting by slug works like acting by id.
	if m := s.me(f.tokens[pOperator], acting(f.slug1)...); m.TenantID != f.client1 || !m.Acting {
		t.Errorf("operator acting in %q: %+v", f.slug1, m)
	}
	// A client does not see its provider, nor its sibling.
	for _, c := range []struct {
		who, tenant string
		headers     []header
	}{
		{pForeign, f.provider, nil}, {pForeign, f.client1, nil},
		{pOperator, f.provider, acting(f.client1)}, {pOperator, f.client2, acting(f.client1)},
	} {
		expect(t, s.do(http.MethodGet, "/v1/tenants/"+c.tenant, f.tokens[c.who], nil, c.headers...), http.StatusNotFound,
			c.who+" in a client reading tenant "+c.tenant)
	}

	type row struct {
		key   string
		cells []string
	}
	var rows []row
	for _, rc := range todo {
		base := rc.build(f)
		cell := func(got answer, want int, what string) string {
			t.Helper()
			if got.status != want {
				t.Errorf("%s, %s: want %d, got %s", rc.key, what, want, describe(got))
				return fmt.Sprintf("%d!", got.status)
			}
			if want == http.StatusUnauthorized {
				if !strings.HasPrefix(got.header.Get("WWW-Authenticate"), `Bearer realm="opsdesk"`) ||
					!strings.HasPrefix(got.header.Get("Content-Type"), "application/problem+json") {
					t.Errorf("%s, %s: 401 without a bearer challenge or problem body: %v", rc.key, what, got.header)
				}
			}
			return strconv.Itoa(got.status)
		}
		send := func(token string, headers ...header) answer {
			return s.do(rc.httpMethod(), base.path, token, base.body, base.headers(headers...)...)
		}
		var cells []string
		cells = append(cells,
			cell(send(""), http.StatusUnauthorized, "no token"),
			cell(send(expired), http.StatusUnauthorized, "expired token"),
			cell(send(tamperedSig), http.StatusUnauthorized, "token with a tampered signature"),
			cell(send(tamperedClaims), http.StatusUnauthorized, "token with tampered claims"),
		)

		// Another tenant: client2's admin.
		switch {
		case rc.kind == listRoute:
			a := send(f.tokens[pForeign])
			c := cell(a, http.StatusOK, "client2's admin listing")
			for _, m := range f.client1Markers {
				if bytes.Contains(a.body, []byte(m)) {
					t.Errorf("%s: client2's admin sees %s of client1: %s", rc.key, m, a.body)
					c = "leak!"
				}
			}
			cells = append(cells, c+"∅")
		case rc.kind == ownRoute && rc.foreignWant == 0:
			cells = append(cells, cell(send(f.tokens[pForeign], acting(f.client1)...), http.StatusNotFound, "client2's admin acting in client1"))
		default:
			want := cmpOrInt(rc.foreignWant, http.StatusNotFound)
			cells = append(cells, cell(send(f.tokens[pForeign]), want, "client2's admin naming client1's resource"))
		}

		// The highest role of the operator tenant without the permission.
		lacking := ""
		for _, role := range slices.Backward(auth.Roles) {
			if !(auth.Principal{Kind: auth.KindUser, ID: "u_x", Roles: []string{role}, Operator: true}).Can(rc.perm) {
				lacking = role
				break
			}
		}
		if lacking == "" {
			// Every role has it (tickets:create, tickets:read, tenants:read,
			// authenticated): there is no role to refuse.
			cells = append(cells, "-")
		} else {
			cells = append(cells, cell(send(f.tokens[roleUser[lacking]]), http.StatusForbidden, lacking+" without "+string(rc.perm))+"("+lacking[:3]+")")
		}

		// Acting in client1 with a grant whose role lacks the permission.
		grantRole := (auth.Principal{Kind: auth.KindUser, ID: "u_x", Roles: []string{auth.RoleAgent}, Acting: true}).Can(rc.perm)
		switch {
		case rc.perm == auth.PermPlatformOperate:
			// Acting elsewhere, even an operator admin is not an operator.
			cells = append(cells, cell(send(admin, acting(f.client1)...), http.StatusForbidden, "operator admin acting in client1"))
		case !grantRole:
			cells = append(cells, cell(send(f.tokens[pOperator], acting(f.client1)...), http.StatusForbidden, "operator with an agent grant"))
		default:
			cells = append(cells, "=")
		}

		// Acting in a client not granted.
		cells = append(cells, cell(send(f.tokens[pOperator], acting(f.client2)...), http.StatusNotFound, "operator acting in client2 (not granted)"))

		// The allowed call.
		who := rc.allowedAs
		if who == "" {
			switch {
			case rc.perm == auth.PermPlatformOperate:
				who = "admin@home"
			case grantRole:
				who = "operator@client1"
			default:
				who = "admin@client1"
			}
		}
		token, headers := admin, []header(nil)
		switch who {
		case "operator@client1":
			token, headers = f.tokens[pOperator], acting(f.client1)
		case "admin@client1":
			headers = acting(f.client1)
		}
		if rc.token != nil {
			token = rc.token(f)
		}
		call := base
		if rc.allowed != nil {
			call = rc.allowed(f)
		}
		a := s.do(rc.httpMethod(), call.path, token, call.body, call.headers(headers...)...)
		c := cell(a, rc.want, "allowed call as "+who)
		if rc.check != nil && a.status == rc.want {
			rc.check(t, f, a)
		}
		cells = append(cells, c+" "+who)
		rows = append(rows, row{rc.key, cells})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "authorization matrix: %d routes checked, %d skipped (%s)\n", len(rows), len(skipped), strings.Join(skipped, ", "))
	fmt.Fprintf(&b, "%-48s %-5s %-5s %-5s %-5s %-7s %-9s %-6s %-6s %s\n",
		"route", "none", "exp", "sig", "claim", "foreign", "role", "grant", "ungr", "allowed")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-48s %-5s %-5s %-5s %-5s %-7s %-9s %-6s %-6s %s\n", strings.TrimPrefix(r.key, echo.RouteNotFound+" "),
			r.cells[0], r.cells[1], r.cells[2], r.cells[3], r.cells[4], r.cells[5], r.cells[6], r.cells[7], r.cells[8])
	}
	b.WriteString("foreign: client2's admin (∅: its list holds nothing of client1); role: the highest provider role lacking the " +
		"permission (- every role has it); grant: the operator acting with its agent grant (= allowed); ungr: acting in client2, not granted")
	t.Log(b.String())
}

// httpMethod is the HTTP method to send: Echo's not-found pseudo-routes take GET.
func (rc routeCase) httpMethod() string {
	if m, _, _ := strings.Cut(rc.key, " "); m != echo.RouteNotFound {
		return m
	}
	return http.MethodGet
}

func cmpOrInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}
