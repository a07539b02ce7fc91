package intake_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/services/intake"
)

var numberRE = regexp.MustCompile(`^OPS-[0-9]+$`)

// TestIntake groups the tests that share one service (each with its own
// tenants, so they cannot see each other's tickets); the service outlives
// all of them and stops at the group's cleanup.
func TestIntake(t *testing.T) {
	e := newEnv(t, intake.Config{})
	t.Run("CreateThenRead", func(t *testing.T) { t.Parallel(); testCreateThenRead(t, e) })
	t.Run("ListFilters", func(t *testing.T) { t.Parallel(); testListFilters(t, e) })
	t.Run("KeysetPagination", func(t *testing.T) { t.Parallel(); testKeysetPagination(t, e) })
	t.Run("TenantIsolation", func(t *testing.T) { t.Parallel(); testTenantIsolation(t, e) })
	t.Run("BadInput", func(t *testing.T) { t.Parallel(); testBadInput(t, e) })
	t.Run("ConcurrentNumbers", func(t *testing.T) { t.Parallel(); testConcurrentNumbers(t, e) })
	t.Run("TokenAheadOfReadModel", func(t *testing.T) { t.Parallel(); testTokenAhead(t, e) })
	t.Run("RequestersSeeTheirOwn", func(t *testing.T) { t.Parallel(); testRequesters(t, e) })
	t.Run("APITokens", func(t *testing.T) { t.Parallel(); testAPITokens(t, e) })
}

// testRequesters: a requester's ticket is theirs by default, they cannot
// log one for someone else, and they see only their own tickets; an agent
// sees every ticket of the tenant.
func testRequesters(t *testing.T, e *env) {
	const tenant = "t_requesters"
	as := func(id, email string) string {
		tok := e.issuer.Token(t, authtest.User{ID: id, Tenant: tenant, Roles: []string{"requester"}, Email: email})
		return "Bearer " + tok
	}
	ada := as("u_01JB8ZQ5M6V8Y0K3W4X2N7RADA", "ada@example.com")
	bob := as("u_01JB8ZQ5M6V8Y0K3W4X2N7RB0B", "bob@example.com")
	mine := map[string]any{"type": "incident", "title": "My laptop", "impact": "low", "urgency": "low"}
	r := e.send(t, http.MethodPost, "/v1/tickets", mine, "Authorization", ada)
	if r.Code != http.StatusCreated {
		t.Fatalf("requester create: %d %s", r.Code, r.Body)
	}
	var own ticketJSON
	r.decode(t, &own)
	if own.Requester != "ada@example.com" {
		t.Errorf("requester %q, want the caller", own.Requester)
	}
	token := r.Header.Get("X-Consistency-Token")
	forOther := map[string]any{"type": "incident", "title": "For Bob", "impact": "low", "urgency": "low", "requester": "bob@example.com"}
	if r := e.send(t, http.MethodPost, "/v1/tickets", forOther, "Authorization", ada); r.Code != http.StatusForbidden {
		t.Errorf("requester logging for someone else: %d %s", r.Code, r.Body)
	}
	agents, agentsToken := e.create(t, tenant, newTicket("Logged by an agent"))
	for _, path := range []string{"/v1/tickets/" + own.ID, "/v1/tickets/" + own.Number + "/events"} {
		if r := e.send(t, http.MethodGet, path, nil, "Authorization", ada, "X-Consistency-Token", token); r.Code != http.StatusOK {
			t.Errorf("ada GET %s: %d %s", path, r.Code, r.Body)
		}
		if r := e.send(t, http.MethodGet, path, nil, "Authorization", bob, "X-Consistency-Token", token); r.Code != http.StatusNotFound {
			t.Errorf("bob GET ada's %s: %d, want 404", path, r.Code)
		}
	}
	if r := e.send(t, http.MethodGet, "/v1/tickets/"+agents.ID, nil, "Authorization", ada, "X-Consistency-Token", agentsToken); r.Code != http.StatusNotFound {
		t.Errorf("ada GET the agent's ticket: %d, want 404", r.Code)
	}
	var page pageJSON
	e.send(t, http.MethodGet, "/v1/tickets", nil, "Authorization", ada, "X-Consistency-Token", agentsToken).decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != own.ID {
		t.Errorf("ada's list: %+v", page.Items)
	}
	// The agent's ticket came last: its token makes the list include it.
	var all pageJSON
	e.request(t, http.MethodGet, "/v1/tickets", tenant, nil, "X-Consistency-Token", agentsToken).decode(t, &all)
	if len(all.Items) < 2 {
		t.Errorf("the agent's list has %d tickets, want both", len(all.Items))
	}
}

// testAPITokens: an integration's API token logs tickets naming the
// requester; its scopes bound what it may do.
func testAPITokens(t *testing.T, e *env) {
	const tenant = "t_api_tokens"
	token := func(scopes ...string) string {
		id, secret := auth.NewAPIToken(ulid.Make().String())
		data, _ := json.Marshal(identityv1.APITokenCreated{TokenID: id, Name: "monitoring", Scopes: scopes,
			CreatedBy: agentID, SecretHash: auth.HashSecret(secret), CreatedAt: time.Now().UTC()})
		if err := e.issuer.State.Apply(es.Event{ID: ulid.Make().String(), Type: identityv1.TypeAPITokenCreated,
			Subject: "identity." + tenant + "." + id, Tenant: tenant, Data: data}); err != nil {
			t.Fatal(err)
		}
		return "Bearer " + secret
	}
	create := token("tickets:create")
	r := e.send(t, http.MethodPost, "/v1/tickets", newTicket("Disk full on db-1"), "Authorization", create)
	if r.Code != http.StatusCreated {
		t.Fatalf("API token create: %d %s", r.Code, r.Body)
	}
	noRequester := newTicket("No requester")
	delete(noRequester, "requester")
	if r := e.send(t, http.MethodPost, "/v1/tickets", noRequester, "Authorization", create); r.Code != http.StatusBadRequest {
		t.Errorf("API token create without requester: %d %s", r.Code, r.Body)
	}
	if r := e.send(t, http.MethodGet, "/v1/tickets", nil, "Authorization", create); r.Code != http.StatusForbidden {
		t.Errorf("API token without tickets:read lists: %d, want 403", r.Code)
	}
	if r := e.send(t, http.MethodPost, "/v1/tickets", newTicket("x"), "Authorization", token("tickets:read")); r.Code != http.StatusForbidden {
		t.Errorf("API token without tickets:create creates: %d, want 403", r.Code)
	}
}

func testCreateThenRead(t *testing.T, e *env) {
	const tenant = "t_create"
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.request(t, http.MethodPost, "/v1/tickets", tenant, map[string]any{
		"type": "service_request", "title": "New laptop for Grace", "description": "Starts Monday.",
		"impact": "low", "urgency": "medium", "requester": "grace@example.com",
	}, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01", "X-Request-ID", "req-123")
	if r.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.Code, r.Body)
	}
	var created ticketJSON
	r.decode(t, &created)
	if !strings.HasPrefix(created.ID, "tk_") || len(created.ID) != 29 {
		t.Errorf("id %q, want tk_<ULID>", created.ID)
	}
	if !numberRE.MatchString(created.Number) {
		t.Errorf("number %q, want OPS-<n>", created.Number)
	}
	want := ticketJSON{
		ID: created.ID, Number: created.Number, Type: "service_request", Status: "new",
		Title: "New laptop for Grace", Description: "Starts Monday.", Impact: "low", Urgency: "medium",
		Priority: "P4", Requester: "grace@example.com", Channel: "api",
		CreatedAt: created.CreatedAt, UpdatedAt: created.CreatedAt, Version: 1,
	}
	if created != want {
		t.Errorf("created\n %+v\nwant\n %+v", created, want)
	}
	if time.Since(created.CreatedAt) > time.Minute || created.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at %v, want now in UTC", created.CreatedAt)
	}
	if got := r.Header.Get("Location"); got != "/v1/tickets/"+created.ID {
		t.Errorf("Location %q", got)
	}
	if got := r.Header.Get("ETag"); got != `"1"` {
		t.Errorf("ETag %q, want \"1\"", got)
	}
	token := r.Header.Get("X-Consistency-Token")
	seq, err := strconv.ParseUint(token, 10, 64)
	if err != nil || seq == 0 {
		t.Fatalf("X-Consistency-Token %q, want a stream sequence", token)
	}

	// Read-your-writes: with the token the read model answers at once, no
	// polling in the test.
	for _, ref := range []string{created.ID, created.Number} {
		r = e.request(t, http.MethodGet, "/v1/tickets/"+ref, tenant, nil, "X-Consistency-Token", token)
		if r.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", ref, r.Code, r.Body)
		}
		var got ticketJSON
		r.decode(t, &got)
		if got != want {
			t.Errorf("GET %s\n %+v\nwant\n %+v", ref, got, want)
		}
		if r.Header.Get("ETag") != `"1"` {
			t.Errorf("GET ETag %q", r.Header.Get("ETag"))
		}
	}

	for _, ref := range []string{created.ID, created.Number} {
		r = e.request(t, http.MethodGet, "/v1/tickets/"+ref+"/events", tenant, nil, "X-Consistency-Token", token)
		if r.Code != http.StatusOK {
			t.Fatalf("GET events: %d %s", r.Code, r.Body)
		}
		var list struct{ Items []eventJSON }
		r.decode(t, &list)
		if len(list.Items) != 1 {
			t.Fatalf("events: %s", r.Body)
		}
		ev := list.Items[0]
		if ev.Type != "opsdesk.ticket.created.v1" || ev.Version != 1 || ev.Sequence != int64(seq) ||
			ev.Actor != agentID || len(ev.ID) != 26 || !ev.Time.Equal(created.CreatedAt) {
			t.Errorf("event %+v", ev)
		}
		if ev.TraceID != traceID {
			t.Errorf("trace_id %q, want the request's %q", ev.TraceID, traceID)
		}
		var data map[string]any
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		if data["ticket_id"] != created.ID || data["number"] != created.Number || data["priority"] != "P4" {
			t.Errorf("event data %s", ev.Data)
		}
	}

	// The stored event is a complete CloudEvent: source, tenant, subject,
	// actor, the request id as correlation id, and the request's trace.
	store := jsstore.New(e.nc, e.deps.JS, jsstore.Config{Context: "ticket", Stream: "TICKETS"})
	stored, last, err := store.Load(context.Background(), es.Key{Tenant: tenant, ID: created.ID})
	if err != nil || len(stored) != 1 || last != seq {
		t.Fatalf("Load: %d events, last %d, %v", len(stored), last, err)
	}
	ev := stored[0]
	if ev.Type != "opsdesk.ticket.created.v1" || ev.Source != "/services/intake" || ev.Tenant != tenant ||
		ev.AggregateID != created.ID || ev.Actor != agentID || ev.CorrelationID != "req-123" ||
		es.TraceID(ev.TraceParent) != traceID || ev.Subject != "ticket."+tenant+"."+created.ID {
		t.Errorf("stored envelope %+v", ev)
	}
}

func testListFilters(t *testing.T, e *env) {
	const tenant = "t_filters"
	specs := []map[string]any{
		{"type": "incident", "title": "Printers on floor 3 are offline", "description": "Paper jam warnings everywhere", "impact": "high", "urgency": "high", "requester": "a@example.com"},
		{"type": "problem", "title": "Recurring VPN drops", "description": "Root cause of the network outage last week", "impact": "medium", "urgency": "low", "requester": "b@example.com"},
		{"type": "change", "title": "Upgrade core switch", "description": "Planned network maintenance", "impact": "low", "urgency": "low", "requester": "c@example.com"},
		{"type": "incident", "title": "E-mail is slow", "description": "", "impact": "low", "urgency": "high", "requester": "d@example.com"},
		{"type": "problem", "title": "Printer driver crashes", "description": "Affects accounting", "impact": "low", "urgency": "medium", "requester": "e@example.com"},
	}
	var tickets []ticketJSON
	var token string
	for _, s := range specs {
		tk, tok := e.create(t, tenant, s)
		tickets = append(tickets, tk)
		token = tok
	}
	ids := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, tickets[i].ID)
		}
		slices.Reverse(out) // newest first
		return out
	}
	list := func(q url.Values) []string {
		t.Helper()
		r := e.request(t, http.MethodGet, "/v1/tickets?"+q.Encode(), tenant, nil, "X-Consistency-Token", token)
		if r.Code != http.StatusOK {
			t.Fatalf("list %s: %d %s", q.Encode(), r.Code, r.Body)
		}
		var p pageJSON
		r.decode(t, &p)
		if p.NextCursor != nil {
			t.Errorf("list %s: next_cursor %q on the only page", q.Encode(), *p.NextCursor)
		}
		out := []string{}
		for _, it := range p.Items {
			out = append(out, it.ID)
		}
		return out
	}
	cases := []struct {
		name string
		q    url.Values
		want []string
	}{
		{"all", url.Values{}, ids(0, 1, 2, 3, 4)},
		{"type", url.Values{"type": {"problem"}}, ids(1, 4)},
		{"status new", url.Values{"status": {"new"}}, ids(0, 1, 2, 3, 4)},
		{"status closed", url.Values{"status": {"closed"}}, nil},
		{"full text stems", url.Values{"q": {"printer"}}, ids(0, 4)},
		{"full text in description", url.Values{"q": {"network"}}, ids(1, 2)},
		{"full text phrase", url.Values{"q": {`"network outage"`}}, ids(1)},
		{"full text exclusion", url.Values{"q": {"network -planned"}}, ids(1)},
		{"full text and type", url.Values{"q": {"printer"}, "type": {"incident"}}, ids(0)},
		{"created_after is inclusive", url.Values{"created_after": {tickets[3].CreatedAt.Format(time.RFC3339Nano)}}, ids(3, 4)},
		{"created_before is exclusive", url.Values{"created_before": {tickets[1].CreatedAt.Format(time.RFC3339Nano)}}, ids(0)},
		{"created between", url.Values{
			"created_after":  {tickets[1].CreatedAt.Format(time.RFC3339Nano)},
			"created_before": {tickets[3].CreatedAt.Format(time.RFC3339Nano)},
		}, ids(1, 2)},
		{"created_after with offset", url.Values{"created_after": {tickets[4].CreatedAt.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)}}, ids(4)},
	}
	for _, c := range cases {
		got := list(c.q)
		if c.want == nil {
			c.want = []string{}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s (%s): got %v, want %v", c.name, c.q.Encode(), got, c.want)
		}
	}
}

func testKeysetPagination(t *testing.T, e *env) {
	const tenant = "t_pages"
	const n = 120
	var (
		mu      sync.Mutex
		created = map[string]bool{}
		maxTok  uint64
		wg      sync.WaitGroup
	)
	// Created from 8 goroutines, so creation times interleave and may tie.
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				tk, tok := e.create(t, tenant, newTicket(fmt.Sprintf("Ticket %d", i)))
				seq, _ := strconv.ParseUint(tok, 10, 64)
				mu.Lock()
				created[tk.ID] = true
				maxTok = max(maxTok, seq)
				mu.Unlock()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()

	token := strconv.FormatUint(maxTok, 10)
	seen := map[string]bool{}
	var prev *ticketJSON
	cursor := ""
	pages := 0
	for {
		q := url.Values{"limit": {"7"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		r := e.request(t, http.MethodGet, "/v1/tickets?"+q.Encode(), tenant, nil, "X-Consistency-Token", token)
		if r.Code != http.StatusOK {
			t.Fatalf("page %d: %d %s", pages, r.Code, r.Body)
		}
		var p pageJSON
		r.decode(t, &p)
		pages++
		if len(p.Items) > 7 {
			t.Fatalf("page of %d items, limit 7", len(p.Items))
		}
		for i := range p.Items {
			it := p.Items[i]
			if seen[it.ID] {
				t.Fatalf("duplicate %s on page %d", it.ID, pages)
			}
			seen[it.ID] = true
			if prev != nil && (it.CreatedAt.After(prev.CreatedAt) || it.CreatedAt.Equal(prev.CreatedAt) && it.ID >= prev.ID) {
				t.Fatalf("order broken: %s (%s) after %s (%s)", it.ID, it.CreatedAt, prev.ID, prev.CreatedAt)
			}
			prev = &it
		}
		if p.NextCursor == nil {
			break
		}
		if len(p.Items) != 7 {
			t.Fatalf("short page %d (%d items) with a next cursor", pages, len(p.Items))
		}
		cursor = *p.NextCursor
	}
	if len(seen) != n || pages != (n+6)/7 {
		t.Fatalf("saw %d tickets in %d pages, want %d in %d", len(seen), pages, n, (n+6)/7)
	}
	for id := range created {
		if !seen[id] {
			t.Fatalf("gap: %s never listed", id)
		}
	}
	// The default page size is 50.
	r := e.request(t, http.MethodGet, "/v1/tickets", tenant, nil)
	var p pageJSON
	r.decode(t, &p)
	if len(p.Items) != 50 || p.NextCursor == nil {
		t.Fatalf("default page: %d items, next %v", len(p.Items), p.NextCursor)
	}
}

func testTenantIsolation(t *testing.T, e *env) {
	tk, token := e.create(t, "t_iso_a", newTicket("Only for A"))
	for _, path := range []string{
		"/v1/tickets/" + tk.ID, "/v1/tickets/" + tk.Number,
		"/v1/tickets/" + tk.ID + "/events", "/v1/tickets/" + tk.Number + "/events",
	} {
		r := e.request(t, http.MethodGet, path, "t_iso_b", nil, "X-Consistency-Token", token)
		if r.Code != http.StatusNotFound || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("tenant B GET %s: %d %s %s", path, r.Code, r.Header.Get("Content-Type"), r.Body)
		}
		if r := e.request(t, http.MethodGet, path, "t_iso_a", nil); r.Code != http.StatusOK {
			t.Errorf("tenant A GET %s: %d %s", path, r.Code, r.Body)
		}
	}
	r := e.request(t, http.MethodGet, "/v1/tickets", "t_iso_b", nil, "X-Consistency-Token", token)
	var p pageJSON
	r.decode(t, &p)
	if r.Code != http.StatusOK || len(p.Items) != 0 || p.NextCursor != nil {
		t.Errorf("tenant B list: %d %s", r.Code, r.Body)
	}
	// Numbers are per tenant: B's first ticket does not continue A's sequence
	// (both tenants start their own counter).
	tb, _ := e.create(t, "t_iso_b", newTicket("Only for B"))
	if tb.Number != "OPS-1" || tk.Number != "OPS-1" {
		t.Errorf("first numbers: A %s, B %s; want OPS-1 each", tk.Number, tb.Number)
	}
}

func testBadInput(t *testing.T, e *env) {
	const tenant = "t_bad"
	valid := func(mut func(map[string]any)) map[string]any {
		b := newTicket("Valid title")
		mut(b)
		return b
	}
	cases := []struct {
		name    string
		method  string
		path    string
		tenant  string
		body    any
		headers []string
		status  int
		field   string // a field error must name this ("" for none: 404s)
	}{
		{name: "malformed JSON", body: `{"type": "incident", "title":`, status: 400, field: "body"},
		{name: "not an object", body: `[1,2]`, status: 400, field: "body"},
		{name: "empty body", body: ``, status: 400, field: "body"},
		{name: "not JSON", body: `type=incident`, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 400, field: "header.Content-Type"},
		{name: "missing title", body: valid(func(b map[string]any) { delete(b, "title") }), status: 400, field: "title"},
		{name: "unknown impact", body: valid(func(b map[string]any) { b["impact"] = "extreme" }), status: 400, field: "impact"},
		{name: "unknown type", body: valid(func(b map[string]any) { b["type"] = "outage" }), status: 400, field: "type"},
		{name: "title too long", body: valid(func(b map[string]any) { b["title"] = strings.Repeat("x", 201) }), status: 400, field: "title"},
		{name: "empty title", body: valid(func(b map[string]any) { b["title"] = "" }), status: 400, field: "title"},
		{name: "blank title (domain rule)", body: valid(func(b map[string]any) { b["title"] = "   " }), status: 400, field: "title"},
		{name: "title not a string", body: valid(func(b map[string]any) { b["title"] = 5 }), status: 400, field: "title"},
		{name: "description too long", body: valid(func(b map[string]any) { b["description"] = strings.Repeat("d", 10001) }), status: 400, field: "description"},
		{name: "additional property", body: valid(func(b map[string]any) { b["priority"] = "P1" }), status: 400, field: "priority"},
		{name: "oversized body", body: `{"type":"incident","title":"x","description":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413, field: "body"},
		{name: "no credential", tenant: "-", body: newTicket("x"), status: 401},
		{name: "not a bearer token", tenant: "-", headers: []string{"Authorization", "Basic YWRhOnB3"}, body: newTicket("x"), status: 401},
		{name: "tampered token", tenant: "-", headers: []string{"Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln"}, body: newTicket("x"), status: 401},
		{name: "acting tenant not granted", headers: []string{"X-Acting-Tenant", "t_01JB8ZQ5M6V8Y0K3W4X2N7OTHR"}, body: newTicket("x"), status: 404, field: "X-Acting-Tenant"},
		{name: "bad cursor", method: "GET", path: "/v1/tickets?cursor=bm90LWEtY3Vyc29y", status: 400, field: "cursor"},
		{name: "limit 0", method: "GET", path: "/v1/tickets?limit=0", status: 400, field: "limit"},
		{name: "limit 500", method: "GET", path: "/v1/tickets?limit=500", status: 400, field: "limit"},
		{name: "limit not a number", method: "GET", path: "/v1/tickets?limit=ten", status: 400, field: "limit"},
		{name: "bad date", method: "GET", path: "/v1/tickets?created_after=yesterday", status: 400, field: "created_after"},
		{name: "bad status", method: "GET", path: "/v1/tickets?status=assigned", status: 400, field: "status"},
		{name: "bad consistency token", method: "GET", path: "/v1/tickets", headers: []string{"X-Consistency-Token", "abc"}, status: 400, field: "X-Consistency-Token"},
		{name: "list without credential", method: "GET", path: "/v1/tickets", tenant: "-", status: 401},
		{name: "unknown ticket", method: "GET", path: "/v1/tickets/tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE", status: 404},
		{name: "unknown number", method: "GET", path: "/v1/tickets/OPS-999999", status: 404},
		{name: "unknown ticket events", method: "GET", path: "/v1/tickets/tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE/events", status: 404},
		{name: "id not a token", method: "GET", path: "/v1/tickets/a%20b", status: 400, field: "id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path, ten := c.method, c.path, c.tenant
			if method == "" {
				method, path = http.MethodPost, "/v1/tickets"
			}
			switch ten {
			case "":
				ten = tenant
			case "-":
				ten = ""
			}
			r := e.request(t, method, path, ten, c.body, c.headers...)
			if r.Code != c.status {
				t.Fatalf("status %d, want %d: %s", r.Code, c.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			var p problem
			r.decode(t, &p)
			if p.Status != c.status || p.Title == "" {
				t.Errorf("problem %+v", p)
			}
			if c.field == "" {
				return
			}
			for _, fe := range p.Errors {
				if strings.Contains(fe.Field, c.field) && fe.Message != "" {
					return
				}
			}
			t.Errorf("no field error naming %q: %s", c.field, r.Body)
		})
	}
	// None of the bad creates reached the store, and none used up a number
	// (the domain-only "blank title" case included).
	if n := e.streamMessages(t, "ticket."+tenant+".>"); n != 0 {
		t.Errorf("bad input stored %d events", n)
	}
	if tk, _ := e.create(t, tenant, newTicket("Finally valid")); tk.Number != "OPS-1" {
		t.Errorf("first valid ticket is %s, want OPS-1", tk.Number)
	}
}

func testConcurrentNumbers(t *testing.T, e *env) {
	// A second intake instance on the same NATS and database, as a second
	// replica would be: numbers must stay unique across both.
	other := e.replica(t, false)
	const tenant = "t_numbers"
	const n = 50
	numbers := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			target := e
			if i%2 == 1 {
				target = other
			}
			r := target.request(t, http.MethodPost, "/v1/tickets", tenant, newTicket(fmt.Sprintf("parallel %d", i)))
			if r.Code != http.StatusCreated {
				t.Errorf("create %d: %d %s", i, r.Code, r.Body)
				return
			}
			var tk ticketJSON
			r.decode(t, &tk)
			numbers[i] = tk.Number
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, num := range numbers {
		if !numberRE.MatchString(num) {
			t.Fatalf("ticket %d: number %q", i, num)
		}
		if seen[num] {
			t.Fatalf("number %s handed out twice: %v", num, numbers)
		}
		seen[num] = true
	}
}

func testTokenAhead(t *testing.T, e *env) {
	// A token the stream has not reached: the read waits the configured
	// bound, then answers 503 with Retry-After instead of hanging.
	start := time.Now()
	r := e.request(t, http.MethodGet, "/v1/tickets", "t_ahead", nil, "X-Consistency-Token", "99999999")
	if r.Code != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", r.Code, r.Header.Get("Retry-After"), r.Body)
	}
	if el := time.Since(start); el < intake.DefaultConfig().ReadWait || el > intake.DefaultConfig().ReadWait+2*time.Second {
		t.Errorf("answered after %s, want about the read wait %s", el, intake.DefaultConfig().ReadWait)
	}
}

// TestRebuild rebuilds the read model (as the `rebuild` subcommand does,
// with intake stopped): afterwards it holds every ticket exactly once, and a
// restarted intake goes on projecting.
func TestRebuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	const tenant = "t_rebuild"
	var token string
	for i := range 5 {
		_, token = e.create(t, tenant, newTicket(fmt.Sprintf("Before rebuild %d", i)))
	}
	list := func(e *env, tok string) pageJSON {
		t.Helper()
		var hdr []string
		if tok != "" {
			hdr = []string{"X-Consistency-Token", tok}
		}
		r := e.request(t, http.MethodGet, "/v1/tickets", tenant, nil, hdr...)
		if r.Code != http.StatusOK {
			t.Fatalf("list: %d %s", r.Code, r.Body)
		}
		var p pageJSON
		r.decode(t, &p)
		return p
	}
	if n := len(list(e, token).Items); n != 5 {
		t.Fatalf("%d tickets before rebuild", n)
	}
	e.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := intake.Rebuild(ctx, intake.Config{}, e.deps); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	// Rebuild returns caught up: no token needed.
	if n := len(list(e, "").Items); n != 5 {
		t.Fatalf("%d tickets right after rebuild, want 5", n)
	}
	var rows, events int
	if err := e.owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM intake.tickets), (SELECT count(*) FROM intake.ticket_events)`).Scan(&rows, &events); err != nil {
		t.Fatal(err)
	}
	if rows != 5 || events != 5 {
		t.Fatalf("after rebuild: %d tickets, %d events; want 5 each", rows, events)
	}

	// Intake started again follows the stream from where the rebuild ended.
	again := e.replica(t, true)
	tk, tok := again.create(t, tenant, newTicket("After rebuild"))
	if r := again.request(t, http.MethodGet, "/v1/tickets/"+tk.ID, tenant, nil, "X-Consistency-Token", tok); r.Code != http.StatusOK {
		t.Fatalf("GET after rebuild: %d %s", r.Code, r.Body)
	}
	if n := len(list(again, tok).Items); n != 6 {
		t.Fatalf("%d tickets after rebuild and one create, want 6", n)
	}
}
