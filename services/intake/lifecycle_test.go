package intake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/testwait"
	"github.com/opsdesk/opsdesk/services/intake"
)

// fullTicket is the API's ticket with the lifecycle fields.
type fullTicket struct {
	ticketJSON
	Category        string          `json:"category"`
	Tags            []string        `json:"tags"`
	Watchers        []string        `json:"watchers"`
	CustomFields    json.RawMessage `json:"custom_fields"`
	PendingReason   *string         `json:"pending_reason"`
	Resolution      *struct{ Code, Note string }
	ResolvedAt      *time.Time                                      `json:"resolved_at"`
	ClosedAt        *time.Time                                      `json:"closed_at"`
	FirstResponseAt *time.Time                                      `json:"first_response_at"`
	MergedInto      *string                                         `json:"merged_into"`
	FollowUpOf      *string                                         `json:"follow_up_of"`
	Satisfaction    *int                                            `json:"satisfaction"`
	CommentCount    int                                             `json:"comment_count"`
	AttachmentCount int                                             `json:"attachment_count"`
	Links           []struct{ Kind, TargetID, TargetNumber string } `json:"links"`
}

func (f *fullTicket) UnmarshalJSON(b []byte) error {
	type plain fullTicket
	var links struct {
		Links []struct {
			Kind         string `json:"kind"`
			TargetID     string `json:"target_id"`
			TargetNumber string `json:"target_number"`
		} `json:"links"`
		Resolution *struct {
			Code string `json:"code"`
			Note string `json:"note"`
		} `json:"resolution"`
	}
	if err := json.Unmarshal(b, (*plain)(f)); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &f.ticketJSON); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return err
	}
	f.Links = nil
	for _, l := range links.Links {
		f.Links = append(f.Links, struct{ Kind, TargetID, TargetNumber string }{l.Kind, l.TargetID, l.TargetNumber})
	}
	if links.Resolution != nil {
		f.Resolution = &struct{ Code, Note string }{links.Resolution.Code, links.Resolution.Note}
	}
	return nil
}

// clock is a test clock the service reads; tests move it forward.
type clock struct{ ns atomic.Int64 }

func newClock() *clock { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) config(cfg intake.Config) intake.Config {
	cfg.Now = c.Now
	return cfg
}

// user mints a token for a user of tenant with roles.
func (e *env) user(t testing.TB, tenant, id, email string, roles ...string) string {
	t.Helper()
	return e.issuer.Token(t, authtest.User{ID: id, Tenant: tenant, Roles: roles, Email: email})
}

// as sends a request with token (and a JSON body unless body is []byte,
// whose type the headers set).
func (e *env) as(t testing.TB, token, method, path string, body any, headers ...string) response {
	t.Helper()
	return e.send(t, method, path, body, append([]string{"Authorization", "Bearer " + token}, headers...)...)
}

// ticketNow reads a ticket once the read model reached token.
func (e *env) ticketNow(t testing.TB, token, id, consistency string) fullTicket {
	t.Helper()
	var h []string
	if consistency != "" {
		h = []string{"X-Consistency-Token", consistency}
	}
	r := e.as(t, token, http.MethodGet, "/v1/tickets/"+id, nil, h...)
	if r.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", id, r.Code, r.Body)
	}
	var tk fullTicket
	r.decode(t, &tk)
	return tk
}

func newUserID() string { return "u_" + ulid.Make().String() }

func problemOf(t testing.TB, r response) problemJSON {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("status %d with content type %q, want problem+json: %s", r.Code, ct, r.Body)
	}
	var p problemJSON
	r.decode(t, &p)
	return p
}

type problemJSON struct {
	problem
	Allowed []string `json:"allowed"`
}

// TestLifecycle drives one ticket through the state machine over HTTP:
// every action answers the ticket after it with its ETag; an action the
// status does not allow is 409 naming the allowed ones; a stale If-Match
// is 412 and changes nothing; the read model follows.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	agent := e.agent(t, tenant)
	tk, _ := e.create(t, tenant, newTicket("Laptop will not boot"))

	step := func(action string, body any, ifMatch string, want int) response {
		t.Helper()
		h := []string{}
		if ifMatch != "" {
			h = append(h, "If-Match", ifMatch)
		}
		r := e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/"+action, body, h...)
		if r.Code != want {
			t.Fatalf("%s: %d %s, want %d", action, r.Code, r.Body, want)
		}
		return r
	}
	r := step("open", nil, `"1"`, http.StatusOK)
	if r.Header.Get("ETag") != `"2"` {
		t.Fatalf("ETag after open %q", r.Header.Get("ETag"))
	}
	// A stale version: 412, nothing appended.
	r = step("start", nil, `"1"`, http.StatusPreconditionFailed)
	problemOf(t, r)
	step("start", nil, `"2"`, http.StatusOK)
	r = step("pend", map[string]string{"reason": "awaiting_third_party", "note": "Vendor ships a part."}, "", http.StatusOK)
	var got fullTicket
	r.decode(t, &got)
	if got.Status != "pending" || got.PendingReason == nil || *got.PendingReason != "awaiting_third_party" {
		t.Fatalf("after pend: %+v", got)
	}
	// Pending allows start, resolve, cancel; open is refused with those named.
	r = step("open", nil, "", http.StatusConflict)
	p := problemOf(t, r)
	if !slices.Equal(p.Allowed, []string{"start", "resolve", "cancel"}) || !strings.Contains(p.Detail, "pending") {
		t.Fatalf("409 problem %+v", p)
	}
	// Resolve needs a known code and a note, each named.
	r = step("resolve", map[string]string{"code": "magic"}, "", http.StatusBadRequest)
	if fs := fieldsOf(problemOf(t, r)); !slices.Contains(fs, "code") || !slices.Contains(fs, "note") {
		t.Fatalf("bad resolve names %v", fs)
	}
	r = step("resolve", map[string]string{"code": "fixed", "note": "Replaced the SSD."}, "", http.StatusOK)
	token := r.Header.Get("X-Consistency-Token")
	got = e.ticketNow(t, agent, tk.ID, token)
	if got.Status != "resolved" || got.Resolution == nil || got.Resolution.Code != "fixed" || got.ResolvedAt == nil || got.Version != 5 {
		t.Fatalf("read model after resolve: %+v", got)
	}
	step("reopen", map[string]string{"reason": "Still beeps."}, "", http.StatusOK)
	step("resolve", map[string]string{"code": "workaround", "note": "External boot disk."}, "", http.StatusOK)
	r = step("close", nil, "", http.StatusOK)
	got = e.ticketNow(t, agent, tk.ID, r.Header.Get("X-Consistency-Token"))
	if got.Status != "closed" || got.ClosedAt == nil {
		t.Fatalf("after close: %+v", got)
	}
	// Closed is final but for a follow-up; cancel is refused, naming reopen.
	p = problemOf(t, step("cancel", nil, "", http.StatusConflict))
	if !slices.Equal(p.Allowed, []string{"reopen"}) {
		t.Fatalf("closed allows %v", p.Allowed)
	}
	// The history holds each transition once.
	r = e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+"/events", nil)
	var hist struct{ Items []eventJSON }
	r.decode(t, &hist)
	var types []string
	for _, ev := range hist.Items {
		types = append(types, strings.TrimSuffix(strings.TrimPrefix(ev.Type, "opsdesk.ticket."), ".v1"))
	}
	want := []string{"created", "opened", "work_started", "pended", "resolved", "reopened", "resolved", "closed"}
	if !slices.Equal(types, want) {
		t.Fatalf("history %v, want %v", types, want)
	}
	// Another tenant's ticket is not found, for actions too.
	other := authtest.NewTenantID()
	if r := e.as(t, e.agent(t, other), http.MethodPost, "/v1/tickets/"+tk.ID+"/reopen", nil); r.Code != http.StatusNotFound {
		t.Fatalf("reopen from another tenant: %d %s", r.Code, r.Body)
	}
}

func fieldsOf(p problemJSON) []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

// TestRequesterRules: requesters act on their own tickets only, may
// cancel, close and reopen them, never run the agent actions, never write
// or see internal notes; an agent's first public reply is the first
// response; the requester's reply to a ticket pending on them resumes it.
func TestRequesterRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	agent := e.agent(t, tenant)
	adaID, bobID := newUserID(), newUserID()
	ada := e.user(t, tenant, adaID, "ada@example.com", "requester")
	bob := e.user(t, tenant, bobID, "bob@example.com", "requester")

	r := e.as(t, ada, http.MethodPost, "/v1/tickets", map[string]any{"type": "service_request", "title": "New monitor", "impact": "low", "urgency": "low"})
	if r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	var tk fullTicket
	r.decode(t, &tk)

	if r := e.as(t, ada, http.MethodPost, "/v1/tickets/"+tk.ID+"/start", nil); r.Code != http.StatusForbidden {
		t.Fatalf("requester start: %d", r.Code)
	}
	if r := e.as(t, bob, http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", map[string]any{"body": "me too"}); r.Code != http.StatusNotFound {
		t.Fatalf("another requester comments: %d %s", r.Code, r.Body)
	}
	if r := e.as(t, ada, http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", map[string]any{"body": "psst", "internal": true}); r.Code != http.StatusForbidden {
		t.Fatalf("requester internal note: %d %s", r.Code, r.Body)
	}
	// Agent: an internal note, then a public reply (the first response).
	e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", map[string]any{"body": "Budget code?", "internal": true})
	r = e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", map[string]any{"body": "Which size do you need?"})
	if r.Code != http.StatusOK {
		t.Fatalf("agent reply: %d %s", r.Code, r.Body)
	}
	e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/pend", map[string]any{"reason": "awaiting_requester"})
	r = e.as(t, ada, http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", map[string]any{"body": "27 inch, please."})
	var after fullTicket
	r.decode(t, &after)
	if r.Code != http.StatusOK || after.Status != "in_progress" {
		t.Fatalf("requester answer to a pending ticket: %d, status %s", r.Code, after.Status)
	}
	got := e.ticketNow(t, agent, tk.ID, r.Header.Get("X-Consistency-Token"))
	if got.FirstResponseAt == nil || got.CommentCount != 3 {
		t.Fatalf("first response %v, comments %d", got.FirstResponseAt, got.CommentCount)
	}
	// Ada sees two comments (no internal note), the agent three; the same
	// for the history and the timeline.
	var list struct{ Items []struct{ Body string } }
	e.as(t, ada, http.MethodGet, "/v1/tickets/"+tk.ID+"/comments", nil).decode(t, &list)
	if len(list.Items) != 2 || slices.ContainsFunc(list.Items, func(c struct{ Body string }) bool { return c.Body == "Budget code?" }) {
		t.Fatalf("requester's comments: %+v", list.Items)
	}
	e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+"/comments", nil).decode(t, &list)
	if len(list.Items) != 3 {
		t.Fatalf("agent's comments: %+v", list.Items)
	}
	for _, path := range []string{"/events", "/timeline"} {
		r := e.as(t, ada, http.MethodGet, "/v1/tickets/"+tk.ID+path, nil)
		if r.Code != http.StatusOK || bytes.Contains(r.Body, []byte("Budget code?")) {
			t.Fatalf("requester's %s shows the internal note or fails: %d %s", path, r.Code, r.Body)
		}
		if r := e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+path, nil); !bytes.Contains(r.Body, []byte("Budget code?")) {
			t.Fatalf("agent's %s lacks the internal note", path)
		}
	}
	// The requester cancels their own ticket.
	if r := e.as(t, ada, http.MethodPost, "/v1/tickets/"+tk.ID+"/cancel", map[string]any{"reason": "Got one from a colleague."}); r.Code != http.StatusOK {
		t.Fatalf("requester cancel: %d %s", r.Code, r.Body)
	}
}

// TestSatisfaction: only the requester rates, after resolution, once per
// resolution.
func TestSatisfaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	agent := e.agent(t, tenant)
	adaID := newUserID()
	ada := e.user(t, tenant, adaID, "ada@example.com", "requester")
	r := e.as(t, ada, http.MethodPost, "/v1/tickets", map[string]any{"type": "incident", "title": "Wi-Fi drops", "impact": "low", "urgency": "medium"})
	var tk fullTicket
	r.decode(t, &tk)
	rate := func(token string, rating int) response {
		return e.as(t, token, http.MethodPost, "/v1/tickets/"+tk.ID+"/satisfaction", map[string]any{"rating": rating, "comment": "ok"})
	}
	if r := rate(ada, 5); r.Code != http.StatusConflict {
		t.Fatalf("rating before resolution: %d %s", r.Code, r.Body)
	}
	e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/resolve", map[string]any{"code": "fixed", "note": "New access point."})
	if r := rate(agent, 5); r.Code != http.StatusNotFound {
		t.Fatalf("an agent rating someone's ticket: %d %s", r.Code, r.Body)
	}
	if r := rate(ada, 6); r.Code != http.StatusBadRequest {
		t.Fatalf("rating 6: %d", r.Code)
	}
	r = rate(ada, 4)
	if r.Code != http.StatusOK {
		t.Fatalf("rating: %d %s", r.Code, r.Body)
	}
	if got := e.ticketNow(t, agent, tk.ID, r.Header.Get("X-Consistency-Token")); got.Satisfaction == nil || *got.Satisfaction != 4 {
		t.Fatalf("satisfaction %v", got.Satisfaction)
	}
	if r := rate(ada, 1); r.Code != http.StatusConflict {
		t.Fatalf("second rating of one resolution: %d", r.Code)
	}
}

// TestIdempotencyKey: a retry with the same key answers the first ticket
// (200), also when retries race; the key with another body is 422.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	body := newTicket("Printer jammed")
	first := e.request(t, http.MethodPost, "/v1/tickets", tenant, body, "Idempotency-Key", "k-1")
	if first.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	var a, b ticketJSON
	first.decode(t, &a)
	again := e.request(t, http.MethodPost, "/v1/tickets", tenant, body, "Idempotency-Key", "k-1")
	again.decode(t, &b)
	if again.Code != http.StatusOK || b.ID != a.ID || b.Number != a.Number {
		t.Fatalf("retry: %d %s, want 200 with %s", again.Code, again.Body, a.ID)
	}
	other := newTicket("Something else")
	if r := e.request(t, http.MethodPost, "/v1/tickets", tenant, other, "Idempotency-Key", "k-1"); r.Code != http.StatusUnprocessableEntity {
		t.Fatalf("key reused for another body: %d %s", r.Code, r.Body)
	}
	// Another tenant's same key is its own.
	if r := e.request(t, http.MethodPost, "/v1/tickets", authtest.NewTenantID(), body, "Idempotency-Key", "k-1"); r.Code != http.StatusCreated {
		t.Fatalf("same key in another tenant: %d", r.Code)
	}
	// Eight concurrent first requests with one key make one ticket.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			r := e.request(t, http.MethodPost, "/v1/tickets", tenant, body, "Idempotency-Key", "k-race")
			var tk ticketJSON
			if r.Code == http.StatusCreated || r.Code == http.StatusOK {
				r.decode(t, &tk)
			}
			ids[i] = tk.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent retries answered %v", ids)
		}
	}
	if n := e.streamMessages(t, "ticket."+tenant+".>"); n != 2 {
		t.Fatalf("%d ticket events in the tenant, want 2 (k-1 and k-race)", n)
	}
}

// TestCustomFields: the tenant's JSON Schema is enforced on create and
// update, naming the field.
func TestCustomFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	schema := `{"type":"object","required":["cost_center"],"properties":{"cost_center":{"type":"string","pattern":"^[0-9]{4}$"},"asset_tag":{"type":"string"}},"additionalProperties":false}`
	r := e.as(t, admin, http.MethodPut, "/v1/settings/intake", json.RawMessage(`{"reopen_window_days":14,"auto_close_days":7,
		"unknown_senders":"create_requester","alerts_auto_resolve":false,"custom_fields_schema":`+schema+`}`))
	if r.Code != http.StatusOK || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("put settings: %d %s", r.Code, r.Body)
	}
	if r := e.as(t, e.agent(t, tenant), http.MethodPut, "/v1/settings/intake", json.RawMessage(`{}`)); r.Code != http.StatusForbidden {
		t.Fatalf("agent puts settings: %d", r.Code)
	}
	if r := e.as(t, admin, http.MethodPut, "/v1/settings/intake", json.RawMessage(`{"reopen_window_days":14,"auto_close_days":7,
		"unknown_senders":"create_requester","alerts_auto_resolve":false,"custom_fields_schema":{"type":"nonsense"}}`)); r.Code != http.StatusBadRequest {
		t.Fatalf("bad schema: %d %s", r.Code, r.Body)
	}
	body := newTicket("Need a dock")
	r = e.request(t, http.MethodPost, "/v1/tickets", tenant, body)
	if fs := fieldsOf(problemOf(t, r)); r.Code != http.StatusBadRequest || !slices.Equal(fs, []string{"custom_fields.cost_center"}) {
		t.Fatalf("missing custom field: %d %v", r.Code, fs)
	}
	body["custom_fields"] = map[string]any{"cost_center": "12x"}
	r = e.request(t, http.MethodPost, "/v1/tickets", tenant, body)
	if fs := fieldsOf(problemOf(t, r)); r.Code != http.StatusBadRequest || !slices.Equal(fs, []string{"custom_fields.cost_center"}) {
		t.Fatalf("bad custom field: %d %v", r.Code, fs)
	}
	body["custom_fields"] = map[string]any{"cost_center": "4711"}
	tk, token := e.create(t, tenant, body)
	got := e.ticketNow(t, e.agent(t, tenant), tk.ID, token)
	if string(got.CustomFields) != `{"cost_center": "4711"}` && string(got.CustomFields) != `{"cost_center":"4711"}` {
		t.Fatalf("custom fields stored %s", got.CustomFields)
	}
	r = e.request(t, http.MethodPatch, "/v1/tickets/"+tk.ID, tenant, map[string]any{"custom_fields": map[string]any{"cost_center": "4711", "colour": "red"}})
	if fs := fieldsOf(problemOf(t, r)); r.Code != http.StatusBadRequest || len(fs) == 0 || !strings.HasPrefix(fs[0], "custom_fields") {
		t.Fatalf("update with an unknown custom field: %d %v", r.Code, fs)
	}
	r = e.request(t, http.MethodPatch, "/v1/tickets/"+tk.ID, tenant, map[string]any{"tags": []string{"Dock", "hardware"}, "impact": "high"}, "If-Match", `"1"`)
	var up fullTicket
	r.decode(t, &up)
	if r.Code != http.StatusOK || !slices.Equal(up.Tags, []string{"dock", "hardware"}) || up.Priority != "P1" {
		t.Fatalf("update: %d %+v", r.Code, up)
	}
}

// TestLinksAndMerge: links are recorded on both tickets; merging closes
// the duplicate, records where it went, and makes its requester watch the
// target.
func TestLinksAndMerge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	agent := e.agent(t, tenant)
	adaID := newUserID()
	ada := e.user(t, tenant, adaID, "ada@example.com", "requester")
	var dup fullTicket
	e.as(t, ada, http.MethodPost, "/v1/tickets", map[string]any{"type": "incident", "title": "Mail is slow", "impact": "medium", "urgency": "medium"}).decode(t, &dup)
	target, targetToken := e.create(t, tenant, newTicket("Exchange degraded"))
	e.ticketNow(t, agent, target.ID, targetToken) // linked by number below, which the read model resolves
	problem, _ := e.create(t, tenant, map[string]any{"type": "problem", "title": "Storage latency", "impact": "high", "urgency": "medium"})

	link := func(id, kind, to string) response {
		return e.as(t, agent, http.MethodPost, "/v1/tickets/"+id+"/links", map[string]string{"kind": kind, "target": to})
	}
	if r := link(target.ID, "caused_by", dup.ID); r.Code != http.StatusConflict {
		t.Fatalf("caused_by an incident: %d %s", r.Code, r.Body)
	}
	if r := link(target.ID, "caused_by", problem.ID); r.Code != http.StatusOK {
		t.Fatalf("caused_by: %d %s", r.Code, r.Body)
	}
	if r := link(target.ID, "related", "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9ZZ"); r.Code != http.StatusBadRequest {
		t.Fatalf("link to nothing: %d %s", r.Code, r.Body)
	}
	r := link(dup.ID, "duplicate_of", target.Number)
	if r.Code != http.StatusOK {
		t.Fatalf("merge: %d %s", r.Code, r.Body)
	}
	token := r.Header.Get("X-Consistency-Token")
	d := e.ticketNow(t, agent, dup.ID, token)
	if d.Status != "closed" || d.MergedInto == nil || *d.MergedInto != target.ID {
		t.Fatalf("duplicate after merge: %+v", d)
	}
	tg := e.ticketNow(t, agent, target.ID, token)
	kinds := map[string]string{}
	for _, l := range tg.Links {
		kinds[l.Kind] = l.TargetID
	}
	if kinds["duplicated_by"] != dup.ID || kinds["caused_by"] != problem.ID || !slices.Contains(tg.Watchers, adaID) {
		t.Fatalf("target after merge: links %v watchers %v", kinds, tg.Watchers)
	}
	if p := e.ticketNow(t, agent, problem.ID, token); len(p.Links) != 1 || p.Links[0].Kind != "causes" {
		t.Fatalf("problem's links %+v", p.Links)
	}
	// The requester of the duplicate sees where it went in its history.
	r = e.as(t, ada, http.MethodGet, "/v1/tickets/"+dup.ID+"/timeline", nil)
	if !bytes.Contains(r.Body, []byte(`"into_number":"`+target.Number+`"`)) {
		t.Fatalf("requester's timeline does not say where the ticket went: %s", r.Body)
	}
	if r := e.as(t, agent, http.MethodDelete, "/v1/tickets/"+target.ID+"/links/caused_by/"+problem.ID, nil); r.Code != http.StatusOK {
		t.Fatalf("unlink: %d %s", r.Code, r.Body)
	}
	if r := e.as(t, agent, http.MethodDelete, "/v1/tickets/"+target.ID+"/links/duplicated_by/"+dup.ID, nil); r.Code != http.StatusConflict {
		t.Fatalf("unlink a merge: %d %s", r.Code, r.Body)
	}
}

// multipartBody builds an upload of files (name -> bytes).
func multipartBody(t testing.TB, internal bool, files ...[2]string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range files {
		fw, err := w.CreateFormFile("file", f[0])
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(f[1]))
	}
	if internal {
		w.WriteField("internal", "true")
	}
	w.Close()
	return b.Bytes(), w.FormDataContentType()
}

// TestAttachments: files are stored, typed from their bytes, downloadable
// within the tenant and scope only; limits are enforced with a clear 413.
func TestAttachments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{MaxAttachmentBytes: 64 << 10, MaxMessageBytes: 1 << 20})
	tenant := authtest.NewTenantID()
	agent := e.agent(t, tenant)
	adaID := newUserID()
	ada := e.user(t, tenant, adaID, "ada@example.com", "requester")
	var tk fullTicket
	e.as(t, ada, http.MethodPost, "/v1/tickets", map[string]any{"type": "incident", "title": "Screen flickers", "impact": "low", "urgency": "low"}).decode(t, &tk)

	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
	body, ct := multipartBody(t, false, [2]string{`C:\Users\ada\screen.txt`, png}, [2]string{"log.txt", "line 1\nline 2\n"})
	r := e.as(t, ada, http.MethodPost, "/v1/tickets/"+tk.ID+"/attachments", body, "Content-Type", ct)
	if r.Code != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.Code, r.Body)
	}
	var up struct {
		Items []struct {
			ID          string `json:"id"`
			Filename    string `json:"filename"`
			ContentType string `json:"content_type"`
			Size        int64  `json:"size"`
		}
	}
	r.decode(t, &up)
	if len(up.Items) != 2 || up.Items[0].Filename != "screen.txt" || up.Items[0].ContentType != "image/png" ||
		up.Items[0].Size != int64(len(png)) || !strings.HasPrefix(up.Items[1].ContentType, "text/plain") {
		t.Fatalf("upload answer %+v", up.Items)
	}
	// An internal file of the agent, hidden from the requester.
	ib, ict := multipartBody(t, true, [2]string{"notes.txt", "root password rotated"})
	if r := e.as(t, ada, http.MethodPost, "/v1/tickets/"+tk.ID+"/attachments", ib, "Content-Type", ict); r.Code != http.StatusForbidden {
		t.Fatalf("requester internal upload: %d %s", r.Code, r.Body)
	}
	r = e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/attachments", ib, "Content-Type", ict)
	var internal struct{ Items []struct{ ID string } }
	r.decode(t, &internal)
	token := r.Header.Get("X-Consistency-Token")

	dl := e.as(t, ada, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments/"+up.Items[0].ID, nil, "X-Consistency-Token", token)
	if dl.Code != http.StatusOK || string(dl.Body) != png || dl.Header.Get("Content-Type") != "image/png" ||
		dl.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(dl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", dl.Code, dl.Header)
	}
	if r := e.as(t, ada, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments/"+internal.Items[0].ID, nil, "X-Consistency-Token", token); r.Code != http.StatusNotFound {
		t.Fatalf("requester downloads an internal file: %d", r.Code)
	}
	if r := e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments/"+internal.Items[0].ID, nil, "X-Consistency-Token", token); r.Code != http.StatusOK {
		t.Fatalf("agent downloads the internal file: %d", r.Code)
	}
	var list struct{ Items []struct{ ID string } }
	e.as(t, ada, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments", nil, "X-Consistency-Token", token).decode(t, &list)
	if len(list.Items) != 2 {
		t.Fatalf("requester lists %d attachments, want 2", len(list.Items))
	}
	// Another tenant, even knowing both ids, gets 404.
	if r := e.request(t, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments/"+up.Items[0].ID, authtest.NewTenantID(), nil); r.Code != http.StatusNotFound {
		t.Fatalf("another tenant downloads: %d", r.Code)
	}
	// Too large a file: 413 naming the limit; nothing attached.
	big, bct := multipartBody(t, false, [2]string{"dump.bin", strings.Repeat("x", 64<<10+1)})
	r = e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/attachments", big, "Content-Type", bct)
	if p := problemOf(t, r); r.Code != http.StatusRequestEntityTooLarge || !strings.Contains(p.Detail, fmt.Sprint(64<<10)) {
		t.Fatalf("oversized file: %d %s", r.Code, r.Body)
	}
	// Too many files in one upload.
	var many [][2]string
	for i := range 11 {
		many = append(many, [2]string{fmt.Sprintf("f%d.txt", i), "x"})
	}
	mb, mct := multipartBody(t, false, many...)
	if r := e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/attachments", mb, "Content-Type", mct); r.Code != http.StatusBadRequest {
		t.Fatalf("11 files: %d", r.Code)
	}
	if r := e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/attachments", []byte("not multipart"), "Content-Type", "text/plain"); r.Code != http.StatusBadRequest {
		t.Fatalf("not multipart: %d %s", r.Code, r.Body)
	}
}

// TestAutoCloseSurvivesARestart: a resolved ticket closes by itself after
// the tenant's days, by the sweeper of a process started after the one
// that resolved it; a reopened one does not.
func TestAutoCloseSurvivesARestart(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := clk.config(intake.Config{AutoCloseInterval: time.Second})
	e := newEnv(t, cfg)
	tenant := authtest.NewTenantID()
	agent := e.agent(t, tenant)
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	if r := e.as(t, admin, http.MethodPut, "/v1/settings/intake", json.RawMessage(`{"reopen_window_days":3,"auto_close_days":2,
		"unknown_senders":"create_requester","alerts_auto_resolve":false}`)); r.Code != http.StatusOK {
		t.Fatalf("settings: %d %s", r.Code, r.Body)
	}
	closing, _ := e.create(t, tenant, newTicket("Closes by itself"))
	staying, _ := e.create(t, tenant, newTicket("Reopened in time"))
	for _, id := range []string{closing.ID, staying.ID} {
		if r := e.as(t, agent, http.MethodPost, "/v1/tickets/"+id+"/resolve", map[string]string{"code": "fixed", "note": "Done."}); r.Code != http.StatusOK {
			t.Fatalf("resolve: %d %s", r.Code, r.Body)
		}
	}
	r := e.as(t, agent, http.MethodPost, "/v1/tickets/"+staying.ID+"/reopen", nil)
	if got := e.ticketNow(t, agent, staying.ID, r.Header.Get("X-Consistency-Token")); got.Status != "open" {
		t.Fatalf("reopened: %s", got.Status)
	}
	// The first process stops; two days pass; a new one starts.
	e.stop()
	clk.Advance(2*24*time.Hour + time.Minute)
	next := e.replica(t, true)
	testwait.Until(t, 15*time.Second, "the resolved ticket auto-closed", func() bool {
		r := next.as(t, agent, http.MethodGet, "/v1/tickets/"+closing.ID, nil)
		var got fullTicket
		r.decode(t, &got)
		return got.Status == "closed"
	})
	var hist struct{ Items []eventJSON }
	next.as(t, agent, http.MethodGet, "/v1/tickets/"+closing.ID+"/events", nil).decode(t, &hist)
	last := hist.Items[len(hist.Items)-1]
	if !strings.Contains(string(last.Data), `"reason":"auto"`) || last.Actor != "system:auto-close" {
		t.Fatalf("last event %s by %s", last.Data, last.Actor)
	}
	if got := next.ticketNow(t, agent, staying.ID, ""); got.Status != "open" {
		t.Fatalf("the reopened ticket is %s", got.Status)
	}
	// Past the reopen window a reopen opens a follow-up linked both ways.
	r = next.as(t, agent, http.MethodPost, "/v1/tickets/"+closing.ID+"/reopen", map[string]string{"reason": "It is back."})
	var fu fullTicket
	r.decode(t, &fu)
	if r.Code != http.StatusCreated || fu.FollowUpOf == nil || *fu.FollowUpOf != closing.ID ||
		r.Header.Get("Location") != "/v1/tickets/"+fu.ID || fu.Description != "It is back." {
		t.Fatalf("reopen after the window: %d %s", r.Code, r.Body)
	}
	old := next.ticketNow(t, agent, closing.ID, r.Header.Get("X-Consistency-Token"))
	if len(old.Links) != 1 || old.Links[0].Kind != "followed_up_by" || old.Links[0].TargetID != fu.ID {
		t.Fatalf("old ticket's links %+v", old.Links)
	}
}
