package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/pgdb"
)

// Defaults of Options.
const (
	DefaultBatchSize   = 256
	DefaultMaxWait     = 200 * time.Millisecond
	DefaultMaxAttempts = 5
)

const (
	// ackWait is how long JetStream waits for a delivered event's ack before
	// redelivering it. Generous, because a batch is acked only after its
	// transaction commits, and a runner that keeps retrying a batch (Postgres
	// down) says so with InProgress. It is also how long the events a crashed
	// runner held stay invisible, so it is not minutes either.
	ackWait = 30 * time.Second
	// pinnedTTL is how long JetStream keeps delivering to the runner it
	// pinned (see consumerConfig) after that runner's last fetch, before
	// another replica may take over. A graceful stop hands over at once
	// (UnpinConsumer); this bounds the take-over after a crash.
	pinnedTTL = 10 * time.Second
	// fetchNow is the expiry of a fetch meant to take only what is there:
	// FetchNoWait cannot name a priority group, and a short expiry also
	// answers promptly when MaxAckPending is reached, where a no-wait pull
	// stays unanswered until the client gives up a second later.
	fetchNow = 5 * time.Millisecond
	// gapRetryDelay is how long an event that arrived ahead of an earlier one
	// (held by another replica) waits before JetStream offers it again.
	gapRetryDelay = 100 * time.Millisecond
	// gapResetAfter is how long a gap may last before the runner stops
	// waiting for the missing events and has the consumer deliver again from
	// the checkpoint. A replica applying them would have committed by then;
	// more likely they were lost on the way (a NATS restart, a runner that
	// died holding them), and JetStream would only offer them again after
	// ackWait.
	gapResetAfter = 3 * time.Second
	// Back-off between retries of a batch that failed for a transient reason.
	transientMin = 100 * time.Millisecond
	transientMax = 5 * time.Second
	// Back-off between attempts at an event whose Apply failed.
	poisonMin = 10 * time.Millisecond
	poisonMax = 500 * time.Millisecond
)

// PriorityGroup is the priority group of every projection consumer; an
// operator can move the pin with `nats consumer unpin <stream> <name>
// projection`.
const PriorityGroup = "projection"

// Options tune a Runner. Only Schema is required.
type Options struct {
	// Schema is the service's Postgres schema; the checkpoint table
	// <schema>.projection_checkpoints lives there (created if missing).
	Schema string
	// BatchSize is the most events applied in one transaction (default 256).
	BatchSize int
	// MaxWait bounds how long an idle runner waits on one fetch before
	// looking again (default 200 ms). It does not delay events: a fetch
	// returns as soon as one arrives.
	MaxWait time.Duration
	// MaxAttempts is how many times Apply may fail on one event before the
	// event is dead-lettered (default 5).
	MaxAttempts int
	// Logger receives the runner's logs (default slog.Default()).
	Logger *slog.Logger
	// SetTenant makes the runner set app.tenant_id (SET LOCAL, see
	// pgdb.SetTenant) to each event's tenant before its Apply, for read
	// models whose tables force row-level security. An event without a
	// tenant then fails like an Apply error and ends in the DLQ.
	SetTenant bool
}

// Runner keeps one projection up to date: it follows the projection's stream
// through a durable pull consumer and applies events in batches, each batch
// in one Postgres transaction together with the checkpoint (the last applied
// stream sequence), acking only after the commit.
//
// Effects are exactly once: an event at or below the checkpoint is skipped,
// and an event is applied only when every earlier event of the stream has
// been, so redeliveries, restarts mid-batch and several replicas of the same
// projection (they serialise on the checkpoint row) never apply an event
// twice or skip one. An event Apply keeps failing on, or that cannot be
// decoded, goes to the DLQ and the checkpoint moves past it; transient
// failures (Postgres or NATS unreachable) are retried until they pass.
type Runner struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	pool   *pgxpool.Pool
	p      Projection
	name   string
	stream string
	opts   Options
	log    *slog.Logger
	tracer trace.Tracer
	sql    queries

	running atomic.Bool
	pinned  atomic.Bool // this runner received events since it was last told another replica is pinned
	prog    *progress

	// batchMu serialises, within this process, batches with Rebuild and with
	// replacing the consumer.
	batchMu sync.Mutex

	// gapAt is the first missing sequence of the gap seen last, and
	// gapSince when it was first seen; guarded by batchMu.
	gapAt    uint64
	gapSince time.Time

	mu       sync.Mutex // guards the fields below
	cons     jetstream.Consumer
	str      jetstream.Stream
	gen      uint64 // bumped when the consumer is replaced by Rebuild
	storeSet bool   // checkpoint table and row exist
}

// New checks its arguments and returns a Runner for p; nothing is created
// until Run (or Rebuild) is called.
func New(nc *nats.Conn, js jetstream.JetStream, pool *pgxpool.Pool, p Projection, opts Options) (*Runner, error) {
	switch {
	case nc == nil || js == nil:
		return nil, errors.New("projection: NATS connection and JetStream are required")
	case pool == nil:
		return nil, errors.New("projection: Postgres pool is required")
	case p == nil:
		return nil, errors.New("projection: projection is required")
	}
	if !validToken(p.Name()) {
		return nil, fmt.Errorf("projection: name %q must be one NATS subject token (it names the consumer)", p.Name())
	}
	if !validToken(p.Stream()) {
		return nil, fmt.Errorf("projection %s: invalid stream name %q", p.Name(), p.Stream())
	}
	if !pgdb.ValidSchema(opts.Schema) {
		return nil, fmt.Errorf("projection %s: invalid schema name %q", p.Name(), opts.Schema)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Runner{
		nc:     nc,
		js:     js,
		pool:   pool,
		p:      p,
		name:   p.Name(),
		stream: p.Stream(),
		opts:   opts,
		log:    opts.Logger.With("projection", p.Name(), "stream", p.Stream()),
		tracer: otel.Tracer(tracerName),
		sql:    newQueries(opts.Schema),
		prog:   newProgress(),
	}, nil
}

func validToken(s string) bool {
	return s != "" && len(s) <= 256 && !strings.ContainsAny(s, ".*> \t\r\n")
}

// ErrRunning is returned by Run when the Runner is already running.
var ErrRunning = errors.New("projection: runner already running")

// Run applies events until ctx is cancelled, then returns nil. A batch in
// flight when ctx is cancelled is rolled back and its events handed back to
// JetStream unacked (Nak), so they are redelivered at once to whoever runs
// next. Outages of Postgres or NATS are waited out, never returned; Run
// returns an error only when the consumer cannot be created as configured.
//
// Fetching and applying overlap: while one batch is applied, the next is
// fetched, so a replay runs at the pace of the slower of the two rather
// than of their sum.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)

	if err := r.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	unregister := r.observeLag()
	defer unregister()
	r.log.InfoContext(ctx, "projection running", "checkpoint", r.prog.get())

	batches := make(chan fetched) // unbuffered: at most one batch waits
	var wg sync.WaitGroup
	wg.Go(func() { r.fetchLoop(ctx, batches) })
	defer func() {
		wg.Wait() // the fetcher hands back what it holds when ctx ends
		r.unpin(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-batches:
			r.handle(ctx, b.gen, b.msgs)
		}
	}
}

// fetched is one batch on its way from the fetcher to the applier, with the
// consumer generation it came from.
type fetched struct {
	msgs []jetstream.Msg
	gen  uint64
}

// fetchLoop fetches batches and hands them to Run until ctx ends, waiting
// out NATS outages and recreating the consumer if it disappears.
func (r *Runner) fetchLoop(ctx context.Context, out chan<- fetched) {
	bo := newBackoff(r.opts.MaxWait, transientMax)
	for ctx.Err() == nil {
		cons, gen := r.consumer()
		msgs, err := r.fetch(cons)
		if len(msgs) > 0 {
			bo.reset()
			r.pinned.Store(true)
			if err != nil {
				r.log.DebugContext(ctx, "fetch ended early", "err", err)
			}
			if !r.handOver(ctx, out, fetched{msgs: msgs, gen: gen}) {
				return
			}
			continue
		}
		switch {
		case err == nil:
			continue // nothing arrived within MaxWait
		case errors.Is(err, jetstream.ErrPinIDMismatch):
			// Another replica took over; the client forgets its pin and
			// the next fetch waits its turn.
			r.pinned.Store(false)
			continue
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted):
			r.log.WarnContext(ctx, "consumer gone; creating it again", "err", err)
			if err := r.recreateConsumer(ctx); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "recreate consumer", "err", err)
			}
		default:
			r.log.WarnContext(ctx, "fetch failed", "err", err)
		}
		bo.wait(ctx)
	}
}

// handOver passes a fetched batch to the applier. While the applier is busy
// (a long batch, or Postgres down) it keeps the batch's ack deadline from
// expiring; when ctx ends first it hands the batch back to JetStream.
func (r *Runner) handOver(ctx context.Context, out chan<- fetched, b fetched) bool {
	tick := time.NewTicker(ackWait / 3)
	defer tick.Stop()
	for {
		select {
		case out <- b:
			return true
		case <-tick.C:
			for _, m := range b.msgs {
				_ = m.InProgress()
			}
		case <-ctx.Done():
			for _, m := range b.msgs {
				_ = m.Nak()
			}
			return false
		}
	}
}

// unpin lets another replica take over at once when this one stops,
// instead of after pinnedTTL.
func (r *Runner) unpin(ctx context.Context) {
	if !r.pinned.Swap(false) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := r.streamHandle().UnpinConsumer(ctx, r.name, PriorityGroup); err != nil {
		r.log.DebugContext(ctx, "unpin consumer", "err", err)
	}
}

// setup creates what the runner needs, waiting out transient failures: the
// stream may not exist yet (its writer starts later) and Postgres or NATS
// may still be starting.
func (r *Runner) setup(ctx context.Context) error {
	bo := newBackoff(transientMin, transientMax)
	for {
		err := r.trySetup(ctx)
		if err == nil {
			return nil
		}
		if permanent(err) {
			return fmt.Errorf("projection %s: %w", r.name, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.WarnContext(ctx, "projection not ready; retrying", "err", err)
		if !bo.wait(ctx) {
			return ctx.Err()
		}
	}
}

func (r *Runner) trySetup(ctx context.Context) error {
	if err := r.ensureStore(ctx); err != nil {
		return err
	}
	str, err := r.js.Stream(ctx, r.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.stream, err)
	}
	if err := r.checkStream(ctx, str); err != nil {
		return err
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.stream, r.consumerConfig())
	if err != nil {
		return fmt.Errorf("consumer %s: %w", r.name, err)
	}
	pos, err := r.Position(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.str, r.cons = str, cons
	r.mu.Unlock()
	r.prog.set(pos)
	return nil
}

// permanent reports whether err is a JetStream refusal that retrying will
// not change (e.g. the consumer exists with an incompatible configuration).
// A missing stream is not: its writer may create it later.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false
	}
	return apiErr.Code >= 400 && apiErr.Code < 500
}

// consumerConfig is the projection's durable pull consumer.
func (r *Runner) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       r.name,
		Description:   "OpsDesk projection " + r.name,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Explicit acks, one per event, rather than AckAll: AckAll acks
		// everything below the acked delivery, including events another
		// replica of this projection holds in a batch it has not committed,
		// and it cannot express "this one is done, hand that one back" (Nak)
		// that gap handling and shutdown need. Acks are fire-and-forget
		// publishes, so one per event costs little.
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   ackWait,
		// The runner decides when an event is poison (MaxAttempts, then the
		// DLQ); JetStream must never drop one on its own.
		MaxDeliver: -1,
		// Room for the batch being applied, the one fetched meanwhile and
		// the acks of the previous one, which are asynchronous and may not
		// have reached the server when the next fetch does.
		MaxAckPending: 3 * r.opts.BatchSize,
		// One replica at a time receives the events: JetStream pins the
		// consumer to the first runner that pulls and offers the others
		// nothing until it stops pulling (or unpins on stop). Without this,
		// replicas get interleaved events (17, 19, 21 / 18, 20, 22), and as
		// a runner must not apply an event before the earlier ones, each
		// would keep handing the other's events back. Correctness does not
		// rest on the pin (the checkpoint lock and the gap check do that);
		// throughput does.
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PriorityGroup},
		PinnedTTL:      pinnedTTL,
	}
}

func (r *Runner) consumer() (jetstream.Consumer, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cons, r.gen
}

func (r *Runner) streamHandle() jetstream.Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.str
}

func (r *Runner) recreateConsumer(ctx context.Context) error {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.stream, r.consumerConfig())
	if err != nil {
		return fmt.Errorf("consumer %s: %w", r.name, err)
	}
	r.mu.Lock()
	r.cons = cons
	r.mu.Unlock()
	return nil
}

// fetch returns the events available now, up to BatchSize, or waits up to
// MaxWait for the first one. Under load the first fetch finds what arrived
// during the previous batch; when idle, Fetch(1) returns as soon as one
// event arrives and a second fetch collects its companions, so latency never
// waits for a batch to fill.
func (r *Runner) fetch(cons jetstream.Consumer) ([]jetstream.Msg, error) {
	group := jetstream.FetchPriorityGroup(PriorityGroup)
	msgs, err := drain(cons.Fetch(r.opts.BatchSize, group, jetstream.FetchMaxWait(fetchNow)))
	if len(msgs) > 0 || err != nil {
		return msgs, err
	}
	msgs, err = drain(cons.Fetch(1, group, jetstream.FetchMaxWait(r.opts.MaxWait)))
	if len(msgs) == 0 || err != nil || r.opts.BatchSize == 1 {
		return msgs, err
	}
	more, err := drain(cons.Fetch(r.opts.BatchSize-1, group, jetstream.FetchMaxWait(fetchNow)))
	return append(msgs, more...), err
}

// drain collects a fetch's messages. It returns every message received even
// when the fetch ended with an error: they were delivered and must be
// handled.
func drain(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for m := range b.Messages() {
		out = append(out, m)
	}
	return out, b.Error()
}

// Rebuild empties the read model and replays the whole stream into it: it
// replaces the durable consumer with a new one that starts at the first
// event, then in one transaction calls the projection's Reset and sets the
// checkpoint to 0. It is safe while Run is running, in this process (the
// batch in flight finishes first, events fetched from the old consumer are
// handed back) and in other replicas (they serialise on the checkpoint row,
// and the checkpoint never lets them apply out of order). Queries see the
// read model empty and filling up again; for a rebuild without that gap,
// deploy a new projection version (name _v2) beside the old one instead.
func (r *Runner) Rebuild(ctx context.Context) error {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	if err := r.ensureStore(ctx); err != nil {
		return fmt.Errorf("projection %s: rebuild: %w", r.name, err)
	}
	// The consumer first: if resetting the checkpoint then fails, the new
	// consumer merely redelivers events the checkpoint skips, whereas a reset
	// checkpoint with the old consumer would wait forever for events it
	// already acked.
	if err := r.js.DeleteConsumer(ctx, r.stream, r.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("projection %s: rebuild: delete consumer: %w", r.name, err)
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.stream, r.consumerConfig())
	if err != nil {
		return fmt.Errorf("projection %s: rebuild: create consumer: %w", r.name, err)
	}
	r.mu.Lock()
	r.cons = cons
	r.gen++
	r.mu.Unlock()

	ctx, span := r.tracer.Start(ctx, r.name+" rebuild")
	defer span.End()
	err = pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := r.lockCheckpoint(ctx, tx); err != nil {
			return err
		}
		if err := r.p.Reset(ctx, tx); err != nil {
			return fmt.Errorf("reset read model: %w", err)
		}
		return r.saveCheckpoint(ctx, tx, 0)
	})
	if err != nil {
		span.RecordError(err)
		return fmt.Errorf("projection %s: rebuild: %w", r.name, err)
	}
	r.prog.set(0)
	r.log.InfoContext(ctx, "projection reset; replaying from the start")
	return nil
}

// backoff is a capped exponential back-off with jitter.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) reset() { b.cur = 0 }

func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.min
	case b.cur < b.max:
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

// wait sleeps for the next interval; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool { return sleep(ctx, b.next()) }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Replay applies e, an event this projection dead-lettered earlier, in a
// transaction of its own, once whatever made it fail has been fixed. It
// suits deadletter.Registry.Register(p.Name(), runner.Replay). The event is
// applied out of stream order (the checkpoint moved past it long ago), so
// Apply must cope with that; and a replay whose letter could not be removed
// from the DLQ may run again, so Apply should be idempotent for it.
func (r *Runner) Replay(ctx context.Context, e es.Event) (err error) {
	ctx, span := r.tracer.Start(ctx, r.name+" replay",
		trace.WithAttributes(
			attribute.String("opsdesk.projection", r.name),
			attribute.String("messaging.message.id", e.ID),
			attribute.Int64("opsdesk.stream.sequence", int64(e.Sequence)),
		))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "replay failed")
		}
		span.End()
	}()
	return pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic in Apply: %v\n%s", p, debug.Stack())
			}
		}()
		if r.opts.SetTenant {
			if err := pgdb.SetTenant(ctx, tx, e.Tenant); err != nil {
				return err
			}
		}
		return r.p.Apply(ctx, tx, e)
	})
}

// RebuildAndWait is Rebuild followed by a replay in this process: it runs
// the projection until it has applied the stream as it was when the rebuild
// started, stops it, and returns that stream sequence. It is what an
// operator's rebuild command does; run it while no other runner of the
// projection runs (they would race to recreate the durable consumer, and
// JetStream can refuse one of them; the command then fails and can be
// retried).
func (r *Runner) RebuildAndWait(ctx context.Context) (uint64, error) {
	if err := r.ensureStore(ctx); err != nil {
		return 0, fmt.Errorf("projection %s: rebuild: %w", r.name, err)
	}
	str, err := r.js.Stream(ctx, r.stream)
	if err != nil {
		return 0, fmt.Errorf("projection %s: rebuild: stream %s: %w", r.name, r.stream, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("projection %s: rebuild: stream %s: %w", r.name, r.stream, err)
	}
	target := info.State.LastSeq
	if err := r.Rebuild(ctx); err != nil {
		return 0, err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	waitErr := r.WaitFor(ctx, target)
	stop()
	if err := <-done; err != nil && runCtx.Err() == nil {
		return 0, fmt.Errorf("projection %s: rebuild: replay: %w", r.name, err)
	}
	if waitErr != nil {
		return 0, fmt.Errorf("projection %s: rebuild: replay: %w", r.name, waitErr)
	}
	return target, nil
}
