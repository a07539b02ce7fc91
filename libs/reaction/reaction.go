// Package reaction runs a service's reactions to events: durable JetStream
// consumers whose handlers answer events (usually another service's) with
// commands on the service's own aggregates.
//
// A Router is a Watermill message.Router. Each handler gets one durable pull
// consumer named <service>__<name>, and every message goes through, outermost
// first: an OpenTelemetry consumer span (child of the publisher's span, from
// the traceparent header), a correlation id, the poison queue, retry with
// exponential backoff, a panic recoverer, and decoding into an es.Event. A
// message that still fails after the retries is moved to the DLQ stream with
// its error (see package deadletter) and acked, so it never blocks the
// messages behind it; it can be replayed through the same handler.
//
// Delivery is at least once, so handlers must be idempotent: derive the ids
// of the events a reaction appends from the event it reacts to (DeriveID,
// FollowUp), so a redelivery appends duplicates JetStream drops.
package reaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
)

// Defaults of Config.
const (
	DefaultMaxRetries      = 3
	DefaultInitialInterval = 100 * time.Millisecond
	DefaultRedeliveryDelay = time.Second
	DefaultHandleTimeout   = 2 * time.Minute
	DefaultCloseTimeout    = 30 * time.Second

	// maxInterval caps the backoff between two retries of one delivery.
	maxInterval = 5 * time.Second
	// prefetch is how many messages a consumer buffers in the client. Small,
	// because a buffered message's ack timer already runs on the server.
	prefetch = 16
)

// Config configures a Router.
type Config struct {
	// Service names the consumers: <Service>__<handler name>. Required.
	Service string
	// Logger receives handler failures and dead letters (default slog.Default()).
	// Watermill's own per-message chatter is logged at debug.
	Logger *slog.Logger
	// MaxRetries is how many times a failing handler is retried within one
	// delivery before the message is dead-lettered (default 3; negative
	// means no retries).
	MaxRetries int
	// InitialInterval is the wait before the first retry; it doubles for each
	// further retry, up to 5 s (default 100 ms).
	InitialInterval time.Duration
	// RedeliveryDelay is how long a nacked message waits before JetStream
	// delivers it again; it doubles per delivery, up to a minute. A message is
	// nacked only when it could not be dead-lettered or on shutdown (default 1 s).
	RedeliveryDelay time.Duration
	// HandleTimeout bounds one message's handling, all retries included;
	// a handler still running then fails with context.DeadlineExceeded and
	// the message is dead-lettered (default 2 min).
	HandleTimeout time.Duration
	// CloseTimeout is how long Close waits for in-flight messages (default 30 s).
	CloseTimeout time.Duration
}

// Handler reacts to one event. A returned error is retried, then the event
// is dead-lettered. Wrap an error with Permanent to skip the retries.
type Handler func(ctx context.Context, e es.Event) error

// ErrPermanent marks a failure that retrying cannot fix (see Permanent).
var ErrPermanent = errors.New("reaction: permanent failure")

// Permanent wraps err so the router dead-letters the event at once instead
// of retrying it, e.g. for an event the handler can never accept.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// route is one registered handler.
type route struct {
	consumer string // <service>__<name>
	stream   string
	subjects []string
	handler  Handler
}

// Router runs the reaction handlers of one service.
type Router struct {
	js       jetstream.JetStream
	cfg      Config
	log      *slog.Logger
	dl       *deadletter.Registry
	wm       *message.Router
	tracer   trace.Tracer
	messages metric.Int64Counter

	mu      sync.Mutex
	routes  []*route
	errs    []error // wiring errors, returned by Run
	started bool
	closed  bool
	sub     *subscriber
}

// New returns a Router consuming through js (a JetStream context on nc). dl
// may be nil; otherwise every handler is registered in it so its dead
// letters can be replayed through the same handler.
func New(nc *nats.Conn, js jetstream.JetStream, cfg Config, dl *deadletter.Registry) (*Router, error) {
	if nc == nil || js == nil {
		return nil, errors.New("reaction: nil NATS connection or JetStream context")
	}
	if !es.ValidToken(cfg.Service) {
		return nil, fmt.Errorf("reaction: invalid service name %q", cfg.Service)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.InitialInterval <= 0 {
		cfg.InitialInterval = DefaultInitialInterval
	}
	if cfg.RedeliveryDelay <= 0 {
		cfg.RedeliveryDelay = DefaultRedeliveryDelay
	}
	if cfg.HandleTimeout <= 0 {
		cfg.HandleTimeout = DefaultHandleTimeout
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	log := cfg.Logger.With("service", cfg.Service)

	// Watermill logs every message at info; operators want our own lines
	// (failures, dead letters) at info and above, and its chatter at debug.
	wmLog := watermill.NewSlogLoggerWithLevelMapping(log.With("component", "watermill"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, wmLog)
	if err != nil {
		return nil, fmt.Errorf("reaction: router: %w", err)
	}
	messages, err := otel.GetMeterProvider().Meter("opsdesk/reaction").Int64Counter(
		"opsdesk_reaction_messages_total",
		metric.WithDescription("Messages handled by reactions, by consumer and result (ok, deadlettered, nacked)."))
	if err != nil {
		return nil, fmt.Errorf("reaction: metric: %w", err)
	}
	return &Router{
		js:       js,
		cfg:      cfg,
		log:      log,
		dl:       dl,
		wm:       wm,
		tracer:   otel.GetTracerProvider().Tracer("opsdesk/reaction"),
		messages: messages,
	}, nil
}

// Handle registers h on a durable consumer named <service>__<name> of
// stream, filtered on subjects, created if missing and delivering the whole
// stream when new. Call it before Run; a wiring mistake (bad name, duplicate,
// no subjects) is returned by Run.
func (r *Router) Handle(name, stream string, subjects []string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	consumer := r.cfg.Service + "__" + name
	switch {
	case r.started:
		r.log.Error("reaction handler registered after Run is ignored", "consumer", consumer)
		return
	case !es.ValidToken(name):
		r.errs = append(r.errs, fmt.Errorf("reaction: invalid handler name %q", name))
		return
	case stream == "" || len(subjects) == 0 || h == nil:
		r.errs = append(r.errs, fmt.Errorf("reaction %s: stream, subjects and handler are required", consumer))
		return
	}
	for _, rt := range r.routes {
		if rt.consumer == consumer {
			r.errs = append(r.errs, fmt.Errorf("reaction %s: registered twice", consumer))
			return
		}
	}
	r.routes = append(r.routes, &route{consumer: consumer, stream: stream, subjects: slices.Clone(subjects), handler: h})
	if r.dl != nil {
		r.dl.Register(consumer, h)
	}
}

// Run creates the consumers and handles messages until ctx is cancelled
// (it then returns ctx.Err()) or Close is called (nil). It fails when a
// consumer cannot be created or a subscription ends unexpectedly.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	if r.started {
		r.mu.Unlock()
		return errors.New("reaction: router already running")
	}
	r.started = true
	if err := errors.Join(r.errs...); err != nil {
		r.mu.Unlock()
		return err
	}
	// Create the consumers before Watermill starts: a router whose start
	// fails half-way waits out its CloseTimeout and leaks goroutines.
	specs := map[string]jetstream.Consumer{}
	for _, rt := range r.routes {
		cons, err := r.js.CreateOrUpdateConsumer(ctx, rt.stream, r.consumerConfig(rt))
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("reaction %s: consumer on stream %s: %w", rt.consumer, rt.stream, err)
		}
		specs[rt.consumer] = cons
	}
	sub := newSubscriber(specs, r.log, r.cfg, func(error) { _ = r.wm.Close() })
	r.sub = sub
	for _, rt := range r.routes {
		r.wm.AddConsumerHandler(rt.consumer, rt.consumer, sub, r.chain(rt))
	}
	r.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { _ = r.wm.Close() })
	defer stop()
	err := r.wm.Run(ctx)
	if err != nil {
		// A failed start leaves the router half-open; closing it waits
		// CloseTimeout for handlers that never ran, so not on this path.
		go func() { _ = r.wm.Close() }()
	}
	closeErr := sub.Close()
	switch {
	case err != nil:
		return fmt.Errorf("reaction %s: %w", r.cfg.Service, err)
	case sub.failure() != nil:
		return fmt.Errorf("reaction %s: %w", r.cfg.Service, sub.failure())
	case ctx.Err() != nil:
		return ctx.Err()
	case closeErr != nil:
		return fmt.Errorf("reaction %s: close: %w", r.cfg.Service, closeErr)
	}
	return nil
}

// Running is closed once Run has created every consumer and is handling
// messages.
func (r *Router) Running() chan struct{} { return r.wm.Running() }

// Close stops taking messages, lets the ones in flight finish (up to
// CloseTimeout), and makes Run return. It is safe to call more than once.
func (r *Router) Close() error {
	r.mu.Lock()
	r.closed = true
	sub := r.sub
	r.mu.Unlock()
	err := r.wm.Close()
	if sub != nil {
		err = errors.Join(err, sub.Close())
	}
	if err != nil {
		return fmt.Errorf("reaction %s: close: %w", r.cfg.Service, err)
	}
	return nil
}

// consumerConfig is the durable consumer of rt. AckWait covers the longest
// backoff sleep comfortably; while a handler runs, the subscriber keeps the
// message in progress, so slow handlers do not cause redeliveries.
func (r *Router) consumerConfig(rt *route) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        rt.consumer,
		Description:    "OpsDesk reaction " + rt.consumer,
		FilterSubjects: rt.subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        30 * time.Second,
		// Never give up server-side: a poison message is dead-lettered by the
		// router, and one that could not be must stay until it can.
		MaxDeliver: -1,
	}
}

// RunRetrying runs a Router made by build until ctx is done (then nil).
// The streams reactions consume usually belong to other services, which
// may start later in a split deployment: while one is missing, it logs,
// waits wait (2 s when zero) and runs a fresh Router. Other failures are
// returned.
func RunRetrying(ctx context.Context, build func() (*Router, error), wait time.Duration, log *slog.Logger) error {
	if wait <= 0 {
		wait = 2 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	for {
		r, err := build()
		if err != nil {
			return err
		}
		err = r.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrStreamNotFound):
			log.InfoContext(ctx, "reactions wait for a stream they consume", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		default:
			return err
		}
	}
}
