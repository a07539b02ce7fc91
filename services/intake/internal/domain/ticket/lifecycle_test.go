package ticket_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

var (
	now      = time.Date(2025, 11, 10, 14, 0, 0, 0, time.UTC)
	resolvAt = time.Date(2025, 11, 4, 10, 0, 0, 0, time.UTC)
	policy   = ticket.Policy{AutoCloseAfter: 7 * 24 * time.Hour, ReopenWindow: 14 * 24 * time.Hour}
)

func resolvedEvent(from string) ticketv1.TicketResolved {
	return ticketv1.TicketResolved{From: from, Code: "fixed", Note: "Replaced toner.",
		AutoCloseAt: resolvAt.Add(7 * 24 * time.Hour), ReopenUntil: resolvAt.Add(14 * 24 * time.Hour)}
}

// histories brings a ticket to each status through real transitions.
func histories() map[string][]any {
	c := created()
	return map[string][]any{
		"new":         {c},
		"open":        {c, ticketv1.TicketOpened{From: "new"}},
		"in_progress": {c, ticketv1.TicketOpened{From: "new"}, ticketv1.TicketWorkStarted{From: "open"}},
		"pending": {c, ticketv1.TicketOpened{From: "new"}, ticketv1.TicketWorkStarted{From: "open"},
			ticketv1.TicketPended{From: "in_progress", Reason: "awaiting_requester"}},
		"resolved":  {c, resolvedEvent("new")},
		"closed":    {c, resolvedEvent("new"), ticketv1.TicketClosed{From: "resolved", Reason: "manual"}},
		"cancelled": {c, ticketv1.TicketCancelled{From: "new"}},
	}
}

// allowed is the state machine as the issue states it, written out by hand
// rather than read from the code under test.
var allowed = map[string][]string{
	"new":         {"open", "start", "pend", "resolve", "cancel"},
	"open":        {"start", "pend", "resolve", "cancel"},
	"in_progress": {"pend", "resolve", "cancel"},
	"pending":     {"start", "resolve", "cancel"},
	"resolved":    {"close", "reopen"},
	"closed":      {"reopen"},
	"cancelled":   nil,
}

// command is a valid command for each action.
func command(action string) ticket.Transition {
	c := ticket.Transition{Action: action, Policy: policy, At: now}
	switch action {
	case "pend":
		c.Reason, c.Note = "awaiting_third_party", "Waiting for the vendor."
	case "resolve":
		c.Code, c.Note = "workaround", "Printing to floor 2 for now."
	case "reopen":
		c.Reason = "Still broken."
	case "cancel":
		c.Reason = "Logged twice by mistake."
	}
	return c
}

// then is the event each allowed action decides from status.
func then(action, status string) []any {
	switch action {
	case "open":
		return []any{ticketv1.TicketOpened{From: status}}
	case "start":
		return []any{ticketv1.TicketWorkStarted{From: status}}
	case "pend":
		return []any{ticketv1.TicketPended{From: status, Reason: "awaiting_third_party", Note: "Waiting for the vendor."}}
	case "resolve":
		return []any{ticketv1.TicketResolved{From: status, Code: "workaround", Note: "Printing to floor 2 for now.",
			AutoCloseAt: now.Add(7 * 24 * time.Hour), ReopenUntil: now.Add(14 * 24 * time.Hour)}}
	case "close":
		return []any{ticketv1.TicketClosed{From: status, Reason: "manual"}}
	case "reopen":
		return []any{ticketv1.TicketReopened{From: status, Reason: "Still broken."}}
	case "cancel":
		return []any{ticketv1.TicketCancelled{From: status, Reason: "Logged twice by mistake."}}
	}
	return nil
}

func TestEveryTransition(t *testing.T) {
	statuses := 0
	for status, history := range histories() {
		given := ticket.Fold(history)
		if given.Status != status {
			t.Fatalf("history for %s folds to %s", status, given.Status)
		}
		statuses++
		for _, action := range ticket.Actions {
			t.Run(status+"/"+action, func(t *testing.T) {
				got, err := ticket.DecideTransition(given, command(action))
				ok := slices.Contains(allowed[status], action)
				switch {
				case ok && status == "closed" && action == "reopen":
					if !errors.Is(err, ticket.ErrFollowUpRequired) || got != nil {
						t.Fatalf("reopen closed = %v, %v; want ErrFollowUpRequired", got, err)
					}
				case ok:
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if want := then(action, status); !reflect.DeepEqual(got, want) {
						t.Fatalf("events\n %#v\nwant\n %#v", got, want)
					}
					// The event really moves the ticket on.
					after := ticket.Fold(append(append([]any{}, history...), got...))
					if after.Status == status {
						t.Fatalf("status still %s after %s", status, action)
					}
				default:
					var te *ticket.TransitionError
					if !errors.As(err, &te) {
						t.Fatalf("err = %v, want *TransitionError", err)
					}
					if te.Action != action || te.Status != status || !slices.Equal(te.Allowed, allowed[status]) {
						t.Fatalf("TransitionError %+v, want allowed %v", te, allowed[status])
					}
				}
			})
		}
	}
	if statuses != 7 {
		t.Fatalf("%d statuses tested, want 7", statuses)
	}
}

func TestStatusAfterTransitions(t *testing.T) {
	want := map[string]string{"open": "open", "start": "in_progress", "pend": "pending", "resolve": "resolved",
		"close": "closed", "reopen": "open", "cancel": "cancelled"}
	for action, status := range want {
		from := map[string]string{"open": "new", "start": "open", "pend": "open", "resolve": "open",
			"close": "resolved", "reopen": "resolved", "cancel": "open"}[action]
		h := histories()[from]
		given := ticket.Fold(h)
		c := command(action)
		if action == "reopen" {
			c.At = resolvAt.Add(time.Hour)
		}
		got, err := ticket.DecideTransition(given, c)
		if err != nil {
			t.Fatalf("%s from %s: %v", action, from, err)
		}
		if s := ticket.Fold(append(append([]any{}, h...), got...)).Status; s != status {
			t.Errorf("%s from %s -> %s, want %s", action, from, s, status)
		}
	}
}

func TestTransitionRules(t *testing.T) {
	h := histories()
	tests := []struct {
		name      string
		given     []any
		when      ticket.Transition
		then      []any
		err       error
		badFields []string
	}{
		{name: "no ticket", when: command("open"), err: ticket.ErrNotFound},
		{name: "unknown action", given: h["new"], when: ticket.Transition{Action: "escalate"}, badFields: []string{"action"}},
		{name: "pend needs a known reason", given: h["open"],
			when: ticket.Transition{Action: "pend", Reason: "lunch"}, badFields: []string{"reason"}},
		{name: "resolve needs a code and a note", given: h["open"],
			when: ticket.Transition{Action: "resolve", Note: "  "}, badFields: []string{"code", "note"}},
		{name: "reopen within the window", given: h["resolved"],
			when: ticket.Transition{Action: "reopen", At: resolvAt.Add(14*24*time.Hour - time.Second)},
			then: []any{ticketv1.TicketReopened{From: "resolved"}}},
		{name: "reopen after the window asks for a follow-up", given: h["resolved"],
			when: ticket.Transition{Action: "reopen", At: resolvAt.Add(14*24*time.Hour + time.Second)},
			err:  ticket.ErrFollowUpRequired},
		{name: "auto close", given: h["resolved"], when: ticket.Transition{Action: "close", Closing: "auto"},
			then: []any{ticketv1.TicketClosed{From: "resolved", Reason: "auto"}}},
		{name: "a merged ticket cannot be reopened", given: append(append([]any{}, h["open"]...),
			ticketv1.TicketMerged{Into: "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TX"}, ticketv1.TicketClosed{From: "open", Reason: "merged"}),
			when: ticket.Transition{Action: "reopen", At: now}, err: &ticket.TransitionError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ticket.DecideTransition(ticket.Fold(tt.given), tt.when)
			checkDecision(t, got, err, tt.then, tt.err, tt.badFields)
		})
	}
}

func TestReopenClearsResolutionAndAutoClose(t *testing.T) {
	h := append(histories()["resolved"], ticketv1.TicketReopened{From: "resolved"})
	got := ticket.Fold(h)
	if got.Status != "open" || got.ResolutionCode != "" || !got.AutoCloseAt.IsZero() || got.Resolutions != 1 {
		t.Fatalf("after reopen: %+v", got)
	}
	if got.DueForAutoClose(now.Add(365 * 24 * time.Hour)) {
		t.Fatal("a reopened ticket is due for auto-close")
	}
	r := ticket.Fold(histories()["resolved"])
	if r.DueForAutoClose(resolvAt.Add(7*24*time.Hour - time.Nanosecond)) {
		t.Fatal("due before its time")
	}
	if !r.DueForAutoClose(resolvAt.Add(7 * 24 * time.Hour)) {
		t.Fatal("not due at its time")
	}
}

// checkDecision asserts a decide function's answer: events then, or an
// error matching err (errors.Is, or errors.As for a typed target), or a
// *ValidationError naming badFields in order.
func checkDecision(t *testing.T, got []any, err error, then []any, wantErr error, badFields []string) {
	t.Helper()
	switch {
	case badFields != nil:
		var ve *ticket.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("err = %v, want *ValidationError", err)
		}
		var names []string
		for _, f := range ve.Fields {
			names = append(names, f.Field)
		}
		if !slices.Equal(names, badFields) {
			t.Fatalf("fields %v, want %v", names, badFields)
		}
	case wantErr != nil:
		ok := errors.Is(err, wantErr)
		switch wantErr.(type) {
		case *ticket.TransitionError:
			var te *ticket.TransitionError
			ok = errors.As(err, &te)
		case *ticket.ConflictError:
			var ce *ticket.ConflictError
			ok = errors.As(err, &ce)
		}
		if !ok {
			t.Fatalf("err = %v, want %T %v", err, wantErr, wantErr)
		}
	default:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if !reflect.DeepEqual(got, then) {
			t.Fatalf("events\n %#v\nwant\n %#v", got, then)
		}
	}
	if err != nil && got != nil {
		t.Fatalf("events %v with error %v", got, err)
	}
}

func TestEvolveAtKeepsTheLifecycleTimes(t *testing.T) {
	t0 := created().CreatedAt
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	var tk ticket.Ticket
	steps := []struct {
		e  any
		at time.Time
	}{
		{created(), t0},
		{ticketv1.TicketFirstResponded{CommentID: "c_1", At: at(1)}, at(1)},
		{resolvedEvent("new"), at(2)},
		{ticketv1.TicketReopened{From: "resolved"}, at(3)},
		{resolvedEvent("open"), at(4)},
		{ticketv1.TicketSatisfactionRated{Rating: 3, Resolution: 2}, at(5)},
		{ticketv1.TicketClosed{From: "resolved", Reason: "auto"}, at(6)},
	}
	for i, s := range steps {
		tk = ticket.EvolveAt(tk, s.e, s.at)
		if i == 3 && !tk.ResolvedAt.IsZero() {
			t.Fatalf("reopen kept resolved_at %v", tk.ResolvedAt)
		}
	}
	if !tk.FirstResponseAt.Equal(at(1)) || !tk.ResolvedAt.Equal(at(4)) || !tk.ClosedAt.Equal(at(6)) ||
		!tk.UpdatedAt.Equal(at(6)) || tk.Satisfaction != 3 || tk.Version != 7 || !tk.CreatedAt.Equal(t0) {
		t.Fatalf("timed fold: %+v", tk)
	}
}
