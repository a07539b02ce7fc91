// Package ticketv1 holds version 1 of the ticket context's event contracts:
// the payloads that intake appends to the TICKETS stream.
package ticketv1

import "time"

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

// TicketCreated records that a ticket was logged. Its JSON Schema is
// ticket.created.v1.schema.json beside this file.
type TicketCreated struct {
	TicketID    string    `json:"ticket_id"`
	Number      string    `json:"number"`
	Type        string    `json:"type"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Impact      string    `json:"impact"`
	Urgency     string    `json:"urgency"`
	Requester   string    `json:"requester"`
	Channel     string    `json:"channel"`
	CreatedAt   time.Time `json:"created_at"`
}
