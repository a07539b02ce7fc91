package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/opsdesk/opsdesk/libs/telemetry"
)

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(buf)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func TestLoggerAddsTraceAndSpanIDs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, slog.LevelInfo)
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()

	log.InfoContext(ctx, "with span", "ticket_id", "tk_1")
	log.With("module", "intake").ErrorContext(ctx, "derived logger", "error", errors.New("boom"))
	log.Info("without context")

	lines := decodeLines(t, &buf)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	sc := span.SpanContext()
	for i, l := range lines[:2] {
		if l["trace_id"] != sc.TraceID().String() || l["span_id"] != sc.SpanID().String() {
			t.Errorf("line %d: trace_id=%v span_id=%v, want %s %s", i, l["trace_id"], l["span_id"], sc.TraceID(), sc.SpanID())
		}
	}
	if lines[0]["msg"] != "with span" || lines[0]["level"] != "info" || lines[0]["ticket_id"] != "tk_1" {
		t.Errorf("line 0 = %v", lines[0])
	}
	if lines[1]["err"] != "boom" || lines[1]["level"] != "error" || lines[1]["module"] != "intake" {
		t.Errorf("line 1 = %v, want err=boom level=error module=intake", lines[1])
	}
	if _, ok := lines[1]["error"]; ok {
		t.Errorf("line 1 still has key error: %v", lines[1])
	}
	if _, ok := lines[2]["trace_id"]; ok {
		t.Errorf("line without span context has trace_id: %v", lines[2])
	}
}

func TestLoggerLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, slog.LevelWarn)
	log.Info("dropped")
	log.Debug("dropped")
	log.Warn("kept")
	lines := decodeLines(t, &buf)
	if len(lines) != 1 || lines[0]["msg"] != "kept" || lines[0]["level"] != "warn" {
		t.Fatalf("lines = %v, want only the warning", lines)
	}
}

func TestLoggerUnsampledSpanStillCarriesIDs(t *testing.T) {
	t.Parallel()
	// A trace that is not sampled still has ids; logs must carry them so
	// they can be correlated with the upstream caller's trace.
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, slog.LevelInfo)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	log.InfoContext(ctx, "x")
	lines := decodeLines(t, &buf)
	if len(lines) != 1 || lines[0]["trace_id"] != span.SpanContext().TraceID().String() {
		t.Fatalf("lines = %v, want trace_id %s", lines, span.SpanContext().TraceID())
	}
}
