// Package telemetrytest records the spans and metrics a test produces, by
// installing in-memory OpenTelemetry providers as the process globals.
//
// Because it replaces globals, tests that call Spans or Metrics must not run
// in parallel with each other (no t.Parallel() in them), and must build the
// components under test after the call. Code under test must get its tracer
// from otel.Tracer when it is constructed or used, not in a package-level
// variable: such a tracer stays bound to the first global provider ever set.
package telemetrytest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opsdesk/opsdesk/libs/telemetry"
)

// Spans installs a tracer provider that samples every span and records it,
// synchronously when the span ends, in the returned exporter; it also
// installs OpsDesk's propagator. The previous globals are restored at the
// end of the test.
func Spans(t testing.TB) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSyncer(exp),
	)
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(telemetry.Propagator())
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})
	return exp
}

// Metrics installs a meter provider read by the returned manual reader; call
// Collect to see what was recorded. The previous global is restored at the
// end of the test.
func Metrics(t testing.TB) *sdkmetric.ManualReader {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetMeterProvider(prev)
		_ = mp.Shutdown(context.Background())
	})
	return reader
}

// Collect reads every metric recorded so far from reader.
func Collect(t testing.TB, reader *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect metrics: %v", err)
	}
	return rm
}

// SpanNamed returns the first recorded span called name, and whether there
// was one.
func SpanNamed(exp *tracetest.InMemoryExporter, name string) (tracetest.SpanStub, bool) {
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}
