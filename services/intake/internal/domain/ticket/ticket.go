// Package ticket is the ticket aggregate of intake: its state folded from
// events (Evolve), the decisions commands make (DecideCreate), and the
// priority matrix. It is pure: no I/O, no clocks, no infrastructure imports.
//
// Events are the typed payloads of api/events/ticket/v1; the application
// layer converts them to and from the event store's envelopes.
package ticket

import (
	"errors"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Statuses of a ticket. This version only logs tickets, so every ticket is
// StatusNew; later versions add the rest of the lifecycle.
const (
	StatusNew = "new"
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
	ID          string
	Number      string
	Type        string
	Status      string
	Title       string
	Description string
	Impact      string
	Urgency     string
	Priority    string
	Requester   string
	RequesterID string
	Channel     string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Version is the number of events folded in (0 for no ticket).
	Version uint64
}

// Exists reports whether the ticket has been created.
func (t Ticket) Exists() bool { return t.Version > 0 }

// Evolve returns the state after event e. It only mutates state; every rule
// was checked when the event was decided. Unknown events still count as a
// version, so Version always equals the length of the history.
func Evolve(t Ticket, e any) Ticket {
	switch e := e.(type) {
	case ticketv1.TicketCreated:
		t = Ticket{
			ID:          e.TicketID,
			Number:      e.Number,
			Type:        e.Type,
			Status:      StatusNew,
			Title:       e.Title,
			Description: e.Description,
			Impact:      e.Impact,
			Urgency:     e.Urgency,
			Priority:    e.Priority,
			Requester:   e.Requester,
			RequesterID: e.RequesterID,
			Channel:     e.Channel,
			CreatedAt:   e.CreatedAt,
			UpdatedAt:   e.CreatedAt,
			Version:     t.Version,
		}
	case *ticketv1.TicketCreated:
		return Evolve(t, *e)
	}
	t.Version++
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
