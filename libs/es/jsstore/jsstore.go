// Package jsstore is the es.Store on NATS JetStream: one stream per bounded
// context, one subject per aggregate (<context>.<tenant>.<id>), optimistic
// concurrency through Nats-Expected-Last-Subject-Sequence, and several events
// of one command written as one ADR-50 atomic batch.
//
// Outcomes of Append:
//   - the aggregate moved on since it was loaded: es.ErrConcurrency;
//   - the same events (same ids, same expected sequence) were already
//     stored by an earlier attempt whose answer was lost: success, with the
//     sequence they were stored at;
//   - NATS unreachable, too slow or overloaded: es.ErrUnavailable (the
//     write may or may not have happened; retrying with the same ids is safe).
package jsstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/es"
)

// LoadMethod selects how Load reads an aggregate.
type LoadMethod string

const (
	// LoadDirect reads with JetStream direct batch get (ADR-31): one request
	// per page of events, answered from the stream store with no consumer.
	// It is the default because it is the faster (see BenchmarkLoad).
	LoadDirect LoadMethod = "direct"
	// LoadOrdered reads with an ephemeral ordered consumer filtered on the
	// aggregate's subject. It needs no AllowDirect on the stream, and its
	// reads always come from the stream leader.
	LoadOrdered LoadMethod = "ordered"
)

// Defaults for Config.
const (
	DefaultPublishTimeout = 5 * time.Second
	DefaultLoadPageSize   = 256
	// MaxBatch is the most events one Append takes: the server's default
	// limit on an atomic batch (streamMaxAtomicBatchSize).
	MaxBatch = 1000
)

// TracerName is the OpenTelemetry instrumentation scope of the store's spans.
const TracerName = "opsdesk/es"

// Config is how a Store reaches its stream.
type Config struct {
	Context string // subject prefix and aggregate kind, e.g. "ticket"
	Stream  string // stream holding <Context>.>, e.g. "TICKETS"
	// PublishTimeout bounds one Append (DefaultPublishTimeout when zero):
	// past it the caller gets es.ErrUnavailable, never a hang.
	PublishTimeout time.Duration
	// LoadTimeout bounds one Load (PublishTimeout when zero).
	LoadTimeout time.Duration
	// LoadMethod picks the read path; "" means LoadDirect.
	LoadMethod LoadMethod
	// LoadPageSize is how many events one direct-get request returns
	// (DefaultLoadPageSize when zero); longer aggregates take several.
	LoadPageSize int
	// TracerProvider makes the publish spans; nil means the global one.
	TracerProvider trace.TracerProvider
}

// Store is the JetStream event store of one bounded context.
type Store struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	cfg       Config
	tracer    trace.Tracer
	apiPrefix string
	direct    *responseMux
}

var _ es.Store = (*Store)(nil)

// New returns the store of cfg.Context on cfg.Stream. The stream must exist
// (natsx.EnsureStream) with AllowAtomicPublish, and AllowDirect for
// LoadDirect. New panics on a nil connection or an invalid config: that is
// a wiring bug, caught at start.
func New(nc *nats.Conn, js jetstream.JetStream, cfg Config) *Store {
	if nc == nil || js == nil {
		panic("jsstore.New: nil NATS connection or JetStream context")
	}
	if !es.ValidToken(cfg.Context) || cfg.Stream == "" {
		panic(fmt.Sprintf("jsstore.New: invalid context %q or empty stream name", cfg.Context))
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = cfg.PublishTimeout
	}
	if cfg.LoadPageSize <= 0 {
		cfg.LoadPageSize = DefaultLoadPageSize
	}
	switch cfg.LoadMethod {
	case "":
		cfg.LoadMethod = LoadDirect
	case LoadDirect, LoadOrdered:
	default:
		panic(fmt.Sprintf("jsstore.New: unknown load method %q", cfg.LoadMethod))
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Store{
		nc:        nc,
		js:        js,
		cfg:       cfg,
		tracer:    tp.Tracer(TracerName),
		apiPrefix: apiPrefix(js.Options()),
		direct:    &responseMux{nc: nc},
	}
}

// apiPrefix is the JetStream API subject prefix the js context talks to,
// honouring a domain or a custom prefix (for DIRECT.GET, which we send by
// hand).
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if o.APIPrefix[len(o.APIPrefix)-1] != '.' {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	default:
		return jetstream.DefaultAPIPrefix
	}
}

// unavailable wraps err in es.ErrUnavailable when it means NATS could not
// be reached or did not answer in time; other errors pass through.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrStaleConnection),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: %w", es.ErrUnavailable, err)
	case errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.Code == 429):
		// 503: JetStream (or the stream's leader) temporarily unavailable;
		// 429: too many atomic batches in flight. Both pass; retry later.
		return fmt.Errorf("%w: %w", es.ErrUnavailable, err)
	}
	return err
}
