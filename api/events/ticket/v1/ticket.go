// Package ticketv1 holds version 1 of the ticket context's event contracts:
// the payloads that intake appends to the TICKETS stream.
package ticketv1

import (
	"embed"
	"time"

	"github.com/opsdesk/opsdesk/api/events"
)

// Stream and subject layout of the ticket context.
const (
	// Context is the first subject token: ticket.<tenant>.<ticket-id>.
	Context = "ticket"
	// Stream is the JetStream stream holding every ticket event.
	Stream = "TICKETS"
	// Source is the CloudEvents source of events intake appends.
	Source = "/services/intake"
)

// TypeTicketCreated is the ce-type of TicketCreated.
const TypeTicketCreated = "opsdesk.ticket.created.v1"

// Ticket types.
const (
	TypeIncident       = "incident"
	TypeServiceRequest = "service_request"
	TypeProblem        = "problem"
	TypeChange         = "change"
)

// Levels used for impact and urgency.
const (
	LevelLow    = "low"
	LevelMedium = "medium"
	LevelHigh   = "high"
)

// Priorities, derived from impact and urgency with the ITIL matrix when a
// ticket is created: P1 critical, P2 high, P3 medium, P4 low, P5 planning.
const (
	PriorityP1 = "P1"
	PriorityP2 = "P2"
	PriorityP3 = "P3"
	PriorityP4 = "P4"
	PriorityP5 = "P5"
)

// Channels a ticket can arrive through.
const (
	ChannelAPI = "api"
)

// TicketCreated records that a ticket was logged. Its JSON Schema is
// ticket.created.v1.schema.json beside this file.
//
// Priority is recorded rather than re-derived by readers, so a later change
// of the priority matrix does not rewrite history.
type TicketCreated struct {
	TicketID    string `json:"ticket_id"`
	Number      string `json:"number"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Impact      string `json:"impact"`
	Urgency     string `json:"urgency"`
	Priority    string `json:"priority"`
	Requester   string `json:"requester"`
	// RequesterID is the requester's user id when the requester is a user
	// (a ticket logged by a requester for themselves, or by an agent for a
	// known user); empty for someone OpsDesk does not know yet.
	RequesterID string    `json:"requester_id,omitempty"`
	Channel     string    `json:"channel"`
	CreatedAt   time.Time `json:"created_at"`
}

// Schemas holds the JSON Schema (draft 2020-12) of every event type of this
// package, one file per type, named as events.EventType.Schema says.
//
//go:embed *.schema.json
var Schemas embed.FS

// EventType describes one event type of this package. It is the shared
// events.EventType; the alias keeps ticketv1.EventType working.
type EventType = events.EventType

// EventTypes lists every event type of the ticket context, version 1.
func EventTypes() []EventType {
	return []EventType{
		{
			Type:   TypeTicketCreated,
			New:    func() any { return &TicketCreated{} },
			Schema: "ticket.created.v1.schema.json",
			Example: func() any {
				return &TicketCreated{
					TicketID:    "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE",
					Number:      "OPS-1042",
					Type:        TypeIncident,
					Title:       "Printer on floor 3 is offline",
					Description: "Nobody on floor 3 can print since 9:00.",
					Impact:      LevelMedium,
					Urgency:     LevelHigh,
					Priority:    PriorityP2,
					Requester:   "ada@example.com",
					RequesterID: "u_01JB8ZQ5M6V8Y0K3W4X2N7R9TF",
					Channel:     ChannelAPI,
					CreatedAt:   time.Date(2025, 11, 3, 9, 12, 45, 123456000, time.UTC),
				}
			},
		},
	}
}
