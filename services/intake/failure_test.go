package intake_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/testwait"
	"github.com/opsdesk/opsdesk/services/intake"
)

// TestNATSDown stops the NATS server under a running intake: creates answer
// 503 with Retry-After at once (no hang), reads of the read model keep
// working, and after a restart creates work again and nothing acknowledged
// before the outage is lost.
func TestNATSDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{PublishTimeout: 2 * time.Second})
	const tenant = "t_down"
	before, token := e.create(t, tenant, newTicket("Before the outage"))
	if r := e.request(t, http.MethodGet, "/v1/tickets/"+before.ID, tenant, nil, "X-Consistency-Token", token); r.Code != http.StatusOK {
		t.Fatalf("read before outage: %d %s", r.Code, r.Body)
	}

	e.nats.Shutdown()
	testwait.Until(t, 5*time.Second, "client to notice the outage", func() bool { return !e.nc.IsConnected() })

	for i := range 3 { // the first and later attempts alike, number block warm or not
		start := time.Now()
		r := e.request(t, http.MethodPost, "/v1/tickets", tenant, newTicket("During the outage"))
		if r.Code != http.StatusServiceUnavailable {
			t.Fatalf("create %d during outage: %d %s", i, r.Code, r.Body)
		}
		if r.Header.Get("Retry-After") == "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("503 without Retry-After or problem body: %v %s", r.Header, r.Body)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("503 took %s; want a quick answer", el)
		}
	}
	// The read model is Postgres: reads of what it holds still answer.
	if r := e.request(t, http.MethodGet, "/v1/tickets/"+before.ID, tenant, nil, "X-Consistency-Token", token); r.Code != http.StatusOK {
		t.Fatalf("read during outage: %d %s", r.Code, r.Body)
	}
	if r := e.request(t, http.MethodGet, "/v1/tickets?q=outage", tenant, nil); r.Code != http.StatusOK {
		t.Fatalf("list during outage: %d %s", r.Code, r.Body)
	}

	e.nats.Restart(t)
	var after ticketJSON
	var afterToken string
	testwait.Until(t, 15*time.Second, "creates to work after restart", func() bool {
		r := e.request(t, http.MethodPost, "/v1/tickets", tenant, newTicket("After the outage"))
		if r.Code == http.StatusCreated {
			r.decode(t, &after)
			afterToken = r.Header.Get("X-Consistency-Token")
			return true
		}
		if r.Code != http.StatusServiceUnavailable {
			t.Fatalf("create after restart: %d %s", r.Code, r.Body)
		}
		return false
	})
	// The projection resumed: the new ticket is readable with its token, and
	// the ticket from before the outage is still there.
	for _, tk := range []ticketJSON{before, after} {
		r := e.request(t, http.MethodGet, "/v1/tickets/"+tk.Number, tenant, nil, "X-Consistency-Token", afterToken)
		if r.Code != http.StatusOK {
			t.Fatalf("GET %s after restart: %d %s", tk.Number, r.Code, r.Body)
		}
	}
	if before.Number == after.Number {
		t.Fatalf("number %s reused after restart", after.Number)
	}
	if n := e.streamMessages(t, "ticket."+tenant+".>"); n != 2 {
		t.Fatalf("%d events stored, want 2 (the outage stored nothing)", n)
	}
}

// FuzzCreateTicket sends arbitrary bodies through the Echo handler, the
// OpenAPI validator and the domain: the answer is 201, 400 or 413, never a
// 5xx, and every error is problem+json.
func FuzzCreateTicket(f *testing.F) {
	for _, seed := range []string{
		`{"type":"incident","title":"Printer offline","impact":"low","urgency":"high","requester":"a@example.com"}`,
		`{"type":"change","title":"x","description":"","impact":"high","urgency":"low","requester":"r"}`,
		`{"type":"incident","title":"   ","impact":"low","urgency":"high","requester":"a"}`,
		`{"type":"incident","title":"a\u0000b","impact":"low","urgency":"high","requester":"a"}`,
		`{"type":"incident","title":"\ud800","impact":"low","urgency":"high","requester":"a"}`,
		`{"type":"incident","title":"x","impact":"low","urgency":"high","requester":"a","extra":null}`,
		`{"type":"incident","title":"x","impact":"low","urgency":"high","requester":"a"} trailing`,
		`{"type":1e999}`, `{"title":{"nested":[1,2,3]}}`, `null`, `[]`, `"str"`, `{`, ``, "\xff\xfe",
		`{"type":"incident","type":"problem","title":"dup keys","impact":"low","urgency":"low","requester":"a"}`,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, intake.Config{})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := e.request(t, http.MethodPost, "/v1/tickets", "t_fuzz", body)
		switch r.Code {
		case http.StatusCreated:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("%d with Content-Type %q for %q", r.Code, ct, body)
			}
		default:
			t.Fatalf("status %d for %q: %s", r.Code, body, r.Body)
		}
	})
}
