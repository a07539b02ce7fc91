package projection

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/opsdesk/opsdesk/libs/natsx"
)

const tracerName = "opsdesk/projection"

// lagTimeout bounds the consumer-info request made on each metrics
// collection.
const lagTimeout = 2 * time.Second

// extract returns ctx with the remote span context the message carries as
// the parent for new spans; without one, ctx is returned unchanged.
func extract(ctx context.Context, m jetstream.Msg) context.Context {
	return natsx.Extract(ctx, m.Headers())
}

func eventAttributes(projection string, it *item) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", it.msg.Subject()),
		attribute.String("messaging.consumer.group.name", projection),
		attribute.String("messaging.message.id", it.ev.ID),
		attribute.Int64("opsdesk.stream.sequence", int64(it.seq)),
		attribute.String("opsdesk.event.type", it.ev.Type),
		attribute.String("opsdesk.tenant", it.ev.Tenant),
		attribute.String("opsdesk.projection", projection),
	}
}

// instruments are the projection metrics, created once on the global meter
// provider (which forwards to the provider telemetry.Setup installs, even
// when that happens later).
type instruments struct {
	meter        metric.Meter
	applied      metric.Int64Counter
	deadLettered metric.Int64Counter
	lastSeq      metric.Int64Gauge
	lag          metric.Int64ObservableGauge
}

var (
	instOnce sync.Once
	inst     instruments
)

func metrics() *instruments {
	instOnce.Do(func() {
		m := otel.Meter(tracerName)
		inst.meter = m
		// Errors from instrument creation only mean a no-op instrument; the
		// global error handler reports them.
		inst.applied, _ = m.Int64Counter("opsdesk_projection_applied_total",
			metric.WithDescription("Events applied to the read model."))
		inst.deadLettered, _ = m.Int64Counter("opsdesk_projection_deadlettered_total",
			metric.WithDescription("Events moved to the DLQ because they could not be decoded or applied."))
		inst.lastSeq, _ = m.Int64Gauge("opsdesk_projection_last_seq",
			metric.WithDescription("Stream sequence of the last event applied (the checkpoint)."))
		inst.lag, _ = m.Int64ObservableGauge("opsdesk_projection_lag_events",
			metric.WithDescription("Events in the stream the projection has not applied yet."))
	})
	return &inst
}

func recordBatch(ctx context.Context, projection string, checkpoint uint64, applied, dead int64) {
	m := metrics()
	attrs := metric.WithAttributes(attribute.String("projection", projection))
	m.lastSeq.Record(ctx, int64(checkpoint), attrs)
	if applied > 0 {
		m.applied.Add(ctx, applied, attrs)
	}
	if dead > 0 {
		m.deadLettered.Add(ctx, dead, attrs)
	}
}

// observeLag reports, on each collection while Run runs, the consumer's
// undelivered plus unacknowledged events: exactly the events of the stream
// the checkpoint has not reached, as the server sees it, so it keeps
// growing while the runner is stuck. It returns the unregister function.
func (r *Runner) observeLag() func() {
	m := metrics()
	attrs := metric.WithAttributes(attribute.String("projection", r.name))
	reg, err := m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if !r.nc.IsConnected() {
			return nil // no fresh figure; report none rather than a stale one
		}
		cons, _ := r.consumer()
		ctx, cancel := context.WithTimeout(ctx, lagTimeout)
		defer cancel()
		info, err := cons.Info(ctx)
		if err != nil {
			return nil
		}
		o.ObserveInt64(m.lag, int64(info.NumPending)+int64(info.NumAckPending), attrs)
		return nil
	}, m.lag)
	if err != nil {
		r.log.Warn("lag metric unavailable", "err", err)
		return func() {}
	}
	return func() { _ = reg.Unregister() }
}
