package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/opsdesk/opsdesk/libs/telemetry"
)

// These tests replace the OpenTelemetry globals, so none of them is parallel.

func TestSetupWithoutExporterStillTracesAndServesMetrics(t *testing.T) {
	t.Setenv(telemetry.EnvOTLPEndpoint, "")
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "opsdesk-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	// A real provider: spans have valid, sampled ids even with no exporter.
	_, span := otel.Tracer("test").Start(ctx, "op")
	sc := span.SpanContext()
	span.End()
	if !sc.IsValid() || !sc.IsSampled() {
		t.Fatalf("span context %+v: want valid and sampled", sc)
	}

	// The global propagator carries W3C trace context and baggage.
	fields := otel.GetTextMapPropagator().Fields()
	if !contains(fields, "traceparent") || !contains(fields, "baggage") {
		t.Fatalf("propagator fields %v: want traceparent and baggage", fields)
	}
	carrier := propagation.MapCarrier{}
	spanCtx, child := otel.Tracer("test").Start(ctx, "inject")
	otel.GetTextMapPropagator().Inject(spanCtx, carrier)
	child.End()
	if want := child.SpanContext().TraceID().String(); !strings.Contains(carrier["traceparent"], want) {
		t.Fatalf("traceparent %q does not carry trace id %s", carrier["traceparent"], want)
	}

	counter, err := otel.Meter("test").Int64Counter("opsdesk_test_things")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 3)

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"opsdesk_test_things_total", "go_goroutines", "process_", `service_name="opsdesk-test"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// collector is a fake OTLP/HTTP receiver that records the paths posted to.
type collector struct {
	mu    sync.Mutex
	paths []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.paths = append(c.paths, r.URL.Path)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (c *collector) got(path string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return contains(c.paths, path)
}

func TestSetupExportsOverOTLPAndShutdownFlushes(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv(telemetry.EnvOTLPEndpoint, "")

	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "opsdesk-test", OTLPEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(ctx, "exported")
	span.End()
	c, _ := otel.Meter("test").Int64Counter("opsdesk_test_exported")
	c.Add(ctx, 1)

	// The batch processor holds the span; only Shutdown's flush sends it.
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !col.got("/v1/traces") || !col.got("/v1/metrics") {
		t.Fatalf("collector got %v, want /v1/traces and /v1/metrics", col.paths)
	}
}

func TestSetupReadsEndpointFromEnvironment(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv(telemetry.EnvOTLPEndpoint, srv.URL+"/")

	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(ctx, "exported")
	span.End()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !col.got("/v1/traces") {
		t.Fatalf("collector got %v, want /v1/traces", col.paths)
	}
}

func TestSetupRejectsBadConfig(t *testing.T) {
	t.Setenv(telemetry.EnvOTLPEndpoint, "")
	ctx := context.Background()
	for name, cfg := range map[string]telemetry.Config{
		"ratio above one":   {SampleRatio: 1.5},
		"negative ratio":    {SampleRatio: -0.1},
		"endpoint not http": {OTLPEndpoint: "collector:4318"},
	} {
		if tel, err := telemetry.Setup(ctx, cfg); err == nil {
			_ = tel.Shutdown(ctx)
			t.Errorf("%s: Setup accepted %+v", name, cfg)
		}
	}
}
