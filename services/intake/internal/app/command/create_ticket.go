// Package command holds intake's command handlers: they turn a command into
// events through the domain's decide functions and append them to the event
// store with optimistic concurrency.
package command

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/intake/internal/codec"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

var tracer = otel.Tracer("opsdesk/intake")

// AnonymousActor is the ce-actor of a command without a known caller.
const AnonymousActor = "anonymous"

// NumberAllocator hands out human ticket numbers, unique per tenant.
type NumberAllocator interface {
	Next(ctx context.Context, tenant string) (int64, error)
}

// CreateTicket logs a new ticket for Tenant.
type CreateTicket struct {
	Tenant      string
	Type        string
	Title       string
	Description string
	Impact      string
	Urgency     string
	Requester   string
	// RequesterID is the requester's user id, when the requester is a user.
	RequesterID string
	Channel     string
	// Actor is who sends the command (ce-actor); AnonymousActor when empty.
	Actor string
	// CorrelationID ties the event to the request that caused it (the
	// request id); empty when there is none.
	CorrelationID string
}

// CreateTicketResult is the created ticket and the stream sequence of its
// event: the consistency token reads can wait for.
type CreateTicketResult struct {
	Ticket   ticket.Ticket
	Sequence uint64
}

// CreateTicketHandler handles CreateTicket.
type CreateTicketHandler struct {
	store   es.Store
	numbers NumberAllocator
	now     func() time.Time
}

// NewCreateTicketHandler returns a handler appending to store (the ticket
// context's store) with numbers from numbers. now is the clock (time.Now
// when nil).
func NewCreateTicketHandler(store es.Store, numbers NumberAllocator, now func() time.Time) (*CreateTicketHandler, error) {
	if store == nil || numbers == nil {
		return nil, errors.New("command: create ticket needs a store and a number allocator")
	}
	if now == nil {
		now = time.Now
	}
	return &CreateTicketHandler{store: store, numbers: numbers, now: now}, nil
}

// Handle validates the command, allocates an id and a number, decides the
// TicketCreated event and appends it. Errors: *ticket.ValidationError,
// es.ErrInvalidKey (bad tenant), es.ErrUnavailable (store or number counter
// unreachable), es.ErrConcurrency (cannot happen for a fresh id, mapped
// like any conflict).
func (h *CreateTicketHandler) Handle(ctx context.Context, cmd CreateTicket) (res CreateTicketResult, err error) {
	ctx, span := tracer.Start(ctx, "intake CreateTicket", trace.WithAttributes(
		attribute.String("opsdesk.service", "intake"),
		attribute.String("opsdesk.tenant", cmd.Tenant),
	))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.String("opsdesk.ticket_id", res.Ticket.ID),
				attribute.Int64("messaging.nats.stream_sequence", int64(res.Sequence)))
		}
		span.End()
	}()
	return h.handle(ctx, cmd)
}

func (h *CreateTicketHandler) handle(ctx context.Context, cmd CreateTicket) (CreateTicketResult, error) {
	if !es.ValidToken(cmd.Tenant) {
		return CreateTicketResult{}, fmt.Errorf("%w: tenant %q", es.ErrInvalidKey, cmd.Tenant)
	}
	c := ticket.Create{
		Type:        cmd.Type,
		Title:       cmd.Title,
		Description: cmd.Description,
		Impact:      cmd.Impact,
		Urgency:     cmd.Urgency,
		Requester:   cmd.Requester,
		RequesterID: cmd.RequesterID,
		Channel:     cmd.Channel,
	}
	// Validate before allocating, so a bad command does not use up a number.
	if err := c.Validate(); err != nil {
		return CreateTicketResult{}, err
	}
	n, err := h.numbers.Next(ctx, cmd.Tenant)
	if err != nil {
		return CreateTicketResult{}, fmt.Errorf("allocate ticket number: %w", err)
	}
	c.ID = ticket.IDPrefix + ulid.Make().String()
	c.Number = ticket.NumberPrefix + strconv.FormatInt(n, 10)
	c.At = h.now()

	// A fresh ULID has no history, so there is nothing to load: the state is
	// empty and expected sequence 0 makes the store reject the append if the
	// impossible happened and the subject already had events.
	payloads, err := ticket.DecideCreate(ticket.Ticket{}, c)
	if err != nil {
		return CreateTicketResult{}, err
	}
	actor := cmd.Actor
	if actor == "" {
		actor = AnonymousActor
	}
	events := make([]es.Event, len(payloads))
	for i, p := range payloads {
		typ, data, err := codec.Encode(p)
		if err != nil {
			return CreateTicketResult{}, err
		}
		events[i] = es.Event{
			ID:            ulid.Make().String(),
			Type:          typ,
			Source:        ticketv1.Source,
			Tenant:        cmd.Tenant,
			AggregateID:   c.ID,
			Time:          c.At.UTC().Truncate(time.Microsecond),
			Actor:         actor,
			CorrelationID: cmd.CorrelationID,
			Data:          data,
		}
	}
	seq, err := h.store.Append(ctx, es.Key{Tenant: cmd.Tenant, ID: c.ID}, 0, events)
	if err != nil {
		return CreateTicketResult{}, fmt.Errorf("append ticket %s: %w", c.ID, err)
	}
	return CreateTicketResult{Ticket: ticket.Fold(payloads), Sequence: seq}, nil
}
