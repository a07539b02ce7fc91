package ticket_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

const agentID = "u_01JB8ZQ5M6V8Y0K3W4X2N7R9AG"

func agentReply(internal bool) ticket.Comment {
	return ticket.Comment{ID: "c_1", Body: "Which printer?", Internal: internal, AuthorID: agentID, Author: "Bob",
		AuthorRole: "agent", Channel: "api", Policy: policy, At: now}
}

func requesterReply(at time.Time) ticket.Comment {
	return ticket.Comment{ID: "c_2", Body: "The one by the window.", Author: "ada@example.com",
		AuthorRole: "requester", Channel: "email", MessageID: "m1@example.com", Policy: policy, At: at}
}

func commented(c ticket.Comment) ticketv1.TicketCommented {
	return ticketv1.TicketCommented{CommentID: c.ID, Body: c.Body, Internal: c.Internal, AuthorID: c.AuthorID,
		Author: c.Author, AuthorRole: c.AuthorRole, Channel: c.Channel, MessageID: c.MessageID}
}

func TestDecideComment(t *testing.T) {
	h := histories()
	first := ticketv1.TicketFirstResponded{CommentID: "c_1", AgentID: agentID, At: now}
	withResponse := append(append([]any{}, h["open"]...), commented(agentReply(false)), first)
	late := resolvAt.Add(15 * 24 * time.Hour)
	tests := []struct {
		name      string
		given     []any
		when      ticket.Comment
		then      []any
		err       error
		badFields []string
	}{
		{name: "first public agent reply is the first response", given: h["open"], when: agentReply(false),
			then: []any{commented(agentReply(false)), first}},
		{name: "second agent reply is just a comment", given: withResponse, when: agentReply(false),
			then: []any{commented(agentReply(false))}},
		{name: "an internal note is not a response", given: h["open"], when: agentReply(true),
			then: []any{commented(agentReply(true))}},
		{name: "requester answering a ticket pending on them resumes work", given: h["pending"], when: requesterReply(now),
			then: []any{commented(requesterReply(now)), ticketv1.TicketWorkStarted{From: "pending", Cause: "requester_replied"}}},
		{name: "requester reply to a resolved ticket reopens it", given: h["resolved"], when: requesterReply(now),
			then: []any{commented(requesterReply(now)), ticketv1.TicketReopened{From: "resolved", Cause: "requester_replied"}}},
		{name: "requester reply after the reopen window needs a follow-up", given: h["resolved"], when: requesterReply(late),
			err: ticket.ErrFollowUpRequired},
		{name: "requester reply to a closed ticket needs a follow-up", given: h["closed"], when: requesterReply(now),
			err: ticket.ErrFollowUpRequired},
		{name: "agents only add internal notes to closed tickets", given: h["closed"], when: agentReply(false),
			err: &ticket.ConflictError{}},
		{name: "internal note on a closed ticket", given: h["closed"], when: agentReply(true),
			then: []any{commented(agentReply(true))}},
		{name: "requesters write no internal notes", given: h["open"],
			when: func() ticket.Comment { c := requesterReply(now); c.Internal = true; return c }(), badFields: []string{"internal"}},
		{name: "blank body and bad role", given: h["open"],
			when: ticket.Comment{ID: "c_3", Body: " ", Author: "x", AuthorRole: "boss"}, badFields: []string{"body", "author_role"}},
		{name: "body too long", given: h["open"],
			when: func() ticket.Comment { c := agentReply(false); c.Body = strings.Repeat("x", 65537); return c }(), badFields: []string{"body"}},
		{name: "no ticket", when: agentReply(false), err: ticket.ErrNotFound},
		{name: "the same mail again adds nothing", given: append(append([]any{}, h["open"]...), commented(requesterReply(now))),
			when: requesterReply(now), then: nil},
		{name: "the mail that opened the ticket, again, adds nothing",
			given: []any{func() ticketv1.TicketCreated { c := created(); c.MessageID = "m1@example.com"; return c }()},
			when:  requesterReply(now), then: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ticket.DecideComment(ticket.Fold(tt.given), tt.when)
			checkDecision(t, got, err, tt.then, tt.err, tt.badFields)
		})
	}
}

func attachment(i int) ticket.Attachment {
	return ticket.Attachment{ID: fmt.Sprintf("at_%d", i), BlobID: "bl_1", Filename: "screen.png", ContentType: "image/png",
		SHA256: strings.Repeat("ab", 32), Size: 1234}
}

func TestDecideAttach(t *testing.T) {
	h := histories()
	full := append([]any{}, h["open"]...)
	for i := range ticket.MaxAttachments {
		e, _ := ticket.DecideAttach(ticket.Fold(full), attachment(i))
		full = append(full, e...)
	}
	bad := attachment(1)
	bad.Filename = "../etc/passwd"
	tests := []struct {
		name      string
		given     []any
		when      []ticket.Attachment
		then      []any
		err       error
		badFields []string
	}{
		{name: "attach", given: h["open"], when: []ticket.Attachment{attachment(1)}, then: []any{ticketv1.TicketAttachmentAdded{
			AttachmentID: "at_1", BlobID: "bl_1", Filename: "screen.png", ContentType: "image/png", SHA256: strings.Repeat("ab", 32), Size: 1234}}},
		{name: "path in the name", given: h["open"], when: []ticket.Attachment{attachment(0), bad}, badFields: []string{"files[1].filename"}},
		{name: "the hundred-and-first", given: full, when: []ticket.Attachment{attachment(101)}, err: &ticket.ConflictError{}},
		{name: "closed ticket", given: h["closed"], when: []ticket.Attachment{attachment(1)}, err: &ticket.ConflictError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ticket.DecideAttach(ticket.Fold(tt.given), tt.when...)
			checkDecision(t, got, err, tt.then, tt.err, tt.badFields)
		})
	}
	if n := ticket.Fold(full).Attachments; n != ticket.MaxAttachments {
		t.Fatalf("folded %d attachments", n)
	}
}

func TestDecideRate(t *testing.T) {
	h := histories()
	rated := append(append([]any{}, h["resolved"]...), ticketv1.TicketSatisfactionRated{Rating: 4, Resolution: 1})
	again := append(append([]any{}, rated...), ticketv1.TicketReopened{From: "resolved"}, resolvedEvent("open"))
	tests := []struct {
		name      string
		given     []any
		when      ticket.Rate
		then      []any
		err       error
		badFields []string
	}{
		{name: "rate a resolution", given: h["resolved"], when: ticket.Rate{Rating: 5, Comment: "Fast!", RaterID: "u_1"},
			then: []any{ticketv1.TicketSatisfactionRated{Rating: 5, Comment: "Fast!", Resolution: 1, RaterID: "u_1"}}},
		{name: "rate a closed ticket", given: h["closed"], when: ticket.Rate{Rating: 3},
			then: []any{ticketv1.TicketSatisfactionRated{Rating: 3, Resolution: 1}}},
		{name: "once per resolution", given: rated, when: ticket.Rate{Rating: 1}, err: &ticket.ConflictError{}},
		{name: "a new resolution may be rated", given: again, when: ticket.Rate{Rating: 2},
			then: []any{ticketv1.TicketSatisfactionRated{Rating: 2, Resolution: 2}}},
		{name: "not before resolution", given: h["in_progress"], when: ticket.Rate{Rating: 5}, err: &ticket.ConflictError{}},
		{name: "not a cancelled ticket", given: h["cancelled"], when: ticket.Rate{Rating: 5}, err: &ticket.ConflictError{}},
		{name: "rating out of range", given: h["resolved"], when: ticket.Rate{Rating: 6}, badFields: []string{"rating"}},
		{name: "rating zero", given: h["resolved"], when: ticket.Rate{Rating: 0, Comment: strings.Repeat("x", 2001)},
			badFields: []string{"rating", "comment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ticket.DecideRate(ticket.Fold(tt.given), tt.when)
			checkDecision(t, got, err, tt.then, tt.err, tt.badFields)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecideUpdate(t *testing.T) {
	h := histories()
	tests := []struct {
		name      string
		given     []any
		when      ticket.Update
		then      []any
		err       error
		badFields []string
	}{
		{name: "only what changes is recorded", given: h["open"],
			when: ticket.Update{Title: ptr(created().Title), Category: ptr("hardware/printer"), Tags: &[]string{"Printer ", "floor3", "printer"}},
			then: []any{ticketv1.TicketUpdated{Category: ptr("hardware/printer"), Tags: &[]string{"floor3", "printer"}}}},
		{name: "impact change re-derives priority", given: h["open"], when: ticket.Update{Impact: ptr("high")},
			then: []any{ticketv1.TicketUpdated{Impact: ptr("high"), Priority: ptr("P1")}}},
		{name: "a change that keeps the priority records none", given: h["open"],
			when: ticket.Update{Impact: ptr("high"), Urgency: ptr("medium")},
			then: []any{ticketv1.TicketUpdated{Impact: ptr("high"), Urgency: ptr("medium")}}},
		{name: "custom fields compare by value", given: h["open"],
			when: ticket.Update{CustomFields: json.RawMessage(`{ "cost_center": "4711" }`)},
			then: []any{ticketv1.TicketUpdated{CustomFields: json.RawMessage(`{"cost_center":"4711"}`)}}},
		{name: "nothing changes, nothing is recorded", given: h["open"], when: ticket.Update{Impact: ptr("medium")}, then: nil},
		{name: "clearing tags", given: append(append([]any{}, h["open"]...), ticketv1.TicketUpdated{Tags: &[]string{"a"}}),
			when: ticket.Update{Tags: &[]string{}}, then: []any{ticketv1.TicketUpdated{Tags: &[]string{}}}},
		{name: "closed tickets are history", given: h["closed"], when: ticket.Update{Title: ptr("x")}, err: &ticket.ConflictError{}},
		{name: "every bad field is named", given: h["open"], when: ticket.Update{Title: ptr(""), Impact: ptr("huge"),
			Tags: &[]string{"ok", "not ok"}, Watchers: &[]string{"bob"}, ConfigItems: &[]string{"a.b"}, CustomFields: json.RawMessage(`[1]`)},
			badFields: []string{"title", "impact", "tags[0]", "config_items[0]", "watchers[0]", "custom_fields"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ticket.DecideUpdate(ticket.Fold(tt.given), tt.when)
			checkDecision(t, got, err, tt.then, tt.err, tt.badFields)
		})
	}
	// The fold applies an update.
	u := ticket.Fold(append(append([]any{}, h["open"]...), ticketv1.TicketUpdated{Impact: ptr("high"), Priority: ptr("P1"), Tags: &[]string{"x"}}))
	if u.Impact != "high" || u.Priority != "P1" || len(u.Tags) != 1 || u.Title != created().Title {
		t.Fatalf("after update: %+v", u)
	}
}

func other(id, number, typ string) ticketv1.TicketCreated {
	c := created()
	c.TicketID, c.Number, c.Type, c.RequesterID = id, number, typ, "u_01JB8ZQ5M6V8Y0K3W4X2N7R9BB"
	return c
}

func TestDecideLink(t *testing.T) {
	a := created()
	a.RequesterID = "u_01JB8ZQ5M6V8Y0K3W4X2N7R9AA"
	b := other("tk_B", "OPS-8", "problem")
	c := other("tk_C", "OPS-9", "incident")
	withParent := []any{a, ticketv1.TicketLinked{Kind: "parent", Target: "tk_C", TargetNumber: "OPS-9"}}
	tests := []struct {
		name       string
		a, b       []any
		kind       string
		thenA      []any
		thenB      []any
		err        error
		badFields  []string
		wantUnlink bool
	}{
		{name: "related both ways", a: []any{a}, b: []any{b}, kind: "related",
			thenA: []any{ticketv1.TicketLinked{Kind: "related", Target: "tk_B", TargetNumber: "OPS-8"}},
			thenB: []any{ticketv1.TicketLinked{Kind: "related", Target: a.TicketID, TargetNumber: "OPS-7"}}},
		{name: "child's inverse is parent", a: []any{a}, b: []any{b}, kind: "child",
			thenA: []any{ticketv1.TicketLinked{Kind: "child", Target: "tk_B", TargetNumber: "OPS-8"}},
			thenB: []any{ticketv1.TicketLinked{Kind: "parent", Target: a.TicketID, TargetNumber: "OPS-7"}}},
		{name: "caused by a problem", a: []any{a}, b: []any{b}, kind: "caused_by",
			thenA: []any{ticketv1.TicketLinked{Kind: "caused_by", Target: "tk_B", TargetNumber: "OPS-8"}},
			thenB: []any{ticketv1.TicketLinked{Kind: "causes", Target: a.TicketID, TargetNumber: "OPS-7"}}},
		{name: "caused_by must be a problem", a: []any{a}, b: []any{c}, kind: "caused_by", err: &ticket.ConflictError{}},
		{name: "one parent", a: withParent, b: []any{b}, kind: "parent", err: &ticket.ConflictError{}},
		{name: "not parent and child both ways", a: withParent, b: []any{c}, kind: "child", err: &ticket.ConflictError{}},
		{name: "no link twice", a: withParent, b: []any{c}, kind: "parent", err: &ticket.ConflictError{}},
		{name: "not to itself", a: []any{a}, b: []any{a}, kind: "related", err: &ticket.ConflictError{}},
		{name: "unknown kind", a: []any{a}, b: []any{b}, kind: "follow_up_of", badFields: []string{"kind"}},
		{name: "unknown target", a: []any{a}, kind: "related", err: ticket.ErrNotFound},
		{name: "merge closes the duplicate and moves its requester to watch", a: []any{a, ticketv1.TicketOpened{From: "new"}}, b: []any{c}, kind: "duplicate_of",
			thenA: []any{
				ticketv1.TicketLinked{Kind: "duplicate_of", Target: "tk_C", TargetNumber: "OPS-9"},
				ticketv1.TicketMerged{Into: "tk_C", IntoNumber: "OPS-9", Requester: a.Requester, RequesterID: a.RequesterID},
				ticketv1.TicketClosed{From: "open", Reason: "merged"},
			},
			thenB: []any{
				ticketv1.TicketLinked{Kind: "duplicated_by", Target: a.TicketID, TargetNumber: "OPS-7"},
				ticketv1.TicketUpdated{Watchers: &[]string{a.RequesterID}},
			}},
		{name: "no merge into a closed ticket", a: []any{a}, b: []any{c, resolvedEvent("new"), ticketv1.TicketClosed{From: "resolved"}},
			kind: "duplicate_of", err: &ticket.ConflictError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forA, forB, err := ticket.DecideLink(ticket.Fold(tt.a), ticket.Fold(tt.b), tt.kind)
			checkDecision(t, forA, err, tt.thenA, tt.err, tt.badFields)
			checkDecision(t, forB, err, tt.thenB, tt.err, tt.badFields)
		})
	}
	merged := ticket.Fold([]any{a, ticketv1.TicketLinked{Kind: "duplicate_of", Target: "tk_C"}, ticketv1.TicketMerged{Into: "tk_C"},
		ticketv1.TicketClosed{From: "new", Reason: "merged"}})
	if merged.Status != "closed" || merged.MergedInto != "tk_C" {
		t.Fatalf("merged: %+v", merged)
	}
}

func TestDecideUnlink(t *testing.T) {
	a := created()
	b := other("tk_B", "OPS-8", "problem")
	la := []any{a, ticketv1.TicketLinked{Kind: "child", Target: "tk_B"}, ticketv1.TicketLinked{Kind: "duplicate_of", Target: "tk_B"}}
	forA, forB, err := ticket.DecideUnlink(ticket.Fold(la), ticket.Fold([]any{b}), "child")
	checkDecision(t, forA, err, []any{ticketv1.TicketUnlinked{Kind: "child", Target: "tk_B"}}, nil, nil)
	checkDecision(t, forB, err, []any{ticketv1.TicketUnlinked{Kind: "parent", Target: a.TicketID}}, nil, nil)
	if l := ticket.Fold(append(la, forA...)).Links; len(l) != 1 || l[0].Kind != "duplicate_of" {
		t.Fatalf("links after unlink: %+v", l)
	}
	_, _, err = ticket.DecideUnlink(ticket.Fold(la), ticket.Fold([]any{b}), "related")
	checkDecision(t, nil, err, nil, ticket.ErrNotFound, nil)
	_, _, err = ticket.DecideUnlink(ticket.Fold(la), ticket.Fold([]any{b}), "duplicate_of")
	checkDecision(t, nil, err, nil, &ticket.ConflictError{}, nil)
}

func TestDecideAlerts(t *testing.T) {
	firing := func(fp string) ticket.Alert {
		return ticket.Alert{Fingerprint: fp, GroupKey: "g", Status: "firing", Title: "Disk full " + fp, Severity: "high",
			Source: "alertmanager", StartsAt: resolvAt}
	}
	resolvedAlert := func(fp string) ticket.Alert {
		a := firing(fp)
		a.Status, a.EndsAt = "resolved", now
		return a
	}
	received := func(fp string) ticketv1.TicketAlertReceived {
		return ticketv1.TicketAlertReceived{Fingerprint: fp, GroupKey: "g", Title: "Disk full " + fp, Severity: "high",
			Source: "alertmanager", StartsAt: resolvAt}
	}
	id := func() string { return "c_n" }
	open := append(append([]any{}, histories()["open"]...), received("a"), received("b"))
	batch := func(auto bool, as ...ticket.Alert) ticket.AlertBatch {
		return ticket.AlertBatch{Alerts: as, AutoResolve: auto, Policy: policy, NewID: id, At: now}
	}
	note := func(body string) ticketv1.TicketCommented {
		return ticketv1.TicketCommented{CommentID: "c_n", Body: body, Internal: true, Author: "monitoring", AuthorRole: "system", Channel: "alert"}
	}
	tests := []struct {
		name  string
		given []any
		when  ticket.AlertBatch
		then  []any
	}{
		{name: "new alerts are listed once each, repeats add nothing", given: open,
			when: batch(false, firing("a"), firing("c"), firing("c")), then: []any{received("c")}},
		{name: "a resolved alert adds a note", given: open, when: batch(false, resolvedAlert("a")),
			then: []any{ticketv1.TicketAlertResolved{Fingerprint: "a", EndsAt: now}, note("Monitoring reports resolved: Disk full a")}},
		{name: "not every alert resolved: no auto-resolve", given: open, when: batch(true, resolvedAlert("a")),
			then: []any{ticketv1.TicketAlertResolved{Fingerprint: "a", EndsAt: now}, note("Monitoring reports resolved: Disk full a")}},
		{name: "every alert resolved with auto-resolve resolves the incident", given: open,
			when: batch(true, resolvedAlert("a"), resolvedAlert("b")),
			then: []any{ticketv1.TicketAlertResolved{Fingerprint: "a", EndsAt: now}, ticketv1.TicketAlertResolved{Fingerprint: "b", EndsAt: now},
				note("Monitoring reports resolved: Disk full a; Disk full b"),
				ticketv1.TicketResolved{From: "open", Code: "fixed", Note: "Every alert of the incident has resolved (2).", Cause: "alerts_resolved",
					AutoCloseAt: now.Add(7 * 24 * time.Hour), ReopenUntil: now.Add(14 * 24 * time.Hour)}}},
		{name: "a resolved alert never seen firing adds nothing", given: open, when: batch(true, resolvedAlert("z")), then: nil},
		{name: "an alert firing again after it resolved is listed again",
			given: append(append([]any{}, open...), ticketv1.TicketAlertResolved{Fingerprint: "a"}),
			when:  batch(false, firing("a")), then: []any{received("a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ticket.DecideAlerts(ticket.Fold(tt.given), tt.when)
			checkDecision(t, got, nil, tt.then, nil, nil)
		})
	}
}

func TestFollowUp(t *testing.T) {
	old := ticket.Fold(histories()["closed"])
	c := ticket.FollowUp(old, "It broke again.", "email", now)
	c.ID, c.Number = "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9FU", "OPS-99"
	forNew, forOld, err := ticket.DecideFollowUp(old, c)
	if err != nil {
		t.Fatal(err)
	}
	nt := ticket.Fold(forNew)
	if nt.FollowUpOf != old.ID || nt.Requester != old.Requester || nt.Title != "Follow-up to OPS-7: Printer offline" ||
		!nt.HasLink("follow_up_of", old.ID) || nt.Channel != "email" {
		t.Fatalf("follow-up: %+v", nt)
	}
	if !ticket.Fold(append(histories()["closed"], forOld...)).HasLink("followed_up_by", c.ID) {
		t.Fatalf("old ticket not linked: %v", forOld)
	}
	long := old
	long.Title = strings.Repeat("é", 200)
	if n := len([]rune(ticket.FollowUp(long, "", "api", now).Title)); n != ticket.MaxTitle {
		t.Fatalf("long follow-up title has %d characters", n)
	}
}

func TestDecideIdentify(t *testing.T) {
	byAddress := created() // requester ada@example.com, no user id
	known := created()
	known.RequesterID = "u_01JB8ZQ5M6V8Y0K3W4X2N7R9AA"
	tests := []struct {
		name        string
		given       []any
		user, email string
		then        []any
	}{
		{"the address becomes the user", []any{byAddress}, "u_1", "ADA@example.com",
			[]any{ticketv1.TicketRequesterIdentified{RequesterID: "u_1"}}},
		{"another address", []any{byAddress}, "u_1", "bob@example.com", nil},
		{"already a user", []any{known}, "u_1", "ada@example.com", nil},
		{"no ticket", nil, "u_1", "ada@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, ticket.DecideIdentify(ticket.Fold(tt.given), tt.user, tt.email), nil, tt.then, nil, nil)
		})
	}
	if got := ticket.Fold([]any{byAddress, ticketv1.TicketRequesterIdentified{RequesterID: "u_1"}}); got.RequesterID != "u_1" {
		t.Fatalf("requester id after identify: %q", got.RequesterID)
	}
}
