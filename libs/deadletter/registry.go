package deadletter

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/es"
)

// ErrReplayFailed is returned (wrapped, together with the handler's error)
// by Replay when the consumer's function failed again; the letter stays.
var ErrReplayFailed = errors.New("deadletter: replay failed")

// Registry knows, per consumer name, how to re-run a dead letter: the
// projection or reaction handler that gave up on it. The zero value is ready
// to use, and it is safe for concurrent use.
type Registry struct {
	mu  sync.RWMutex
	fns map[string]func(ctx context.Context, e es.Event) error
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{} }

// Register makes fn the replay function for dead letters of consumer. A
// second registration for the same consumer replaces the first (a restarted
// router registers its handlers again). It panics on a nil fn or a consumer
// name that cannot be a subject token: that is a wiring bug.
func (r *Registry) Register(consumer string, fn func(ctx context.Context, e es.Event) error) {
	if fn == nil || !validToken(consumer) {
		panic(fmt.Sprintf("deadletter: Register(%q): invalid consumer name or nil function", consumer))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fns == nil {
		r.fns = map[string]func(context.Context, es.Event) error{}
	}
	r.fns[consumer] = fn
}

// Consumers returns the names registered so far, in no particular order.
func (r *Registry) Consumers() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.fns))
	for c := range r.fns {
		out = append(out, c)
	}
	return out
}

func (r *Registry) lookup(consumer string) func(context.Context, es.Event) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.fns[consumer]
}

// Replay re-runs the dead letter at DLQ sequence seq through the function
// registered for its consumer, with the original event (its original Subject
// and Sequence). On success the letter is deleted from the DLQ; on failure it
// stays and the error wraps ErrReplayFailed. An unknown seq or consumer
// yields an error wrapping ErrNotFound; a malformed original one wrapping
// ErrNotReplayable. Handlers must be idempotent: a replay that succeeds but
// fails to delete the letter leaves it to be replayed again.
func (r *Registry) Replay(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	l, err := Get(ctx, js, seq)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fn := r.lookup(l.Consumer)
	if fn == nil {
		return fmt.Errorf("replay dead letter %d: %w: no replay function for consumer %q", seq, ErrNotFound, l.Consumer)
	}
	if l.Malformed != "" {
		return fmt.Errorf("replay dead letter %d: %w: %s", seq, ErrNotReplayable, l.Malformed)
	}

	// The replay belongs to the operator's request (ctx); the original
	// event's trace is linked so one can jump from one to the other.
	var opts []trace.SpanStartOption
	if l.Event.TraceParent != "" {
		orig := propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": l.Event.TraceParent})
		if sc := trace.SpanContextFromContext(orig); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	opts = append(opts, trace.WithAttributes(
		attribute.String("opsdesk.consumer", l.Consumer),
		attribute.Int64("opsdesk.deadletter.seq", int64(seq)),
		attribute.String("messaging.message.id", l.Event.ID),
		attribute.String("messaging.destination.name", l.Subject),
	))
	ctx, span := otel.Tracer("opsdesk/deadletter").Start(ctx, l.Consumer+" replay", opts...)
	defer span.End()

	if err := runSafely(ctx, fn, l.Event); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "replay failed")
		return fmt.Errorf("replay dead letter %d for %s: %w: %w", seq, l.Consumer, ErrReplayFailed, err)
	}
	if err := Discard(ctx, js, seq); err != nil && !errors.Is(err, ErrNotFound) {
		// Not found: a concurrent replay removed it first; the job is done.
		span.RecordError(err)
		return fmt.Errorf("replay dead letter %d succeeded but: %w", seq, err)
	}
	return nil
}

// runSafely turns a panic of fn into an error, so a replay started from the
// CLI or an admin request cannot crash the process.
func runSafely(ctx context.Context, fn func(context.Context, es.Event) error, e es.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(ctx, e)
}
