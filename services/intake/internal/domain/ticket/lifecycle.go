package ticket

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Actions are the intent-revealing lifecycle commands, the {action} of
// POST /v1/tickets/{id}/{action}.
const (
	ActionOpen    = "open"
	ActionStart   = "start"
	ActionPend    = "pend"
	ActionResolve = "resolve"
	ActionClose   = "close"
	ActionReopen  = "reopen"
	ActionCancel  = "cancel"
)

// Actions lists every action in lifecycle order.
var Actions = []string{ActionOpen, ActionStart, ActionPend, ActionResolve, ActionClose, ActionReopen, ActionCancel}

// transitions is the state machine: the statuses each action leaves from.
// Reopen is special: from resolved within the reopen window it reopens;
// past the window, and from closed, the caller opens a follow-up ticket
// instead (ErrFollowUpRequired).
var transitions = map[string][]string{
	ActionOpen:    {StatusNew},
	ActionStart:   {StatusNew, StatusOpen, StatusPending},
	ActionPend:    {StatusNew, StatusOpen, StatusInProgress},
	ActionResolve: {StatusNew, StatusOpen, StatusInProgress, StatusPending},
	ActionClose:   {StatusResolved},
	ActionReopen:  {StatusResolved, StatusClosed},
	ActionCancel:  {StatusNew, StatusOpen, StatusInProgress, StatusPending},
}

// Limits of lifecycle texts, in characters.
const (
	MaxNote   = 10000
	MaxReason = 1000
)

var (
	// ErrNotFound: the ticket has no history.
	ErrNotFound = errors.New("ticket not found")
	// ErrFollowUpRequired: the ticket can no longer be reopened (closed, or
	// resolved longer ago than the reopen window); the caller opens a
	// follow-up ticket linked to it instead.
	ErrFollowUpRequired = errors.New("ticket can no longer be reopened; open a follow-up")
)

// TransitionError is an action the ticket's status does not allow. Allowed
// lists the actions that status does allow, for the client.
type TransitionError struct {
	Action, Status string
	Allowed        []string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a ticket that is %s (allowed: %s)", e.Action, e.Status, strings.Join(e.Allowed, ", "))
}

// ConflictError is a command the ticket's state refuses for a reason other
// than its status, e.g. rating a resolution twice.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return e.Reason }

// AllowedActions returns the actions a ticket in status may take.
func AllowedActions(status string) []string {
	var out []string
	for _, a := range Actions {
		if slices.Contains(transitions[a], status) {
			out = append(out, a)
		}
	}
	return out
}

// Policy is the tenant's lifecycle settings a decision needs.
type Policy struct {
	// AutoCloseAfter: a resolved ticket closes by itself this long after.
	AutoCloseAfter time.Duration
	// ReopenWindow: a resolved ticket may be reopened this long after.
	ReopenWindow time.Duration
}

// Transition is a lifecycle command.
type Transition struct {
	Action string
	// Reason: why the ticket waits (pend: one of the PendAwaiting* values),
	// or a free text for cancel and reopen.
	Reason string
	// Note: the pend note or the resolution note.
	Note string
	// Code is the resolution code (resolve).
	Code string
	// Closing says why a close happens: ticketv1.CloseManual (default) or
	// CloseAuto for the auto-close timer.
	Closing string
	Policy  Policy
	At      time.Time
}

var pendReasons = []string{ticketv1.PendAwaitingRequester, ticketv1.PendAwaitingThirdParty, ticketv1.PendAwaitingChange}

// ResolutionCodes are the codes a resolve may give.
var ResolutionCodes = []string{
	ticketv1.ResolutionFixed, ticketv1.ResolutionWorkaround, ticketv1.ResolutionNoFaultFound,
	ticketv1.ResolutionNotReproducible, ticketv1.ResolutionDuplicate, ticketv1.ResolutionUserEducation,
	ticketv1.ResolutionOutOfScope,
}

// DecideTransition checks a lifecycle command against the ticket and returns
// its event. Errors: ErrNotFound, *TransitionError (status does not allow
// the action, 409), ErrFollowUpRequired (reopen too late), *ValidationError.
func DecideTransition(t Ticket, c Transition) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	from, ok := transitions[c.Action]
	if !ok {
		return nil, &ValidationError{Fields: []FieldError{{Field: "action", Message: "must be one of " + strings.Join(Actions, ", ")}}}
	}
	if !slices.Contains(from, t.Status) || (c.Action == ActionReopen && t.MergedInto != "") {
		return nil, &TransitionError{Action: c.Action, Status: t.Status, Allowed: AllowedActions(t.Status)}
	}
	var errs fields
	errs.maxLen("reason", c.Reason, MaxReason)
	errs.maxLen("note", c.Note, MaxNote)
	var e any
	switch c.Action {
	case ActionOpen:
		e = ticketv1.TicketOpened{From: t.Status}
	case ActionStart:
		e = ticketv1.TicketWorkStarted{From: t.Status}
	case ActionPend:
		if !slices.Contains(pendReasons, c.Reason) {
			errs.add("reason", "must be one of "+strings.Join(pendReasons, ", "))
		}
		e = ticketv1.TicketPended{From: t.Status, Reason: c.Reason, Note: c.Note}
	case ActionResolve:
		if !slices.Contains(ResolutionCodes, c.Code) {
			errs.add("code", "must be one of "+strings.Join(ResolutionCodes, ", "))
		}
		if strings.TrimSpace(c.Note) == "" {
			errs.add("note", "must say how the ticket was resolved")
		}
		e = resolved(t, c.Code, c.Note, "", c.Policy, c.At)
	case ActionClose:
		reason := c.Closing
		if reason == "" {
			reason = ticketv1.CloseManual
		}
		e = ticketv1.TicketClosed{From: t.Status, Reason: reason}
	case ActionReopen:
		if t.Status == StatusClosed || c.At.After(t.ReopenUntil) {
			return nil, ErrFollowUpRequired
		}
		e = ticketv1.TicketReopened{From: t.Status, Reason: c.Reason}
	case ActionCancel:
		e = ticketv1.TicketCancelled{From: t.Status, Reason: c.Reason}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return []any{e}, nil
}

// resolved is the TicketResolved event of a resolve at at under policy.
func resolved(t Ticket, code, note, cause string, p Policy, at time.Time) ticketv1.TicketResolved {
	at = at.UTC().Truncate(time.Microsecond)
	return ticketv1.TicketResolved{
		From: t.Status, Code: code, Note: note, Cause: cause,
		AutoCloseAt: at.Add(p.AutoCloseAfter), ReopenUntil: at.Add(p.ReopenWindow),
	}
}

// DueForAutoClose reports whether a resolved ticket's auto-close time has
// come at now.
func (t Ticket) DueForAutoClose(now time.Time) bool {
	return t.Status == StatusResolved && !t.AutoCloseAt.IsZero() && !now.Before(t.AutoCloseAt)
}

// fields collects field errors while a command is checked.
type fields []FieldError

func (f *fields) add(field, msg string) { *f = append(*f, FieldError{Field: field, Message: msg}) }

// maxLen checks a text's length, and that it holds no NUL, which
// Postgres text and jsonb cannot store.
func (f *fields) maxLen(field, v string, n int) {
	switch {
	case utf8.RuneCountInString(v) > n:
		f.add(field, fmt.Sprintf("must be at most %d characters", n))
	case strings.ContainsRune(v, 0):
		f.add(field, "must not contain NUL characters")
	case !utf8.ValidString(v):
		f.add(field, "must be valid UTF-8")
	}
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}
