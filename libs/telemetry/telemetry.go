// Package telemetry sets up OpenTelemetry for one OpsDesk process: a tracer
// provider (OTLP export when an endpoint is configured), a meter provider
// read by Prometheus at /metrics (and exported over OTLP too), the W3C
// propagators, and the slog JSON logger that stamps trace and span ids.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// EnvOTLPEndpoint is the standard OpenTelemetry variable Setup falls back to
// when Config.OTLPEndpoint is empty.
const EnvOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"

// Config says how this process reports telemetry.
type Config struct {
	// ServiceName is the resource's service.name: opsdesk-<target>
	// ("opsdesk-all" in development, "opsdesk-intake" for one service).
	// Empty means "opsdesk".
	ServiceName string
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector
	// (http://collector:4318); traces go to <endpoint>/v1/traces and metrics
	// to <endpoint>/v1/metrics. Empty falls back to OTEL_EXPORTER_OTLP_ENDPOINT;
	// when both are empty nothing is exported over OTLP, but spans are still
	// created so trace ids reach logs and propagate across NATS.
	OTLPEndpoint string
	// SampleRatio is the fraction of new root traces sampled, in (0, 1]; a
	// span with a sampled parent is always sampled (parent-based). Zero means
	// 1, so the zero Config traces everything.
	SampleRatio float64
	// Logger receives OpenTelemetry's own errors (a collector that cannot be
	// reached, a dropped batch). Nil means slog.Default().
	Logger *slog.Logger
}

// Telemetry holds the providers Setup installed. Call Shutdown before the
// process exits so buffered spans and metrics are flushed.
type Telemetry struct {
	tracer   *sdktrace.TracerProvider
	meter    *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// Setup builds the tracer and meter providers and installs them, with the
// TraceContext+Baggage propagator, as the OpenTelemetry globals, so every
// otel.Tracer and otel.Meter in the process (otelecho, otelpgx, our own
// spans) reports through them.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = "opsdesk"
	}
	if cfg.SampleRatio == 0 {
		cfg.SampleRatio = 1
	}
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %v: must be in (0, 1]", cfg.SampleRatio)
	}
	if cfg.OTLPEndpoint == "" {
		cfg.OTLPEndpoint = os.Getenv(EnvOTLPEndpoint)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	// resource.New, not resource.Merge(resource.Default(), ...): Merge fails
	// when the two resources carry different semconv schema URLs. Our
	// attributes come last so the configured service name wins over
	// OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
	res, err := resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	traceOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}
	metricOpts := []sdkmetric.Option{sdkmetric.WithResource(res)}

	if cfg.OTLPEndpoint != "" {
		tracesURL, metricsURL, err := otlpURLs(cfg.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		spanExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(spanExp))
		metricExp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(metricsURL))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
		}
		metricOpts = append(metricOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExp)))
	}

	// A private registry rather than prometheus.DefaultRegisterer: two
	// Setups in one test binary must not collide on duplicate collectors.
	registry := prometheus.NewRegistry()
	if err := registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: go collector: %w", err)
	}
	if err := registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: process collector: %w", err)
	}
	promExp, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	metricOpts = append(metricOpts, sdkmetric.WithReader(promExp))

	t := &Telemetry{
		tracer:   sdktrace.NewTracerProvider(traceOpts...),
		meter:    sdkmetric.NewMeterProvider(metricOpts...),
		registry: registry,
	}
	otel.SetTracerProvider(t.tracer)
	otel.SetMeterProvider(t.meter)
	otel.SetTextMapPropagator(Propagator())
	log := cfg.Logger
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", "err", err)
	}))
	return t, nil
}

// Propagator is the propagator OpsDesk uses everywhere: W3C traceparent /
// tracestate and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// otlpURLs turns the base endpoint into the per-signal URLs, the way the
// OTLP exporters do for OTEL_EXPORTER_OTLP_ENDPOINT (WithEndpointURL takes
// the path as is).
func otlpURLs(endpoint string) (traces, metrics string, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("telemetry: OTLP endpoint %q: must be an http(s) URL such as http://collector:4318", endpoint)
	}
	base := strings.TrimSuffix(u.String(), "/")
	return base + "/v1/traces", base + "/v1/metrics", nil
}

// TracerProvider returns the installed tracer provider.
func (t *Telemetry) TracerProvider() *sdktrace.TracerProvider { return t.tracer }

// MeterProvider returns the installed meter provider.
func (t *Telemetry) MeterProvider() *sdkmetric.MeterProvider { return t.meter }

// Registry returns the Prometheus registry MetricsHandler serves, for
// collectors that are not OpenTelemetry instruments.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// MetricsHandler serves the process's metrics in the Prometheus exposition
// format (mount it at /metrics).
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// Shutdown flushes buffered spans and metrics and stops the exporters,
// within ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if err := t.tracer.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: tracer shutdown: %w", err))
	}
	if err := t.meter.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: meter shutdown: %w", err))
	}
	return errors.Join(errs...)
}
