package telemetrytest_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/opsdesk/opsdesk/libs/telemetry/telemetrytest"
)

// Not parallel: these tests replace OpenTelemetry globals.

func TestSpansRecordsAndRestores(t *testing.T) {
	before := otel.GetTracerProvider()
	t.Run("inner", func(t *testing.T) {
		spans := telemetrytest.Spans(t)
		ctx, parent := otel.Tracer("test").Start(context.Background(), "parent")
		// Propagation through a carrier, as across NATS headers.
		carrier := propagation.MapCarrier{}
		otel.GetTextMapPropagator().Inject(ctx, carrier)
		remote := otel.GetTextMapPropagator().Extract(context.Background(), carrier)
		_, child := otel.Tracer("test").Start(remote, "child")
		child.End()
		parent.End()

		p, ok := telemetrytest.SpanNamed(spans, "parent")
		c, ok2 := telemetrytest.SpanNamed(spans, "child")
		if !ok || !ok2 {
			t.Fatalf("spans %v: want parent and child", spans.GetSpans())
		}
		if c.Parent.SpanID() != p.SpanContext.SpanID() || c.SpanContext.TraceID() != p.SpanContext.TraceID() {
			t.Fatal("child is not in the parent's trace")
		}
		if _, ok := telemetrytest.SpanNamed(spans, "missing"); ok {
			t.Fatal("found a span that was never started")
		}
	})
	if otel.GetTracerProvider() != before {
		t.Fatal("global tracer provider not restored")
	}
}

func TestMetricsCollects(t *testing.T) {
	reader := telemetrytest.Metrics(t)
	c, err := otel.Meter("test").Int64Counter("opsdesk_test_total")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 2)
	rm := telemetrytest.Collect(t, reader)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "opsdesk_test_total" {
				return
			}
		}
	}
	t.Fatalf("metric not collected: %+v", rm)
}
