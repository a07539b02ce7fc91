// Package command holds intake's command handlers: they turn a command into
// events through the domain's decide functions and append them to the event
// store with optimistic concurrency.
package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/es"
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

	Category     string
	Tags         []string
	ConfigItems  []string
	Watchers     []string
	CustomFields json.RawMessage
	// MessageID is the Message-ID of the mail that opens the ticket.
	MessageID string
	// IdempotencyKey, when set, makes a retry within IdempotencyTTL return
	// the ticket the first request created.
	IdempotencyKey string
	// Then decides further events of the new ticket, appended with its
	// creation in one atomic write: the comment and files of a mail, the
	// alerts of an incident. at is the creation time.
	Then func(t ticket.Ticket, at time.Time) ([]any, error)
}

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// ErrIdempotencyMismatch: an Idempotency-Key was reused with another
// request (422).
var ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

// Idempotency remembers which ticket an Idempotency-Key created.
type Idempotency interface {
	// Claim records key (with the request's hash) for ticketID, unless the
	// tenant used it within IdempotencyTTL: then it returns the holder's
	// ticket id and request hash and records nothing.
	Claim(ctx context.Context, tenant, key, hash, ticketID string, now time.Time) (heldTicket, heldHash string, err error)
}

// CustomFieldsValidator checks custom fields against the tenant's schema.
type CustomFieldsValidator interface {
	ValidateCustomFields(ctx context.Context, tenant string, raw json.RawMessage) error
}

// CreateTicketResult is the created ticket and the stream sequence of its
// event: the consistency token reads can wait for.
type CreateTicketResult struct {
	Ticket   ticket.Ticket
	Sequence uint64
	// Replayed: an Idempotency-Key retry; the ticket existed already.
	Replayed bool
}

// CreateTicketHandler handles CreateTicket.
type CreateTicketHandler struct {
	store   es.Store
	numbers NumberAllocator
	now     func() time.Time
	// Optional collaborators; nil skips the feature.
	idem   Idempotency
	fields CustomFieldsValidator
}

// WithIdempotency makes the handler honour Idempotency-Key with i.
func (h *CreateTicketHandler) WithIdempotency(i Idempotency) *CreateTicketHandler {
	h.idem = i
	return h
}

// WithCustomFields makes the handler check custom fields with v.
func (h *CreateTicketHandler) WithCustomFields(v CustomFieldsValidator) *CreateTicketHandler {
	h.fields = v
	return h
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
		Type:         cmd.Type,
		Title:        cmd.Title,
		Description:  cmd.Description,
		Impact:       cmd.Impact,
		Urgency:      cmd.Urgency,
		Requester:    cmd.Requester,
		RequesterID:  cmd.RequesterID,
		Channel:      cmd.Channel,
		Category:     cmd.Category,
		Tags:         cmd.Tags,
		ConfigItems:  cmd.ConfigItems,
		Watchers:     cmd.Watchers,
		CustomFields: cmd.CustomFields,
		MessageID:    cmd.MessageID,
	}
	// Validate before allocating, so a bad command does not use up a number.
	if err := c.Validate(); err != nil {
		return CreateTicketResult{}, err
	}
	if h.fields != nil {
		if err := h.fields.ValidateCustomFields(ctx, cmd.Tenant, cmd.CustomFields); err != nil {
			return CreateTicketResult{}, err
		}
	}
	c.ID = ticket.IDPrefix + ulid.Make().String()
	if cmd.IdempotencyKey != "" && h.idem != nil {
		hash := requestHash(cmd)
		held, heldHash, err := h.idem.Claim(ctx, cmd.Tenant, cmd.IdempotencyKey, hash, c.ID, h.now())
		if err != nil {
			return CreateTicketResult{}, fmt.Errorf("idempotency key: %w", err)
		}
		if held != "" {
			if heldHash != hash {
				return CreateTicketResult{}, ErrIdempotencyMismatch
			}
			// A retry: the first request's ticket, or, if that request
			// stopped between claiming the key and appending, this one
			// creates it under the claimed id.
			if res, ok, err := h.existing(ctx, cmd.Tenant, held); err != nil || ok {
				return res, err
			}
			c.ID = held
		}
	}
	n, err := h.numbers.Next(ctx, cmd.Tenant)
	if err != nil {
		return CreateTicketResult{}, fmt.Errorf("allocate ticket number: %w", err)
	}
	c.Number = ticket.NumberPrefix + strconv.FormatInt(n, 10)
	c.At = h.now()

	// A fresh ULID has no history, so there is nothing to load: the state is
	// empty and expected sequence 0 makes the store reject the append if the
	// subject already had events (which only a concurrent retry of the same
	// Idempotency-Key can cause).
	payloads, err := ticket.DecideCreate(ticket.Ticket{}, c)
	if err != nil {
		return CreateTicketResult{}, err
	}
	if cmd.Then != nil {
		more, err := cmd.Then(ticket.Fold(payloads), c.At)
		if err != nil {
			return CreateTicketResult{}, err
		}
		payloads = append(payloads, more...)
	}
	events, err := envelopes(cmd.Tenant, c.ID, payloads, Meta{Actor: cmd.Actor, CorrelationID: cmd.CorrelationID}, c.At)
	if err != nil {
		return CreateTicketResult{}, err
	}
	seq, err := h.store.Append(ctx, es.Key{Tenant: cmd.Tenant, ID: c.ID}, 0, events)
	if errors.Is(err, es.ErrConcurrency) && cmd.IdempotencyKey != "" {
		if res, ok, err := h.existing(ctx, cmd.Tenant, c.ID); err != nil || ok {
			return res, err
		}
	}
	if err != nil {
		return CreateTicketResult{}, fmt.Errorf("append ticket %s: %w", c.ID, err)
	}
	return CreateTicketResult{Ticket: ticket.Fold(payloads), Sequence: seq}, nil
}

// existing returns the ticket id if it has been created.
func (h *CreateTicketHandler) existing(ctx context.Context, tenant, id string) (CreateTicketResult, bool, error) {
	history, last, err := h.store.Load(ctx, es.Key{Tenant: tenant, ID: id})
	if err != nil {
		return CreateTicketResult{}, false, fmt.Errorf("load ticket %s: %w", id, err)
	}
	if len(history) == 0 {
		return CreateTicketResult{}, false, nil
	}
	t, err := fold(history)
	if err != nil {
		return CreateTicketResult{}, false, err
	}
	return CreateTicketResult{Ticket: t, Sequence: last, Replayed: true}, true, nil
}

// requestHash identifies what a create asks for, to tell a retry from a
// reuse of its Idempotency-Key for something else.
func requestHash(cmd CreateTicket) string {
	b, _ := json.Marshal([]any{cmd.Type, cmd.Title, cmd.Description, cmd.Impact, cmd.Urgency, cmd.Requester,
		cmd.RequesterID, cmd.Category, cmd.Tags, cmd.ConfigItems, cmd.Watchers, cmd.CustomFields})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
