package command

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/settings"
	"github.com/opsdesk/opsdesk/services/intake/internal/codec"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// ErrPrecondition: If-Match named another version of the ticket (412).
var ErrPrecondition = errors.New("precondition failed")

// Meta is who sends a command and the request it came with (ce-actor,
// ce-correlationid).
type Meta struct{ Actor, CorrelationID string }

// Ref names the ticket a command acts on.
type Ref struct {
	Tenant string
	// ID is the ticket id (tk_...) or number (OPS-n).
	ID string
	// Requester, when set, limits the command to the tickets this user
	// requested: a requester acting on their own. Another's is not found.
	Requester string
}

// Resolver turns a ticket number into its id (ids pass through).
type Resolver interface {
	TicketID(ctx context.Context, tenant, ref string) (string, error)
}

// Result is a command's outcome: the ticket after it, the consistency token
// of its last event, and, when a reopen or a reply
// came too late, the follow-up ticket opened instead.
type Result struct {
	Ticket   ticket.Ticket
	Sequence uint64
	FollowUp *ticket.Ticket
	// Appended is false when the command changed nothing (Sequence is then
	// the ticket's last event).
	Appended bool
}

// Tickets handles the commands on existing tickets: lifecycle, edits,
// comments, attachments, links and ratings.
type Tickets struct {
	store    es.MultiAppender
	numbers  NumberAllocator
	resolve  Resolver
	settings *settings.Service
	// MailDomain names outbound Message-IDs: <ticket>.<comment>@MailDomain.
	mailDomain string
	now        func() time.Time
}

// NewTickets returns the handler.
func NewTickets(store es.MultiAppender, numbers NumberAllocator, resolve Resolver, st *settings.Service, mailDomain string, now func() time.Time) *Tickets {
	if now == nil {
		now = time.Now
	}
	return &Tickets{store: store, numbers: numbers, resolve: resolve, settings: st, mailDomain: mailDomain, now: now}
}

// Now is the handler's clock.
func (h *Tickets) Now() time.Time { return h.now() }

func newID(prefix string) string { return prefix + ulid.Make().String() }

// envelopes wraps payloads in envelopes for the ticket id of tenant.
func envelopes(tenant, id string, payloads []any, m Meta, at time.Time) ([]es.Event, error) {
	actor := m.Actor
	if actor == "" {
		actor = AnonymousActor
	}
	out := make([]es.Event, len(payloads))
	for i, p := range payloads {
		typ, data, err := codec.Encode(p)
		if err != nil {
			return nil, err
		}
		out[i] = es.Event{ID: ulid.Make().String(), Type: typ, Source: ticketv1.Source, Tenant: tenant, AggregateID: id,
			Time: at.UTC().Truncate(time.Microsecond), Actor: actor, CorrelationID: m.CorrelationID, Data: data}
	}
	return out, nil
}

// loaded is a ticket folded from the store with its last sequence.
type loaded struct {
	t    ticket.Ticket
	last uint64
}

func (h *Tickets) load(ctx context.Context, tenant, id string) (loaded, error) {
	history, last, err := h.store.Load(ctx, es.Key{Tenant: tenant, ID: id})
	if err != nil {
		return loaded{}, fmt.Errorf("load ticket %s: %w", id, err)
	}
	t, err := fold(history)
	if err != nil {
		return loaded{}, err
	}
	return loaded{t: t, last: last}, nil
}

// fold decodes a history and folds it with the events' times.
func fold(history []es.Event) (ticket.Ticket, error) {
	payloads, err := codec.DecodeAllKnown(history)
	if err != nil {
		return ticket.Ticket{}, err
	}
	var t ticket.Ticket
	for i, p := range payloads {
		t = ticket.EvolveAt(t, p, history[i].Time)
	}
	return t, nil
}

// id resolves ref to a ticket id of the tenant.
func (h *Tickets) id(ctx context.Context, ref Ref) (string, error) {
	if !es.ValidToken(ref.Tenant) {
		return "", fmt.Errorf("%w: tenant %q", es.ErrInvalidKey, ref.Tenant)
	}
	if !es.ValidToken(ref.ID) {
		return "", ticket.ErrNotFound
	}
	id, err := h.resolve.TicketID(ctx, ref.Tenant, ref.ID)
	if err != nil {
		return "", err
	}
	return id, nil
}

// visible reports whether the ref's scope may see t.
func visible(ref Ref, t ticket.Ticket) bool {
	return t.Exists() && (ref.Requester == "" || t.RequesterID == ref.Requester)
}

// execute runs load-fold-decide-append on the ticket ref names, retrying on
// a concurrent write; ifMatch, when not nil, is the version the client saw.
func (h *Tickets) execute(ctx context.Context, ref Ref, ifMatch *uint64, m Meta, decide func(t ticket.Ticket, at time.Time) ([]any, error)) (Result, error) {
	id, err := h.id(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	key := es.Key{Tenant: ref.Tenant, ID: id}
	var (
		state ticket.Ticket
		stale bool
	)
	res, err := es.Execute(ctx, h.store, key, 0, func(history []es.Event) ([]es.Event, error) {
		var err error
		if state, err = fold(history); err != nil {
			return nil, err
		}
		if !visible(ref, state) {
			return nil, ticket.ErrNotFound
		}
		if ifMatch != nil && *ifMatch != state.Version {
			stale = true
			return nil, ErrPrecondition
		}
		at := h.now()
		out, err := decide(state, at)
		if err != nil || len(out) == 0 {
			return nil, err
		}
		for _, p := range out {
			state = ticket.EvolveAt(state, p, at)
		}
		return envelopes(ref.Tenant, id, out, m, at)
	})
	if stale {
		return Result{}, ErrPrecondition
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Ticket: state, Sequence: res.Sequence, Appended: len(res.Events) > 0}, nil
}

// pair runs a decision over two tickets of a tenant and appends both sides
// atomically, retrying when either moved on.
func (h *Tickets) pair(ctx context.Context, ref Ref, ifMatch *uint64, target string, m Meta,
	decide func(a, b ticket.Ticket) (forA, forB []any, err error)) (Result, error) {
	idA, err := h.id(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	idB, err := h.id(ctx, Ref{Tenant: ref.Tenant, ID: target})
	if errors.Is(err, ticket.ErrNotFound) {
		return Result{}, &ticket.ValidationError{Fields: []ticket.FieldError{{Field: "target", Message: "is not a ticket of this tenant"}}}
	}
	if err != nil {
		return Result{}, err
	}
	for range es.DefaultAttempts {
		a, err := h.load(ctx, ref.Tenant, idA)
		if err != nil {
			return Result{}, err
		}
		if !visible(ref, a.t) {
			return Result{}, ticket.ErrNotFound
		}
		if ifMatch != nil && *ifMatch != a.t.Version {
			return Result{}, ErrPrecondition
		}
		b, err := h.load(ctx, ref.Tenant, idB)
		if err != nil {
			return Result{}, err
		}
		if !b.t.Exists() {
			return Result{}, &ticket.ValidationError{Fields: []ticket.FieldError{{Field: "target", Message: "is not a ticket of this tenant"}}}
		}
		forA, forB, err := decide(a.t, b.t)
		if err != nil {
			return Result{}, err
		}
		at := h.now()
		seq, err := h.appendTwo(ctx, ref.Tenant, m, at, side{idA, a.last, forA}, side{idB, b.last, forB})
		if errors.Is(err, es.ErrConcurrency) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		state := a.t
		for _, p := range forA {
			state = ticket.EvolveAt(state, p, at)
		}
		return Result{Ticket: state, Sequence: seq, Appended: true}, nil
	}
	return Result{}, fmt.Errorf("link %s: %w", idA, es.ErrConcurrency)
}

// side is one ticket's share of a two-ticket write.
type side struct {
	id       string
	expected uint64
	payloads []any
}

// appendTwo appends both sides in one atomic write and returns the
// sequence of the later one (the consistency token of both).
func (h *Tickets) appendTwo(ctx context.Context, tenant string, m Meta, at time.Time, a, b side) (uint64, error) {
	writes := make([]es.Write, 0, 2)
	for _, s := range []side{a, b} {
		events, err := envelopes(tenant, s.id, s.payloads, m, at)
		if err != nil {
			return 0, err
		}
		writes = append(writes, es.Write{Key: es.Key{Tenant: tenant, ID: s.id}, Expected: s.expected, Events: events})
	}
	seqs, err := h.store.AppendAll(ctx, writes)
	if err != nil {
		return 0, err
	}
	return max(seqs[0], seqs[1]), nil
}

// policy is the tenant's lifecycle policy.
func (h *Tickets) policy(ctx context.Context, tenant string) (ticket.Policy, error) {
	s, err := h.settings.Get(ctx, tenant)
	if err != nil {
		return ticket.Policy{}, err
	}
	return s.Policy(), nil
}

// Transition runs a lifecycle action. A reopen that comes too late opens a
// follow-up ticket instead (Result.FollowUp), with the reason as its
// description.
func (h *Tickets) Transition(ctx context.Context, ref Ref, ifMatch *uint64, m Meta, c ticket.Transition) (res Result, err error) {
	ctx, end := span(ctx, "intake Transition", ref, attribute.String("opsdesk.action", c.Action))
	defer func() { end(err) }()
	if c.Policy, err = h.policy(ctx, ref.Tenant); err != nil {
		return Result{}, err
	}
	res, err = h.execute(ctx, ref, ifMatch, m, func(t ticket.Ticket, at time.Time) ([]any, error) {
		c.At = at
		return ticket.DecideTransition(t, c)
	})
	if errors.Is(err, ticket.ErrFollowUpRequired) {
		reason := c.Reason
		if reason == "" {
			reason = "Reopened after the reopen window."
		}
		return h.followUp(ctx, ref, m, reason, ticketv1.ChannelAPI, "")
	}
	return res, err
}

// AutoClose closes a resolved ticket whose auto-close time has come; for
// any other ticket (reopened meanwhile, already closed) it does nothing.
func (h *Tickets) AutoClose(ctx context.Context, tenant, id string) (res Result, err error) {
	ctx, end := span(ctx, "intake AutoClose", Ref{Tenant: tenant, ID: id})
	defer func() { end(err) }()
	return h.execute(ctx, Ref{Tenant: tenant, ID: id}, nil, Meta{Actor: "system:auto-close"}, func(t ticket.Ticket, at time.Time) ([]any, error) {
		if !t.DueForAutoClose(at) {
			return nil, nil
		}
		return ticket.DecideTransition(t, ticket.Transition{Action: ticket.ActionClose, Closing: ticketv1.CloseAuto, At: at})
	})
}

// Update edits a ticket's fields; custom fields are checked against the
// tenant's schema.
func (h *Tickets) Update(ctx context.Context, ref Ref, ifMatch *uint64, m Meta, u ticket.Update) (res Result, err error) {
	ctx, end := span(ctx, "intake UpdateTicket", ref)
	defer func() { end(err) }()
	if u.CustomFields != nil {
		if err := h.settings.ValidateCustomFields(ctx, ref.Tenant, u.CustomFields); err != nil {
			return Result{}, err
		}
	}
	return h.execute(ctx, ref, ifMatch, m, func(t ticket.Ticket, _ time.Time) ([]any, error) {
		return ticket.DecideUpdate(t, u)
	})
}

// Comment adds a reply or a note. Public replies of agents get the
// Message-ID outbound mail about them will carry. A requester's reply that
// comes too late opens a follow-up ticket carrying the reply.
//
// Files are attached with the comment in the same write (a mail's
// attachments).
func (h *Tickets) Comment(ctx context.Context, ref Ref, ifMatch *uint64, m Meta, c ticket.Comment, files ...ticket.Attachment) (res Result, err error) {
	ctx, end := span(ctx, "intake Comment", ref)
	defer func() { end(err) }()
	if c.Policy, err = h.policy(ctx, ref.Tenant); err != nil {
		return Result{}, err
	}
	if c.ID == "" {
		c.ID = newID("c_")
	}
	for i := range files {
		files[i].CommentID = c.ID
		c.AttachmentIDs = append(c.AttachmentIDs, files[i].ID)
	}
	res, err = h.execute(ctx, ref, ifMatch, m, func(t ticket.Ticket, at time.Time) ([]any, error) {
		c.At = at
		if c.AuthorRole == ticketv1.AuthorAgent && c.AuthorID != "" && c.AuthorID == t.RequesterID {
			c.AuthorRole = ticketv1.AuthorRequester // an agent on their own ticket is its requester
		}
		if c.MessageID == "" && !c.Internal && c.AuthorRole != ticketv1.AuthorRequester {
			c.MessageID = OutboundMessageID(t.ID, c.ID, h.mailDomain)
		}
		return commentWithFiles(t, c, files)
	})
	if errors.Is(err, ticket.ErrFollowUpRequired) {
		return h.followUp(ctx, ref, m, c.Body, c.Channel, c.MessageID, files...)
	}
	return res, err
}

// commentWithFiles decides a comment and then its files on the state after it.
func commentWithFiles(t ticket.Ticket, c ticket.Comment, files []ticket.Attachment) ([]any, error) {
	out, err := ticket.DecideComment(t, c)
	if err != nil || len(out) == 0 || len(files) == 0 {
		return out, err // nothing decided (a redelivered mail): its files neither
	}
	for _, p := range out {
		t = ticket.Evolve(t, p)
	}
	more, err := ticket.DecideAttach(t, files...)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// OutboundMessageID is the Message-ID of mail about comment (or, with
// comment "", about the ticket itself): replies to it name the ticket.
func OutboundMessageID(ticketID, comment, domain string) string {
	if comment == "" {
		return ticketID + "@" + domain
	}
	return ticketID + "." + comment + "@" + domain
}

// Attach records stored files on the ticket.
func (h *Tickets) Attach(ctx context.Context, ref Ref, m Meta, files []ticket.Attachment) (res Result, err error) {
	ctx, end := span(ctx, "intake Attach", ref, attribute.Int("opsdesk.files", len(files)))
	defer func() { end(err) }()
	return h.execute(ctx, ref, nil, m, func(t ticket.Ticket, _ time.Time) ([]any, error) {
		return ticket.DecideAttach(t, files...)
	})
}

// Rate records the requester's satisfaction with the last resolution; ref
// must carry the requester (only they rate).
func (h *Tickets) Rate(ctx context.Context, ref Ref, m Meta, r ticket.Rate) (res Result, err error) {
	ctx, end := span(ctx, "intake Rate", ref)
	defer func() { end(err) }()
	if ref.Requester == "" {
		return Result{}, errors.New("command: rate needs the requester")
	}
	return h.execute(ctx, ref, nil, m, func(t ticket.Ticket, _ time.Time) ([]any, error) {
		return ticket.DecideRate(t, r)
	})
}

// Link links the ticket to target (both sides, atomically).
func (h *Tickets) Link(ctx context.Context, ref Ref, ifMatch *uint64, m Meta, kind, target string) (res Result, err error) {
	ctx, end := span(ctx, "intake Link", ref, attribute.String("opsdesk.link_kind", kind))
	defer func() { end(err) }()
	return h.pair(ctx, ref, ifMatch, target, m, func(a, b ticket.Ticket) ([]any, []any, error) {
		return ticket.DecideLink(a, b, kind)
	})
}

// Unlink removes a link from the ticket to target, and its inverse.
func (h *Tickets) Unlink(ctx context.Context, ref Ref, m Meta, kind, target string) (res Result, err error) {
	ctx, end := span(ctx, "intake Unlink", ref, attribute.String("opsdesk.link_kind", kind))
	defer func() { end(err) }()
	return h.pair(ctx, ref, nil, target, m, func(a, b ticket.Ticket) ([]any, []any, error) {
		return ticket.DecideUnlink(a, b, kind)
	})
}

// followUp opens a follow-up of the ticket ref names, linked both ways in
// one atomic write: description is what came too late (a reopen's reason,
// a reply's text, whose mail messageID threads later replies), files are
// attached to it.
func (h *Tickets) followUp(ctx context.Context, ref Ref, m Meta, description, channel, messageID string, files ...ticket.Attachment) (Result, error) {
	id, err := h.id(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	n, err := h.numbers.Next(ctx, ref.Tenant)
	if err != nil {
		return Result{}, fmt.Errorf("allocate ticket number: %w", err)
	}
	newTicketID := newID(ticket.IDPrefix)
	for range es.DefaultAttempts {
		old, err := h.load(ctx, ref.Tenant, id)
		if err != nil {
			return Result{}, err
		}
		if !visible(ref, old.t) {
			return Result{}, ticket.ErrNotFound
		}
		at := h.now()
		cr := ticket.FollowUp(old.t, description, channel, at)
		cr.ID, cr.Number, cr.MessageID = newTicketID, ticket.NumberPrefix+strconv.FormatInt(n, 10), messageID
		forNew, forOld, err := ticket.DecideFollowUp(old.t, cr)
		if err != nil {
			return Result{}, err
		}
		if len(files) > 0 {
			for i := range files {
				files[i].CommentID = ""
			}
			more, err := ticket.DecideAttach(ticket.Fold(forNew), files...)
			if err != nil {
				return Result{}, err
			}
			forNew = append(forNew, more...)
		}
		seq, err := h.appendTwo(ctx, ref.Tenant, m, at, side{newTicketID, 0, forNew}, side{id, old.last, forOld})
		if errors.Is(err, es.ErrConcurrency) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		fu := ticket.Fold(forNew)
		after := old.t
		for _, p := range forOld {
			after = ticket.EvolveAt(after, p, at)
		}
		return Result{Ticket: after, Sequence: seq, FollowUp: &fu, Appended: true}, nil
	}
	return Result{}, fmt.Errorf("follow-up of %s: %w", id, es.ErrConcurrency)
}

// span starts a command's span; end records the outcome.
func span(ctx context.Context, name string, ref Ref, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	attrs = append(attrs, attribute.String("opsdesk.service", "intake"), attribute.String("opsdesk.tenant", ref.Tenant),
		attribute.String("opsdesk.ticket_ref", ref.ID))
	ctx, s := tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}

// Visible returns the ticket ref names as the store has it, or
// ticket.ErrNotFound when the ref's scope does not see it. Commands that
// store bytes before appending (attachments) check it first, so a wrong
// ticket does not leave files behind.
func (h *Tickets) Visible(ctx context.Context, ref Ref) (ticket.Ticket, error) {
	id, err := h.id(ctx, ref)
	if err != nil {
		return ticket.Ticket{}, err
	}
	l, err := h.load(ctx, ref.Tenant, id)
	if err != nil {
		return ticket.Ticket{}, err
	}
	if !visible(ref, l.t) {
		return ticket.Ticket{}, ticket.ErrNotFound
	}
	return l.t, nil
}

// Alerts folds a batch of monitoring alerts into an open incident.
func (h *Tickets) Alerts(ctx context.Context, ref Ref, m Meta, b ticket.AlertBatch) (res Result, err error) {
	ctx, end := span(ctx, "intake Alerts", ref, attribute.Int("opsdesk.alerts", len(b.Alerts)))
	defer func() { end(err) }()
	if b.Policy, err = h.policy(ctx, ref.Tenant); err != nil {
		return Result{}, err
	}
	return h.execute(ctx, ref, nil, m, func(t ticket.Ticket, at time.Time) ([]any, error) {
		b.At = at
		return ticket.DecideAlerts(t, b), nil
	})
}

// IdentifyRequester makes the user with email the requester of the
// ticket, when it knew the requester by that address only.
func (h *Tickets) IdentifyRequester(ctx context.Context, tenant, id, userID, email string) (res Result, err error) {
	ctx, end := span(ctx, "intake IdentifyRequester", Ref{Tenant: tenant, ID: id})
	defer func() { end(err) }()
	return h.execute(ctx, Ref{Tenant: tenant, ID: id}, nil, Meta{Actor: "system:identity"}, func(t ticket.Ticket, _ time.Time) ([]any, error) {
		return ticket.DecideIdentify(t, userID, email), nil
	})
}
