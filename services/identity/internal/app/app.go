// Package app holds identity's command and query handlers: tenants, users,
// groups and API tokens through the event store (load, decide, append),
// sign-in, refresh, sign-out and password reset through the state tables,
// and the read model's queries. Every handler acts for a verified
// auth.Principal, in the principal's tenant.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/secret"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
	"github.com/opsdesk/opsdesk/services/identity/internal/password"
	"github.com/opsdesk/opsdesk/services/identity/internal/projections/directory"
	"github.com/opsdesk/opsdesk/services/identity/internal/store"
)

// Errors of the handlers beyond the domain's. Ports map them.
var (
	// ErrPrecondition: If-Match named another version (412).
	ErrPrecondition = errors.New("precondition failed")
	// ErrInvalidGrant: wrong credentials, unknown user or tenant, spent or
	// revoked refresh token; all answered alike (401).
	ErrInvalidGrant = errors.New("invalid grant")
	// ErrNotCaughtUp: the read model has not reached a consistency token.
	ErrNotCaughtUp = errors.New("read model behind")
)

// LockedError: too many failed sign-ins; retry after RetryAfter (429).
type LockedError struct{ RetryAfter time.Duration }

func (e *LockedError) Error() string { return fmt.Sprintf("locked for %s", e.RetryAfter) }

// Config configures the handlers.
type Config struct {
	AccessTTL  time.Duration // access token lifetime
	RefreshTTL time.Duration // refresh token lifetime, renewed on each use
	ResetTTL   time.Duration // password-reset token lifetime
	// AccountThreshold and AddressThreshold are the failed sign-ins an
	// account and a client address may have in the throttle's window
	// before each further failure locks them out (exponential backoff).
	AccountThreshold, AddressThreshold int
	// ReadWait bounds how long a query with a consistency token waits.
	ReadWait time.Duration
	// Secret is the installation key; subkeys seal reset tokens.
	Secret secret.Key
}

// Waiter waits until the read model has applied the event at seq.
type Waiter interface {
	WaitFor(ctx context.Context, seq uint64) error
}

// App is identity's application layer.
type App struct {
	cfg      Config
	store    es.MultiAppender
	pool     *pgxpool.Pool
	hasher   *password.Hasher
	keys     *store.KeyRing
	throttle store.Throttle
	wait     Waiter
	log      *slog.Logger
	now      func() time.Time
}

// New returns the application layer.
func New(cfg Config, s es.MultiAppender, pool *pgxpool.Pool, hasher *password.Hasher, keys *store.KeyRing,
	throttle store.Throttle, wait Waiter, log *slog.Logger) *App {
	return &App{cfg: cfg, store: s, pool: pool, hasher: hasher, keys: keys, throttle: throttle, wait: wait,
		log: log, now: time.Now}
}

// Meta is who sends a command and the request it came with; the port puts
// it into the context, the events carry it (ce-actor, ce-correlationid).
type Meta struct{ Actor, CorrelationID string }

type metaKey struct{}

// WithMeta returns ctx carrying m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

func meta(ctx context.Context) Meta {
	m, _ := ctx.Value(metaKey{}).(Meta)
	if m.Actor == "" {
		m.Actor = "system"
	}
	return m
}

// Result is what a command produced: the consistency token of its last
// event (0 when it changed nothing) and the aggregate's version after it.
type Result struct {
	Sequence uint64
	Version  uint64
}

func newID(prefix string) string { return prefix + ulid.Make().String() }

// events wraps payloads in envelopes for the aggregate at key.
func (a *App) events(ctx context.Context, key es.Key, payloads []any) ([]es.Event, error) {
	m := meta(ctx)
	now := a.now().UTC().Truncate(time.Microsecond)
	out := make([]es.Event, len(payloads))
	for i, p := range payloads {
		typ, data, err := directory.Codec.Encode(p)
		if err != nil {
			return nil, err
		}
		out[i] = es.Event{ID: ulid.Make().String(), Type: typ, Source: identityv1.Source, Tenant: key.Tenant,
			AggregateID: key.ID, Time: now, Actor: m.Actor, CorrelationID: m.CorrelationID, Data: data}
	}
	return out, nil
}

// execute runs load-fold-decide-append on one aggregate, retrying on a
// concurrent write. version, when not nil, is the If-Match the client sent.
func (a *App) execute(ctx context.Context, key es.Key, version *uint64, decide func(history []any) ([]any, error)) (Result, error) {
	var stale bool
	res, err := es.Execute(ctx, a.store, key, 0, func(h []es.Event) ([]es.Event, error) {
		if version != nil && *version != uint64(len(h)) {
			stale = true
			return nil, ErrPrecondition
		}
		payloads, err := directory.Codec.DecodeAll(h)
		if err != nil {
			return nil, err
		}
		out, err := decide(payloads)
		if err != nil || len(out) == 0 {
			return nil, err
		}
		return a.events(ctx, key, out)
	})
	if stale {
		return Result{}, ErrPrecondition
	}
	return Result{Sequence: res.Sequence, Version: res.Version}, err
}

// load returns an aggregate's decoded history and its last sequence.
func (a *App) load(ctx context.Context, key es.Key) ([]any, uint64, error) {
	h, last, err := a.store.Load(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	payloads, err := directory.Codec.DecodeAll(h)
	return payloads, last, err
}

// create appends the first events of a new aggregate together with a claim
// (a slug or an e-mail address) that must not be held yet, atomically. It
// answers ErrAlreadyExists when the claim is taken.
func (a *App) create(ctx context.Context, key es.Key, payloads []any, claim es.Key, claimPayload any) (Result, error) {
	for attempt := 0; attempt < es.DefaultAttempts; attempt++ {
		history, last, err := a.load(ctx, claim)
		if err != nil {
			return Result{}, err
		}
		if domain.FoldClaim(history).Holder != "" {
			return Result{}, domain.ErrAlreadyExists
		}
		evts, err := a.events(ctx, key, payloads)
		if err != nil {
			return Result{}, err
		}
		claimEvts, err := a.events(ctx, claim, []any{claimPayload})
		if err != nil {
			return Result{}, err
		}
		seqs, err := a.store.AppendAll(ctx, []es.Write{{Key: key, Events: evts}, {Key: claim, Expected: last, Events: claimEvts}})
		if errors.Is(err, es.ErrConcurrency) {
			continue // someone claimed first, or the claim moved: look again
		}
		if err != nil {
			return Result{}, err
		}
		return Result{Sequence: max(seqs[0], seqs[1]), Version: uint64(len(payloads))}, nil
	}
	return Result{}, fmt.Errorf("create %s: %w", key.ID, es.ErrConcurrency)
}

// inTenant runs fn in a transaction scoped to tenant (row-level security).
func (a *App) inTenant(ctx context.Context, tenant string, fn func(pgx.Tx) error) error {
	return pgdb.InTenantTx(ctx, a.pool, tenant, fn)
}

// waitFor waits (bounded by ReadWait) for the read model to reach seq.
func (a *App) waitFor(ctx context.Context, seq uint64) error {
	if seq == 0 || a.wait == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ReadWait)
	defer cancel()
	if err := a.wait.WaitFor(ctx, seq); err != nil {
		if ctx.Err() != nil {
			return ErrNotCaughtUp
		}
		return err
	}
	return nil
}

// WaitFor lets ports wait for a consistency token before a query.
func (a *App) WaitFor(ctx context.Context, seq uint64) error { return a.waitFor(ctx, seq) }

func tenantKey(id string) es.Key { return es.Key{Tenant: id, ID: id} }
