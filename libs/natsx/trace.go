package natsx

import (
	"context"
	"net/textproto"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts message headers (nats.Header, es.Header, or any
// map[string][]string) to propagation.TextMapCarrier, so W3C trace context
// travels with a message.
type HeaderCarrier map[string][]string

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key. NATS keeps header case as sent while
// HTTP canonicalises it, so both spellings are tried.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	if v := c[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// fallback is used when no global propagator was installed: trace context
// must cross NATS even in a test or tool that skipped telemetry.Setup,
// otherwise consumers silently start new traces.
var fallback = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func propagator() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if len(p.Fields()) == 0 {
		return fallback
	}
	return p
}

// Inject writes the span context of ctx (traceparent, tracestate and
// baggage) into h. With no valid span in ctx, h is left as it was.
func Inject(ctx context.Context, h map[string][]string) {
	if h == nil {
		return
	}
	propagator().Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx carrying the remote span context found in h, so a
// span started from it becomes a child of the span that published h.
func Extract(ctx context.Context, h map[string][]string) context.Context {
	return propagator().Extract(ctx, HeaderCarrier(h))
}
