// Package ticket is the ticket aggregate of intake: its state folded from
// events (Evolve), the decisions commands make (DecideCreate), and the
// priority matrix. It is pure: no I/O, no clocks, no infrastructure imports.
//
// Events are the typed payloads of api/events/ticket/v1; the application
// layer converts them to and from the event store's envelopes.
package ticket

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Statuses of a ticket: the lifecycle of lifecycle.go.
const (
	StatusNew        = ticketv1.StatusNew
	StatusOpen       = ticketv1.StatusOpen
	StatusInProgress = ticketv1.StatusInProgress
	StatusPending    = ticketv1.StatusPending
	StatusResolved   = ticketv1.StatusResolved
	StatusClosed     = ticketv1.StatusClosed
	StatusCancelled  = ticketv1.StatusCancelled
)

// IDPrefix starts every ticket id: tk_<ULID>.
const IDPrefix = "tk_"

// NumberPrefix starts every human ticket number: OPS-<n>. A constant until
// tenants can configure their own.
const NumberPrefix = "OPS-"

// ErrAlreadyExists is returned when a create command targets a ticket that
// already has history.
var ErrAlreadyExists = errors.New("ticket already exists")

// Ticket is the state of one ticket, folded from its events.
type Ticket struct {
	ID           string
	Number       string
	Type         string
	Status       string
	Title        string
	Description  string
	Impact       string
	Urgency      string
	Priority     string
	Requester    string
	RequesterID  string
	Channel      string
	Category     string
	Tags         []string
	ConfigItems  []string
	Watchers     []string
	CustomFields json.RawMessage
	CreatedAt    time.Time
	UpdatedAt    time.Time

	// PendingReason is why a pending ticket waits.
	PendingReason string
	// Resolution of the last resolve, and its deadlines.
	ResolutionCode, ResolutionNote string
	AutoCloseAt, ReopenUntil       time.Time
	// Resolutions counts resolves; RatedResolution is the last one rated.
	Resolutions, RatedResolution int
	// FirstResponded is set by the first public reply of an agent.
	FirstResponded bool
	// Satisfaction is the last rating (0: none).
	Satisfaction int
	// Times of the lifecycle, from the events' times (EvolveAt); zero
	// when folded without times.
	ResolvedAt, ClosedAt, FirstResponseAt time.Time
	Links                                 []Link
	MergedInto                            string
	FollowUpOf                            string
	Comments                              int
	Attachments                           int
	// Alerts maps the fingerprint of each alert ever attached to whether
	// it is still firing.
	Alerts map[string]bool
	// Messages are the Message-IDs of the mail that reached the ticket
	// (the opening mail, mailed replies): a redelivery adds nothing.
	Messages []string

	// Version is the number of events folded in (0 for no ticket).
	Version uint64
}

// Link is one link to another ticket, as seen from this one.
type Link struct {
	Kind, Target, TargetNumber string
}

// Exists reports whether the ticket has been created.
func (t Ticket) Exists() bool { return t.Version > 0 }

// Terminal reports whether the ticket's lifecycle is over.
func (t Ticket) Terminal() bool { return t.Status == StatusClosed || t.Status == StatusCancelled }

// HasLink reports whether the ticket links to target with kind.
func (t Ticket) HasLink(kind, target string) bool {
	for _, l := range t.Links {
		if l.Kind == kind && l.Target == target {
			return true
		}
	}
	return false
}

// Evolve returns the state after event e. It only mutates state; every rule
// was checked when the event was decided. Unknown events still count as a
// version, so Version always equals the length of the history. Slices and
// maps are copied on write, so earlier states stay valid.
func Evolve(t Ticket, e any) Ticket {
	if v := reflect.ValueOf(e); v.Kind() == reflect.Pointer && !v.IsNil() {
		e = v.Elem().Interface() // the codec returns values; callers may hold pointers
	}
	switch e := e.(type) {
	case ticketv1.TicketCreated:
		t = Ticket{
			ID:           e.TicketID,
			Number:       e.Number,
			Type:         e.Type,
			Status:       StatusNew,
			Title:        e.Title,
			Description:  e.Description,
			Impact:       e.Impact,
			Urgency:      e.Urgency,
			Priority:     e.Priority,
			Requester:    e.Requester,
			RequesterID:  e.RequesterID,
			Channel:      e.Channel,
			Category:     e.Category,
			Tags:         e.Tags,
			ConfigItems:  e.ConfigItems,
			Watchers:     e.Watchers,
			CustomFields: e.CustomFields,
			FollowUpOf:   e.FollowUpOf,
			Messages:     nonEmpty(e.MessageID),
			CreatedAt:    e.CreatedAt,
			UpdatedAt:    e.CreatedAt,
			Version:      t.Version,
		}
	case ticketv1.TicketUpdated:
		t = evolveUpdated(t, e)
	case ticketv1.TicketOpened:
		t.Status = StatusOpen
	case ticketv1.TicketWorkStarted:
		t.Status, t.PendingReason = StatusInProgress, ""
	case ticketv1.TicketPended:
		t.Status, t.PendingReason = StatusPending, e.Reason
	case ticketv1.TicketResolved:
		t.Status, t.PendingReason = StatusResolved, ""
		t.ResolutionCode, t.ResolutionNote = e.Code, e.Note
		t.AutoCloseAt, t.ReopenUntil = e.AutoCloseAt, e.ReopenUntil
		t.Resolutions++
	case ticketv1.TicketClosed:
		t.Status = StatusClosed
	case ticketv1.TicketReopened:
		t.Status = StatusOpen
		t.ResolutionCode, t.ResolutionNote = "", ""
		t.AutoCloseAt, t.ReopenUntil = time.Time{}, time.Time{}
	case ticketv1.TicketCancelled:
		t.Status, t.PendingReason = StatusCancelled, ""
	case ticketv1.TicketCommented:
		t.Comments++
		if e.MessageID != "" {
			t.Messages = append(slices.Clip(t.Messages), e.MessageID)
		}
	case ticketv1.TicketFirstResponded:
		t.FirstResponded = true
	case ticketv1.TicketAttachmentAdded:
		t.Attachments++
	case ticketv1.TicketLinked:
		t.Links = append(slices.Clip(t.Links), Link{Kind: e.Kind, Target: e.Target, TargetNumber: e.TargetNumber})
	case ticketv1.TicketUnlinked:
		t.Links = slices.DeleteFunc(slices.Clone(t.Links), func(l Link) bool { return l.Kind == e.Kind && l.Target == e.Target })
	case ticketv1.TicketMerged:
		t.MergedInto = e.Into
	case ticketv1.TicketSatisfactionRated:
		t.RatedResolution, t.Satisfaction = e.Resolution, e.Rating
	case ticketv1.TicketAlertReceived:
		t.Alerts = maps.Clone(t.Alerts)
		if t.Alerts == nil {
			t.Alerts = map[string]bool{}
		}
		t.Alerts[e.Fingerprint] = true
	case ticketv1.TicketAlertResolved:
		t.Alerts = maps.Clone(t.Alerts)
		t.Alerts[e.Fingerprint] = false
	case ticketv1.TicketRequesterIdentified:
		t.RequesterID = e.RequesterID
	}
	t.Version++
	return t
}

// HasMessage reports whether the mail with Message-ID id reached the ticket.
func (t Ticket) HasMessage(id string) bool { return id != "" && slices.Contains(t.Messages, id) }

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func evolveUpdated(t Ticket, e ticketv1.TicketUpdated) Ticket {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&t.Title, e.Title)
	set(&t.Description, e.Description)
	set(&t.Category, e.Category)
	set(&t.Impact, e.Impact)
	set(&t.Urgency, e.Urgency)
	set(&t.Priority, e.Priority)
	if e.Tags != nil {
		t.Tags = *e.Tags
	}
	if e.ConfigItems != nil {
		t.ConfigItems = *e.ConfigItems
	}
	if e.Watchers != nil {
		t.Watchers = *e.Watchers
	}
	if e.CustomFields != nil {
		t.CustomFields = e.CustomFields
	}
	return t
}

// EvolveAt is Evolve for an event that happened at at: it also keeps
// UpdatedAt and the lifecycle's times.
func EvolveAt(t Ticket, e any, at time.Time) Ticket {
	t = Evolve(t, e)
	if v := reflect.ValueOf(e); v.Kind() == reflect.Pointer && !v.IsNil() {
		e = v.Elem().Interface()
	}
	at = at.UTC()
	if at.After(t.UpdatedAt) {
		t.UpdatedAt = at
	}
	switch e := e.(type) {
	case ticketv1.TicketResolved:
		t.ResolvedAt, t.ClosedAt = at, time.Time{}
	case ticketv1.TicketReopened:
		t.ResolvedAt = time.Time{}
	case ticketv1.TicketClosed, ticketv1.TicketCancelled:
		t.ClosedAt = at
	case ticketv1.TicketFirstResponded:
		t.FirstResponseAt = e.At
	}
	return t
}

// Fold returns the state after the whole history.
func Fold(history []any) Ticket {
	var t Ticket
	for _, e := range history {
		t = Evolve(t, e)
	}
	return t
}
