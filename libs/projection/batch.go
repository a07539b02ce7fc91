package projection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/pgdb"
)

// item is one fetched event on its way through a batch.
type item struct {
	msg      jetstream.Msg
	seq      uint64 // stream sequence
	ev       es.Event
	poison   error // set: dead-letter instead of applying (undecodable, or Apply kept failing)
	failures int   // Apply failures so far
	failure  error // the last of them
	done     bool  // acked, or handed back to JetStream
}

// applyError is an error Apply returned for an event (as opposed to a
// transient failure of Postgres or NATS): it counts towards MaxAttempts. it
// is nil when ApplyBatch failed and the culprit is not known yet.
type applyError struct {
	it  *item
	err error
}

func (e *applyError) Error() string {
	if e.it == nil {
		return "apply batch: " + e.err.Error()
	}
	return fmt.Sprintf("apply seq %d: %v", e.it.seq, e.err)
}
func (e *applyError) Unwrap() error { return e.err }

// handle applies one fetched batch, waiting out transient failures. When ctx
// ends first, the events not yet applied are handed back (Nak) so they are
// redelivered at once instead of after AckWait.
func (r *Runner) handle(ctx context.Context, gen uint64, msgs []jetstream.Msg) {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	if _, current := r.consumer(); current != gen {
		// Fetched from a consumer Rebuild has replaced: let the new one
		// deliver them, in order.
		for _, m := range msgs {
			_ = m.Nak()
		}
		return
	}
	items := r.prepare(ctx, msgs)
	bo := newBackoff(transientMin, transientMax)
	for {
		err := r.process(ctx, items)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			r.handBack(items)
			return
		}
		retry := bo.next()
		r.log.WarnContext(ctx, "batch failed; retrying", "err", err, "retry_in", retry)
		for _, it := range items {
			if !it.done {
				_ = it.msg.InProgress() // keep them ours while we retry
			}
		}
		if !sleep(ctx, retry) {
			r.handBack(items)
			return
		}
	}
}

func (r *Runner) handBack(items []*item) {
	for _, it := range items {
		if !it.done {
			_ = it.msg.Nak()
			it.done = true
		}
	}
}

// prepare decodes the messages and orders them by stream sequence (a batch
// can mix redeliveries with new events).
func (r *Runner) prepare(ctx context.Context, msgs []jetstream.Msg) []*item {
	items := make([]*item, 0, len(msgs))
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil { // not a JetStream message: cannot happen on a pull consumer
			r.log.ErrorContext(ctx, "message without JetStream metadata dropped", "subject", m.Subject(), "err", err)
			continue
		}
		it := &item{msg: m, seq: md.Sequence.Stream}
		it.ev, err = es.DecodeHeaders(m.Subject(), m.Headers(), m.Data(), it.seq)
		if err != nil {
			it.poison = err // malformed: no retry will fix it
		}
		items = append(items, it)
	}
	slices.SortStableFunc(items, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	return items
}

// process applies items, in one transaction when it can. When Apply fails
// on an event, the events before it (which only went down with it) are
// applied together, the failing one is retried on its own - and after
// MaxAttempts dead-lettered - and the rest go on as a batch. When
// ApplyBatch fails, the culprit is unknown, so the events go one
// transaction each. It returns only transient errors.
func (r *Runner) process(ctx context.Context, items []*item) error {
	for {
		todo := pending(items)
		if len(todo) == 0 {
			return nil
		}
		err := r.applyBatch(ctx, todo)
		var ae *applyError
		if !errors.As(err, &ae) {
			return err // nil or transient
		}
		if ae.it == nil {
			r.log.DebugContext(ctx, "ApplyBatch failed; applying one event at a time", "err", ae.err)
			for _, it := range todo {
				if !it.done {
					if err := r.applyAlone(ctx, it); err != nil {
						return err
					}
				}
			}
			return nil
		}
		ae.it.failures++
		ae.it.failure = ae.err
		r.log.DebugContext(ctx, "apply failed; retrying the event on its own", "seq", ae.it.seq, "err", ae.err)
		if i := slices.Index(todo, ae.it); i > 0 {
			if err := r.applyBatch(ctx, todo[:i]); err != nil {
				if !errors.As(err, &ae) {
					return err
				}
				continue // another event failed this time: start over
			}
		}
		if err := r.applyAlone(ctx, ae.it); err != nil {
			return err
		}
	}
}

func pending(items []*item) []*item {
	out := make([]*item, 0, len(items))
	for _, it := range items {
		if !it.done {
			out = append(out, it)
		}
	}
	return out
}

// applyAlone applies one event in its own transaction, retrying Apply
// failures with a short back-off and dead-lettering the event when they
// reach MaxAttempts.
func (r *Runner) applyAlone(ctx context.Context, it *item) error {
	bo := newBackoff(poisonMin, poisonMax)
	for {
		if it.failures >= r.opts.MaxAttempts && it.poison == nil {
			it.poison = fmt.Errorf("apply failed %d times: %w", it.failures, it.failure)
		}
		err := r.applyBatch(ctx, []*item{it})
		var ae *applyError
		if !errors.As(err, &ae) {
			return err // applied, skipped, dead-lettered, handed back, or transient
		}
		it.failures++
		it.failure = ae.err
		if it.failures < r.opts.MaxAttempts && !bo.wait(ctx) {
			return ctx.Err()
		}
	}
}

// applyBatch is one transaction: lock the checkpoint, apply (or skip, or
// dead-letter) the items in stream order, save the checkpoint, commit, then
// ack. It stops at a gap - an event that arrived ahead of an earlier one
// still held by someone else - and hands that event and the rest back to
// JetStream. It returns nil, an *applyError, or a transient error; on any
// error nothing is committed or acked.
func (r *Runner) applyBatch(ctx context.Context, items []*item) (err error) {
	if len(items) == 0 {
		return nil
	}
	// The batch span (BEGIN, the checkpoint, COMMIT) continues the first
	// event's trace, so an event applied alone - the usual case outside
	// replays - is one trace from publish to commit; it links every event
	// of the batch.
	links := make([]trace.Link, 0, len(items))
	for _, it := range items {
		if sc := trace.SpanContextFromContext(extract(ctx, it.msg)); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := r.tracer.Start(extract(ctx, items[0].msg), r.name+" batch",
		trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("opsdesk.projection", r.name),
			attribute.Int("messaging.batch.message_count", len(items)),
		))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "batch failed")
		}
		span.End()
	}()

	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer rollback(ctx, tx)
	last, err := r.lockCheckpoint(ctx, tx)
	if err != nil {
		return err
	}

	// Sort the items into skip (applied before: a redelivery), apply,
	// dead-letter and hand back (after a gap).
	cur := last
	var handled, deferred, apply, dead []*item
	for i, it := range items {
		if it.seq <= cur {
			handled = append(handled, it)
			continue
		}
		if it.seq > cur+1 {
			gap, err := r.gapBefore(ctx, cur, it.seq)
			if err != nil {
				return err
			}
			if gap {
				deferred = items[i:]
				break
			}
		}
		if it.poison != nil {
			dead = append(dead, it)
		} else {
			apply = append(apply, it)
		}
		cur = it.seq
		handled = append(handled, it)
	}
	for _, it := range dead {
		if err := r.deadLetter(ctx, it); err != nil {
			return err
		}
	}
	if err := r.applyAll(ctx, tx, apply); err != nil {
		return err
	}
	if cur > last {
		if err := r.saveCheckpoint(ctx, tx, cur); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		// Perhaps committed after all: the retry finds out from the checkpoint.
		return fmt.Errorf("commit: %w", err)
	}
	for _, it := range handled {
		_ = it.msg.Ack() // a lost ack means a redelivery, which the checkpoint skips
		it.done = true
	}
	for _, it := range deferred {
		_ = it.msg.NakWithDelay(gapRetryDelay)
		it.done = true
	}
	r.prog.set(cur)
	recordBatch(ctx, r.name, cur, int64(len(apply)), int64(len(dead)))
	if len(deferred) > 0 {
		r.log.DebugContext(ctx, "events ahead of a gap handed back", "from_seq", deferred[0].seq, "checkpoint", cur)
		r.gapSeen(ctx, cur+1)
	} else {
		r.gapAt = 0
	}
	return nil
}

// gapSeen tracks how long the events from seq on have been missing and,
// past gapResetAfter, resets the consumer to deliver again from seq. That is
// safe whoever holds them: events the checkpoint has passed by then are
// skipped, and a replica still applying them serialises with us on the
// checkpoint row.
func (r *Runner) gapSeen(ctx context.Context, seq uint64) {
	if r.gapAt != seq {
		r.gapAt, r.gapSince = seq, time.Now()
		return
	}
	if time.Since(r.gapSince) < gapResetAfter {
		return
	}
	r.gapAt = 0
	if _, err := r.streamHandle().ResetConsumerToSequence(ctx, r.name, seq); err != nil {
		// Older servers lack the reset: the events come back after ackWait.
		r.log.WarnContext(ctx, "events missing; consumer reset failed, waiting for redelivery", "from_seq", seq, "err", err)
		return
	}
	r.log.WarnContext(ctx, "events delivered but never received (lost in a NATS outage, or held by a stopped replica); consumer reset", "from_seq", seq)
}

// applyAll folds items into the read model: through ApplyBatch, once per
// tenant of the batch with SetTenant (else once), when the projection has
// it and there are several; otherwise through Apply, one event at a time.
func (r *Runner) applyAll(ctx context.Context, tx pgx.Tx, items []*item) error {
	bp, batched := r.p.(BatchProjection)
	if !batched || len(items) < 2 {
		tenant := ""
		for _, it := range items {
			if err := r.apply(ctx, tx, it, &tenant); err != nil {
				if ctx.Err() != nil || transient(err, tx) {
					return fmt.Errorf("apply seq %d: %w", it.seq, err)
				}
				return &applyError{it: it, err: err}
			}
		}
		return nil
	}
	groups := [][]*item{items}
	if r.opts.SetTenant {
		groups = byTenant(items)
	}
	for _, g := range groups {
		if err := r.applyMany(ctx, tx, bp, g); err != nil {
			if ctx.Err() != nil || transient(err, tx) {
				return fmt.Errorf("apply seqs %d-%d: %w", g[0].seq, g[len(g)-1].seq, err)
			}
			return &applyError{err: err} // which event is unknown: isolate them all
		}
	}
	return nil
}

// byTenant splits a batch into one group per tenant, each in stream order,
// the groups in order of their tenant's first event. Under forced
// row-level security a projection's writes are confined to the event's
// tenant, so events of different tenants cannot depend on each other and
// only the order within a tenant matters; a batch of interleaved tenants
// (the normal case) still makes one ApplyBatch per tenant, not per event.
func byTenant(items []*item) [][]*item {
	index := map[string]int{}
	var groups [][]*item
	for _, it := range items {
		i, ok := index[it.ev.Tenant]
		if !ok {
			i = len(groups)
			index[it.ev.Tenant] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], it)
	}
	return groups
}

// applyMany runs ApplyBatch under the batch span. Each event still gets its
// consumer span in its own trace, linked to the batch span where its SQL
// ran.
func (r *Runner) applyMany(ctx context.Context, tx pgx.Tx, bp BatchProjection, items []*item) (err error) {
	batch := trace.LinkFromContext(ctx)
	events := make([]es.Event, len(items))
	for i, it := range items {
		events[i] = it.ev
		_, span := r.tracer.Start(extract(ctx, it.msg), r.name+" apply",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithLinks(batch),
			trace.WithAttributes(eventAttributes(r.name, it)...))
		span.End()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in ApplyBatch: %v\n%s", p, debug.Stack())
		}
	}()
	if r.opts.SetTenant {
		if err := pgdb.SetTenant(ctx, tx, events[0].Tenant); err != nil {
			return fmt.Errorf("event %s: %w", events[0].ID, err)
		}
	}
	return bp.ApplyBatch(ctx, tx, events)
}

func rollback(ctx context.Context, tx pgx.Tx) {
	// After Commit this is a no-op; after a failure ctx may be cancelled,
	// and the rollback must still go out.
	_ = tx.Rollback(context.WithoutCancel(ctx))
}

// gapBefore reports whether the stream holds an event between the
// checkpoint cur and seq. It does when another replica (or a runner that
// died) still holds that event unacked: applying seq now would make the
// checkpoint skip it for ever. In a steady single runner sequences arrive
// contiguous and this look-up never happens.
func (r *Runner) gapBefore(ctx context.Context, cur, seq uint64) (bool, error) {
	m, err := r.streamHandle().GetMsg(ctx, cur+1, jetstream.WithGetMsgSubject(">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up events before seq %d: %w", seq, err)
	}
	return m.Sequence < seq, nil
}

// apply runs the projection's Apply for one event under its own consumer
// span, a child of the span that published the event (its traceparent), so
// the SQL it runs lands in the event's trace. A panic becomes an error.
func (r *Runner) apply(ctx context.Context, tx pgx.Tx, it *item, tenant *string) (err error) {
	batch := trace.LinkFromContext(ctx)
	ctx, span := r.tracer.Start(extract(ctx, it.msg), r.name+" apply",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(batch),
		trace.WithAttributes(eventAttributes(r.name, it)...))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in Apply: %v\n%s", p, debug.Stack())
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "apply failed")
		}
		span.End()
	}()
	if r.opts.SetTenant && (it.ev.Tenant == "" || it.ev.Tenant != *tenant) {
		// SetTenant refuses an empty tenant: such an event is poison here.
		if err := pgdb.SetTenant(ctx, tx, it.ev.Tenant); err != nil {
			return fmt.Errorf("event %s: %w", it.ev.ID, err)
		}
		*tenant = it.ev.Tenant
	}
	return r.p.Apply(ctx, tx, it.ev)
}

// deadLetter moves the event to the DLQ. It runs inside the batch's
// transaction, before the checkpoint moves past the event: if the commit
// then fails, the retry publishes it again and the DLQ's dedup (the id is
// derived from stream and sequence) keeps one copy.
func (r *Runner) deadLetter(ctx context.Context, it *item) error {
	ctx, span := r.tracer.Start(extract(ctx, it.msg), r.name+" dead-letter",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(eventAttributes(r.name, it)...))
	defer span.End()
	span.RecordError(it.poison)
	span.SetStatus(codes.Error, "dead-lettered")
	attempts := max(it.failures, 1)
	if err := deadletter.Publish(ctx, r.js, r.name, it.msg, it.poison, attempts); err != nil {
		span.RecordError(err)
		return err
	}
	r.log.WarnContext(ctx, "event dead-lettered", "seq", it.seq, "subject", it.msg.Subject(),
		"event_id", it.ev.ID, "attempts", attempts, "err", it.poison)
	return nil
}

// transient reports whether err comes from the infrastructure rather than
// from the event: the connection to Postgres broke or timed out, the server
// is shutting down or overloaded, the transaction lost a serialisation
// race. Such errors are retried without limit and never dead-letter an
// event; anything else Apply returns counts towards MaxAttempts.
func transient(err error, tx pgx.Tx) bool {
	if tx != nil && tx.Conn().IsClosed() {
		return true // whatever the error says, the connection is gone
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57", // operator intervention: admin shutdown, crash shutdown, cannot connect now
			"58": // system error (I/O)
			return pgErr.Code != "57014" // query_canceled by statement_timeout: the event's query is too slow
		case "40": // serialization failure, deadlock
			return true
		}
		return pgErr.Code == "55P03" // lock_not_available
	}
	return false
}
