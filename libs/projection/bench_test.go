package projection_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/projection"
)

// BenchmarkReplay measures how fast a runner replays a stream into an empty
// read model (events/s): with a projection that writes nothing (the
// runner's own ceiling) and with the test read model written through
// ApplyBatch. Run it with a fixed count, e.g.
//
//	go test -run '^$' -bench Replay -benchtime 50000x ./projection
func BenchmarkReplay(b *testing.B) {
	// Spans are sampled and batched as in production, not kept in memory.
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	otel.SetTracerProvider(tp)
	b.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	for _, size := range []int{256, 1024} {
		for _, kind := range []string{"noop", "batch"} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, size), func(b *testing.B) {
				e := newEnv(b)
				publishAsync(b, e, b.N)
				var p projection.Projection = noop{name: "bench__noop_v1"}
				if kind == "batch" {
					p = &batchCounter{counter: counter{name: "bench__batch_v1"}}
				}
				r := e.runner(b, p, projection.Options{BatchSize: size})
				b.ResetTimer()
				start(b, r)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if err := r.WaitFor(ctx, uint64(b.N)); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// noop is a projection that writes nothing.
type noop struct{ name string }

func (n noop) Name() string                                         { return n.name }
func (n noop) Stream() string                                       { return stream }
func (n noop) Apply(context.Context, pgx.Tx, es.Event) error        { return nil }
func (n noop) ApplyBatch(context.Context, pgx.Tx, []es.Event) error { return nil }
func (n noop) Reset(context.Context, pgx.Tx) error                  { return nil }

func publishAsync(b *testing.B, e *env, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		ev := es.Event{ID: fmt.Sprintf("b%08d", i), Type: "opsdesk.test.counted.v1", Source: "/bench", Tenant: tenant,
			AggregateID: fmt.Sprintf("a%03d", i%500), Time: time.Now(), Data: []byte(`{}`)}
		msg := &nats.Msg{Subject: "ticket." + tenant + "." + ev.AggregateID, Header: nats.Header(es.EncodeHeaders(ev)), Data: ev.Data}
		if _, err := e.js.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 {
			<-e.js.PublishAsyncComplete()
		}
	}
	<-e.js.PublishAsyncComplete()
}
