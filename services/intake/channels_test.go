package intake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/testwait"
	"github.com/opsdesk/opsdesk/services/intake"
)

type inbound struct {
	Token        string `json:"-"`
	Outcome      string `json:"outcome"`
	TicketID     string `json:"ticket_id"`
	TicketNumber string `json:"ticket_number"`
	Reason       string `json:"reason"`
	QuarantineID string `json:"quarantine_id"`
}

// mailMsg is a raw message; extra headers are "Name: value" lines.
func mailMsg(from, subject, id, body string, extra ...string) []byte {
	h := "From: " + from + "\r\nTo: Help Desk <desk@opsdesk.localhost>\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + id + ">\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
	for _, x := range extra {
		h += x + "\r\n"
	}
	return []byte(h + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n"))
}

func (e *env) mail(t testing.TB, admin string, raw []byte, want int) inbound {
	t.Helper()
	r := e.as(t, admin, http.MethodPost, "/v1/inbound/email", raw, "Content-Type", "message/rfc822")
	if r.Code != want {
		t.Fatalf("inbound mail: %d %s, want %d", r.Code, r.Body, want)
	}
	var out inbound
	if want < 300 {
		r.decode(t, &out)
	}
	out.Token = r.Header.Get("X-Consistency-Token")
	return out
}

// events returns the ticket's history once it holds at least n events.
func (e *env) eventsAtLeast(t testing.TB, token, id string, n int) []eventJSON {
	t.Helper()
	var hist struct{ Items []eventJSON }
	testwait.Until(t, 10*time.Second, fmt.Sprintf("%d events of %s", n, id), func() bool {
		hist.Items = nil
		e.as(t, token, http.MethodGet, "/v1/tickets/"+id+"/events", nil).decode(t, &hist)
		return len(hist.Items) >= n
	})
	return hist.Items
}

// TestEmailThreads: a mail opens a ticket; the agent's API reply carries a
// Message-ID; the requester's reply to it, a colleague's reply in Cc to the
// first mail, and a reply naming only [OPS-n] land on the same ticket, with
// quotes stripped; redeliveries, auto-replies and our own mail are dropped.
func TestEmailThreads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	agent := e.agent(t, tenant)

	first := e.mail(t, admin, mailMsg(`"Ada Lovelace" <Ada@Example.com>`, "VPN keeps dropping", "m1@mail.example.com",
		"Since this morning the VPN drops every ten minutes.\n\n-- \nAda Lovelace\nAnalytical Engines Ltd"), http.StatusOK)
	if first.Outcome != "created" || first.TicketID == "" {
		t.Fatalf("first mail: %+v", first)
	}
	tk := e.ticketNow(t, agent, first.TicketID, first.Token)
	if tk.Channel != "email" || tk.Requester != "ada@example.com" || tk.Title != "VPN keeps dropping" ||
		tk.Description != "Since this morning the VPN drops every ten minutes." || tk.AttachmentCount != 1 {
		t.Fatalf("ticket from mail: %+v", tk)
	}
	// The original is kept as an internal attachment.
	var atts struct {
		Items []struct {
			ID, Filename string
			Internal     bool
		}
	}
	e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments", nil).decode(t, &atts)
	if len(atts.Items) != 1 || atts.Items[0].Filename != "original-message.eml" || !atts.Items[0].Internal {
		t.Fatalf("attachments %+v", atts.Items)
	}
	orig := e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+"/attachments/"+atts.Items[0].ID, nil)
	if !strings.Contains(string(orig.Body), "Analytical Engines Ltd") {
		t.Fatalf("original lost the signature: %s", orig.Body)
	}

	// The agent answers through the API; its comment has our Message-ID.
	if r := e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", map[string]string{"body": "Which client version?"}); r.Code != http.StatusOK {
		t.Fatalf("agent reply: %d %s", r.Code, r.Body)
	}
	hist := e.eventsAtLeast(t, agent, tk.ID, 4) // created, attachment, commented, first_responded
	var ourID string
	for _, ev := range hist {
		var c struct {
			MessageID string `json:"message_id"`
			Body      string `json:"body"`
		}
		json.Unmarshal(ev.Data, &c)
		if c.Body == "Which client version?" {
			ourID = c.MessageID
		}
	}
	if !strings.HasPrefix(ourID, tk.ID+".c_") || !strings.HasSuffix(ourID, "@opsdesk.localhost") {
		t.Fatalf("agent comment Message-ID %q", ourID)
	}

	// Ada replies to the agent's mail (Gmail style).
	reply := e.mail(t, admin, mailMsg("Ada <ada@example.com>", "Re: ["+tk.Number+"] VPN keeps dropping", "m2@mail.example.com",
		"Version 5.2.\n\nOn Tue, 1 Dec 2026 at 10:00, Help Desk <desk@opsdesk.localhost> wrote:\n> Which client version?",
		"In-Reply-To: <"+ourID+">", "References: <m1@mail.example.com> <"+ourID+">"), http.StatusOK)
	if reply.Outcome != "commented" || reply.TicketID != tk.ID {
		t.Fatalf("reply: %+v", reply)
	}
	// A colleague in Cc replies to Ada's first mail, from another client.
	cc := e.mail(t, admin, mailMsg("Charles <charles@example.com>", "RE: VPN keeps dropping", "m3@mail.example.com",
		"Same for me.\n\n-----Original Message-----\nFrom: Ada\nSent: Tuesday\nSubject: VPN keeps dropping\n\nSince this morning",
		"In-Reply-To: <m1@mail.example.com>"), http.StatusOK)
	if cc.Outcome != "commented" || cc.TicketID != tk.ID {
		t.Fatalf("cc reply: %+v", cc)
	}
	// Ada from her phone, no thread headers, only the ticket number.
	token := e.mail(t, admin, mailMsg("ada.lovelace@home.example", "Re: ["+tk.Number+"] still broken", "m4@phone.example",
		"Still broken after the update.\n\nSent from my iPhone"), http.StatusOK)
	if token.Outcome != "commented" || token.TicketID != tk.ID {
		t.Fatalf("subject token reply: %+v", token)
	}
	var comments struct {
		Items []struct{ Body, Channel, Author string }
	}
	testwait.Until(t, 10*time.Second, "four comments", func() bool {
		comments.Items = nil
		e.as(t, agent, http.MethodGet, "/v1/tickets/"+tk.ID+"/comments", nil).decode(t, &comments)
		return len(comments.Items) == 4
	})
	var bodies []string
	for _, c := range comments.Items {
		bodies = append(bodies, c.Body)
	}
	want := []string{"Which client version?", "Version 5.2.", "Same for me.", "Still broken after the update."}
	if !slices.Equal(bodies, want) {
		t.Fatalf("comment bodies %q, want %q", bodies, want)
	}
	blobs := func() int {
		var n int
		if err := e.owner.QueryRow(t.Context(), `SELECT count(*) FROM intake.blobs WHERE tenant_id = $1`, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := blobs()
	// The same mail again (an MTA retry) is not added twice.
	if again := e.mail(t, admin, mailMsg("Ada <ada@example.com>", "Re: x", "m2@mail.example.com", "Version 5.2.",
		"In-Reply-To: <"+ourID+">"), http.StatusAccepted); again.Outcome != "dropped" || !strings.Contains(again.Reason, "duplicate") {
		t.Fatalf("redelivery: %+v", again)
	}
	// Loops: an out-of-office answer and our own mail coming back.
	if ooo := e.mail(t, admin, mailMsg("ada@example.com", "Out of office", "m5@mail.example.com", "I am away.",
		"Auto-Submitted: auto-replied", "In-Reply-To: <"+ourID+">"), http.StatusAccepted); ooo.Outcome != "dropped" {
		t.Fatalf("auto-reply: %+v", ooo)
	}
	if own := e.mail(t, admin, mailMsg("desk@opsdesk.localhost", "Re: x", tk.ID+".c_X@opsdesk.localhost", "echo"), http.StatusAccepted); own.Outcome != "dropped" {
		t.Fatalf("own mail: %+v", own)
	}
	if n := blobs(); n != before {
		t.Fatalf("dropped mail stored %d blobs", n-before)
	}
	// A reply once the ticket is closed opens a follow-up.
	e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/resolve", map[string]string{"code": "fixed", "note": "Client 5.3."})
	e.as(t, agent, http.MethodPost, "/v1/tickets/"+tk.ID+"/close", nil)
	fu := e.mail(t, admin, mailMsg("ada@example.com", "Re: ["+tk.Number+"] VPN", "m6@mail.example.com", "It is back!"), http.StatusOK)
	if fu.Outcome != "follow_up" || fu.TicketID == tk.ID {
		t.Fatalf("reply to a closed ticket: %+v", fu)
	}
	if got := e.ticketNow(t, agent, fu.TicketID, fu.Token); got.FollowUpOf == nil || *got.FollowUpOf != tk.ID || got.Description != "It is back!" {
		t.Fatalf("follow-up: %+v", got)
	}
}

// TestEmailRedeliveriesRace: the same mail delivered eight times at once
// (MTA retries racing) opens one ticket, and a reply delivered eight times
// at once adds one comment.
func TestEmailRedeliveriesRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	first := mailMsg("ada@example.com", "Scanner jams", "race1@example.com", "Every third page jams.")
	var created []string
	for _, o := range deliverAny(t, e, admin, first) {
		if o.Outcome == "created" {
			created = append(created, o.TicketID)
		}
	}
	if len(created) != 1 {
		t.Fatalf("8 concurrent deliveries created %d tickets", len(created))
	}
	// The reply follows at once: threading waits for the read model to
	// hold the mail it answers.
	reply := mailMsg("ada@example.com", "Re: Scanner jams", "race2@example.com", "Also the second tray.",
		"In-Reply-To: <race1@example.com>")
	commented := 0
	outcomes := deliverAny(t, e, admin, reply)
	for _, o := range outcomes {
		if o.Outcome == "commented" {
			commented++
		}
	}
	if commented != 1 {
		t.Fatalf("8 concurrent deliveries of a reply added %d comments: %+v", commented, outcomes)
	}
	var list struct{ Items []struct{ Body string } }
	testwait.Until(t, 10*time.Second, "the reply in the read model", func() bool {
		e.as(t, admin, http.MethodGet, "/v1/tickets/"+created[0]+"/comments", nil).decode(t, &list)
		return len(list.Items) >= 1
	})
	if len(list.Items) != 1 {
		t.Fatalf("comments %+v", list.Items)
	}
}

// deliverAny posts raw eight times at once and returns the outcomes.
func deliverAny(t *testing.T, e *env, token string, raw []byte) []inbound {
	t.Helper()
	var wg sync.WaitGroup
	out := make([]inbound, 8)
	for i := range out {
		wg.Go(func() {
			r := e.as(t, token, http.MethodPost, "/v1/inbound/email", raw, "Content-Type", "message/rfc822")
			if r.Code != http.StatusOK && r.Code != http.StatusAccepted {
				t.Errorf("delivery: %d %s", r.Code, r.Body)
				return
			}
			r.decode(t, &out[i])
		})
	}
	wg.Wait()
	return out
}

// TestEmailBadInput: malformed mail is quarantined (listed, downloadable,
// re-processable), oversized mail is refused with the limit, and a tenant
// that rejects unknown senders refuses them.
func TestEmailBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{MaxMessageBytes: 64 << 10, MaxAttachmentBytes: 32 << 10})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")

	raw := []byte("Subject: no sender\r\n\r\nwho am I")
	q := e.mail(t, admin, raw, http.StatusAccepted)
	if q.Outcome != "quarantined" || q.QuarantineID == "" || q.Reason == "" {
		t.Fatalf("malformed mail: %+v", q)
	}
	var list struct {
		Items []struct{ ID, Kind, Status, Reason string }
	}
	e.as(t, admin, http.MethodGet, "/v1/quarantine", nil).decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != q.QuarantineID || list.Items[0].Kind != "email" || list.Items[0].Status != "held" {
		t.Fatalf("quarantine %+v", list.Items)
	}
	if r := e.as(t, admin, http.MethodGet, "/v1/quarantine/"+q.QuarantineID+"/raw", nil); string(r.Body) != string(raw) {
		t.Fatalf("raw %q", r.Body)
	}
	if r := e.as(t, admin, http.MethodPost, "/v1/quarantine/"+q.QuarantineID+"/reprocess", nil); r.Code != http.StatusConflict {
		t.Fatalf("reprocess: %d %s", r.Code, r.Body)
	}
	if r := e.as(t, e.user(t, authtest.NewTenantID(), newUserID(), "x@example.com", "admin"), http.MethodGet,
		"/v1/quarantine/"+q.QuarantineID+"/raw", nil); r.Code != http.StatusNotFound {
		t.Fatalf("another tenant's quarantine: %d", r.Code)
	}
	big := mailMsg("ada@example.com", "Big", "big@example.com", strings.Repeat("x", 64<<10))
	r := e.as(t, admin, http.MethodPost, "/v1/inbound/email", big, "Content-Type", "message/rfc822")
	if p := problemOf(t, r); r.Code != http.StatusRequestEntityTooLarge || !strings.Contains(p.Detail, fmt.Sprint(64<<10)) {
		t.Fatalf("oversized mail: %d %s", r.Code, r.Body)
	}
	if r := e.as(t, admin, http.MethodPut, "/v1/settings/intake", json.RawMessage(`{"reopen_window_days":14,"auto_close_days":7,
		"unknown_senders":"reject","alerts_auto_resolve":false}`)); r.Code != http.StatusOK {
		t.Fatalf("settings: %d", r.Code)
	}
	r = e.as(t, admin, http.MethodPost, "/v1/inbound/email", mailMsg("stranger@example.net", "Hi", "s1@example.net", "hello"),
		"Content-Type", "message/rfc822")
	if p := problemOf(t, r); r.Code != http.StatusForbidden || !strings.Contains(p.Detail, "stranger@example.net") {
		t.Fatalf("unknown sender under reject: %d %s", r.Code, r.Body)
	}
	if r := e.as(t, e.agent(t, tenant), http.MethodPost, "/v1/inbound/email", raw, "Content-Type", "message/rfc822"); r.Code != http.StatusForbidden {
		t.Fatalf("agent posting inbound mail: %d", r.Code)
	}
}

// alertmanager builds an Alertmanager webhook payload of n alerts of one
// group, fingerprints fp-<from>..fp-<from+n-1>.
func alertmanager(group, status string, from, n int) []byte {
	type alert struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
		Fingerprint string            `json:"fingerprint"`
	}
	var as []alert
	for i := from; i < from+n; i++ {
		as = append(as, alert{Status: status, Fingerprint: fmt.Sprintf("fp%013d", i),
			Labels:      map[string]string{"alertname": "HighLatency", "instance": fmt.Sprintf("web-%d", i), "severity": "critical"},
			Annotations: map[string]string{"summary": fmt.Sprintf("Latency high on web-%d", i)},
			StartsAt:    time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)})
	}
	b, _ := json.Marshal(map[string]any{"version": "4", "groupKey": group, "status": status, "receiver": "opsdesk",
		"groupLabels": map[string]string{"alertname": "HighLatency"}, "commonLabels": map[string]string{}, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager:9093", "truncatedAlerts": 0, "alerts": as})
	return b
}

type alertsAnswer struct {
	Token     string `json:"-"`
	Incidents []struct {
		TicketID string `json:"ticket_id"`
		Created  bool   `json:"created"`
		Alerts   int    `json:"alerts"`
	} `json:"incidents"`
	Ignored int `json:"ignored"`
}

func (e *env) alerts(t testing.TB, token string, body []byte, want int) alertsAnswer {
	t.Helper()
	r := e.as(t, token, http.MethodPost, "/v1/inbound/alerts", body)
	if r.Code != want {
		t.Fatalf("alerts: %d %s, want %d", r.Code, r.Body, want)
	}
	var a alertsAnswer
	if want == http.StatusOK {
		r.decode(t, &a)
	}
	a.Token = r.Header.Get("X-Consistency-Token")
	return a
}

func countType(events []eventJSON, typ string) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// TestAlertStorm: 100 alerts of one group open one incident listing them
// all; later alerts of the group add to it, repeats add nothing; when all
// resolve, notes are added and (the tenant enabled it) the incident is
// resolved; firing again afterwards opens a new incident.
func TestAlertStorm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	agent := e.agent(t, tenant)
	if r := e.as(t, admin, http.MethodPut, "/v1/settings/intake", json.RawMessage(`{"reopen_window_days":14,"auto_close_days":7,
		"unknown_senders":"create_requester","alerts_auto_resolve":true}`)); r.Code != http.StatusOK {
		t.Fatalf("settings: %d", r.Code)
	}
	storm := e.alerts(t, admin, alertmanager("{}:{alertname=\"HighLatency\"}", "firing", 0, 100), http.StatusOK)
	if len(storm.Incidents) != 1 || !storm.Incidents[0].Created || storm.Incidents[0].Alerts != 100 {
		t.Fatalf("storm: %+v", storm)
	}
	id := storm.Incidents[0].TicketID
	tk := e.ticketNow(t, agent, id, storm.Token)
	if tk.Type != "incident" || tk.Priority != "P1" || tk.Channel != "alert" || !strings.Contains(tk.Title, "and 99 more") {
		t.Fatalf("incident: %+v", tk)
	}
	var open int
	if err := e.owner.QueryRow(t.Context(), `SELECT count(*) FROM intake.alert_incidents WHERE ticket_id = $1`, id).Scan(&open); err != nil || open != 101 {
		t.Fatalf("index rows of the open incident: %d (%v), want the group and 100 fingerprints", open, err)
	}
	// The next notification of the group: two repeats, one new alert.
	more := e.alerts(t, admin, alertmanager("{}:{alertname=\"HighLatency\"}", "firing", 99, 2), http.StatusOK)
	if len(more.Incidents) != 1 || more.Incidents[0].TicketID != id || more.Incidents[0].Created {
		t.Fatalf("second notification: %+v", more)
	}
	hist := e.eventsAtLeast(t, agent, id, 102)
	if n := countType(hist, "opsdesk.ticket.alert_received.v1"); n != 101 {
		t.Fatalf("%d alerts on the incident, want 101", n)
	}
	// A different tool sends one of those fingerprints without a group:
	// it joins the incident by fingerprint.
	generic := fmt.Sprintf(`{"title":"Latency high on web-5","severity":"warning","fingerprint":"fp%013d"}`, 5)
	if a := e.alerts(t, admin, []byte(generic), http.StatusOK); len(a.Incidents) != 1 || a.Incidents[0].TicketID != id {
		t.Fatalf("same fingerprint from elsewhere: %+v", a)
	}
	// Everything resolves: one note, the incident resolved.
	done := e.alerts(t, admin, alertmanager("{}:{alertname=\"HighLatency\"}", "resolved", 0, 101), http.StatusOK)
	if len(done.Incidents) != 1 || done.Incidents[0].TicketID != id {
		t.Fatalf("resolved: %+v", done)
	}
	testwait.Until(t, 10*time.Second, "the incident resolved", func() bool {
		return e.ticketNow(t, agent, id, "").Status == "resolved"
	})
	hist = e.eventsAtLeast(t, agent, id, 1)
	if n := countType(hist, "opsdesk.ticket.alert_resolved.v1"); n != 101 {
		t.Fatalf("%d resolved alerts, want 101", n)
	}
	// The resolved incident left the open-incident index.
	var indexed int
	if err := e.owner.QueryRow(t.Context(), `SELECT count(*) FROM intake.alert_incidents WHERE ticket_id = $1`, id).Scan(&indexed); err != nil || indexed != 0 {
		t.Fatalf("index rows of the resolved incident: %d (%v)", indexed, err)
	}
	// Firing again: the old incident is resolved, so a new one opens.
	again := e.alerts(t, admin, alertmanager("{}:{alertname=\"HighLatency\"}", "firing", 0, 1), http.StatusOK)
	if len(again.Incidents) != 1 || !again.Incidents[0].Created || again.Incidents[0].TicketID == id {
		t.Fatalf("firing after resolution: %+v", again)
	}
	// A resolved alert nobody saw firing is ignored.
	if a := e.alerts(t, admin, alertmanager("other", "resolved", 500, 3), http.StatusOK); a.Ignored != 3 || len(a.Incidents) != 0 {
		t.Fatalf("stray resolved alerts: %+v", a)
	}
	if r := e.as(t, admin, http.MethodPost, "/v1/inbound/alerts", alertmanager("other", "resolved", 500, 3)); !strings.Contains(string(r.Body), `"incidents":[]`) {
		t.Fatalf("no incidents answers %s, want an empty list", r.Body)
	}
}

// TestAlertsConcurrentWebhooks: two webhooks for one new group at once
// open one incident.
func TestAlertsConcurrentWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	var wg sync.WaitGroup
	ids := make([]string, 6)
	for i := range ids {
		wg.Go(func() {
			a := e.alerts(t, admin, alertmanager("g-race", "firing", i*10, 10), http.StatusOK)
			if len(a.Incidents) == 1 {
				ids[i] = a.Incidents[0].TicketID
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("concurrent webhooks went to %v, want one incident", ids)
		}
	}
	if n := countType(e.eventsAtLeast(t, e.agent(t, tenant), ids[0], 61), "opsdesk.ticket.alert_received.v1"); n != 60 {
		t.Fatalf("%d alerts on the incident, want 60", n)
	}
}

// TestAlertsBadPayload: an unparseable payload is 400 naming each field,
// and kept in the quarantine.
func TestAlertsBadPayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{})
	tenant := authtest.NewTenantID()
	admin := e.user(t, tenant, newUserID(), "admin@example.com", "admin")
	r := e.as(t, admin, http.MethodPost, "/v1/inbound/alerts", []byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"burning","labels":{}}]}`))
	p := problemOf(t, r)
	if r.Code != http.StatusBadRequest || !slices.Contains(fieldsOf(p), "alerts[0].status") || !strings.Contains(p.Detail, "q_") {
		t.Fatalf("bad payload: %d %s", r.Code, r.Body)
	}
	var list struct{ Items []struct{ Kind string } }
	e.as(t, admin, http.MethodGet, "/v1/quarantine", nil).decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].Kind != "alerts" {
		t.Fatalf("quarantine %+v", list.Items)
	}
	if r := e.as(t, admin, http.MethodPost, "/v1/inbound/alerts", []byte(`not json`)); r.Code != http.StatusBadRequest {
		t.Fatalf("not JSON: %d", r.Code)
	}
}

// TestInboundAddresses: a tenant's extra help-desk addresses are its
// alone; one dropped may be claimed by another tenant; the mail domain's
// addresses are the tenants' slug addresses and cannot be claimed.
func TestInboundAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, intake.Config{MailDomain: "help.example.net"})
	a, b := authtest.NewTenantID(), authtest.NewTenantID()
	adminA := e.user(t, a, newUserID(), "admin@a.example", "admin")
	adminB := e.user(t, b, newUserID(), "admin@b.example", "admin")
	put := func(token string, addrs ...string) response {
		body, _ := json.Marshal(map[string]any{"reopen_window_days": 14, "auto_close_days": 7,
			"unknown_senders": "create_requester", "alerts_auto_resolve": false, "inbound_addresses": addrs})
		return e.as(t, token, http.MethodPut, "/v1/settings/intake", json.RawMessage(body))
	}
	if r := put(adminA, "Support@Acme.example", "it@acme.example"); r.Code != http.StatusOK {
		t.Fatalf("tenant A claims: %d %s", r.Code, r.Body)
	}
	r := put(adminB, "desk@b.example", "support@acme.example")
	if fs := fieldsOf(problemOf(t, r)); r.Code != http.StatusBadRequest || !slices.Equal(fs, []string{"inbound_addresses[1]"}) {
		t.Fatalf("tenant B claims A's address: %d %s", r.Code, r.Body)
	}
	if r := put(adminB, "x@help.example.net"); r.Code != http.StatusBadRequest {
		t.Fatalf("an address of the mail domain: %d %s", r.Code, r.Body)
	}
	// A drops support@, keeps it@; B may now take support@.
	if r := put(adminA, "it@acme.example"); r.Code != http.StatusOK {
		t.Fatalf("tenant A drops an address: %d %s", r.Code, r.Body)
	}
	if r := put(adminB, "support@acme.example"); r.Code != http.StatusOK {
		t.Fatalf("tenant B takes the released address: %d %s", r.Code, r.Body)
	}
	var got struct {
		InboundAddresses []string `json:"inbound_addresses"`
		DefaultAddress   string   `json:"default_address"`
	}
	e.as(t, adminA, http.MethodGet, "/v1/settings/intake", nil).decode(t, &got)
	if !slices.Equal(got.InboundAddresses, []string{"it@acme.example"}) || !strings.HasSuffix(got.DefaultAddress, "@help.example.net") {
		t.Fatalf("tenant A's settings %+v", got)
	}
}
