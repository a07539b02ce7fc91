// Package channels turns what arrives by mail and from monitoring into
// ticket commands: inbound mail (SMTP listener and webhook) opens tickets or
// threads onto them, alert webhooks open and feed incidents, and what cannot
// be processed is kept raw in a quarantine an admin can re-process.
package channels

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/settings"
	"github.com/opsdesk/opsdesk/services/intake/internal/mail"
)

// Directory answers who is who, from the IDENTITY stream (auth.State).
type Directory interface {
	TenantBySlug(slug string) (string, bool)
	TenantSlug(id string) (string, bool)
	UserByEmail(tenant, email string) (id string, roles []string, ok bool)
}

// Threads finds the ticket a mail belongs to from the tickets read model.
type Threads interface {
	TicketByMessageID(ctx context.Context, tenant string, ids []string) (string, error)
	TicketID(ctx context.Context, tenant, ref string) (string, error)
}

// Config configures the channels.
type Config struct {
	// MailDomain is the domain of every tenant's default address,
	// <slug>@MailDomain, and of our outbound Message-IDs.
	MailDomain string
	// Mail bounds inbound mail.
	Mail mail.Limits
	// CaughtUp, when set, returns once the tickets read model has applied
	// everything TICKETS held when it was called. Mail is threaded through
	// the read model, so a reply that arrives right after the mail it
	// answers waits for it (bounded by the caller's context) rather than
	// missing it.
	CaughtUp func(ctx context.Context) error
	// CatchUpWait bounds that wait (2 s when zero).
	CatchUpWait time.Duration
}

// Service is the channel layer.
type Service struct {
	cfg      Config
	create   *command.CreateTicketHandler
	tickets  *command.Tickets
	settings *settings.Service
	state    *pgstore.Store
	dir      Directory
	threads  Threads
	log      *slog.Logger
	now      func() time.Time
}

// New returns the channel layer.
func New(cfg Config, create *command.CreateTicketHandler, tickets *command.Tickets, st *settings.Service,
	state *pgstore.Store, dir Directory, threads Threads, log *slog.Logger) *Service {
	return &Service{cfg: cfg, create: create, tickets: tickets, settings: st, state: state, dir: dir, threads: threads,
		log: log, now: tickets.Now}
}

// Outcomes of processing one inbound item.
const (
	OutcomeCreated     = "created"
	OutcomeCommented   = "commented"
	OutcomeFollowUp    = "follow_up"
	OutcomeQuarantined = "quarantined"
	OutcomeDropped     = "dropped"
)

// Outcome is what processing one inbound message did.
type Outcome struct {
	Outcome, TicketID, TicketNumber, Reason, QuarantineID string
	// Sequence is the consistency token of what was written (0: nothing).
	Sequence uint64
}

// ErrRejected: the tenant's policy refuses the message (unknown sender).
var ErrRejected = errors.New("rejected by the tenant's policy")

// RejectedError carries why a message was refused.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return e.Reason }

// Unwrap makes errors.Is(err, ErrRejected) hold.
func (e *RejectedError) Unwrap() error { return ErrRejected }
