package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys the logger adds. Keys are snake_case across OpsDesk;
// errors go under "err" (Loki's convention).
const (
	KeyTraceID = "trace_id"
	KeySpanID  = "span_id"
	KeyErr     = "err"
)

// NewLogger returns a JSON logger writing to w at level and above. Each
// record logged with a context (InfoContext, ErrorContext, LogAttrs...)
// carries trace_id and span_id of the span in that context, so a log line
// leads to its trace. Levels are written in lower case ("info"), and an
// attribute named "error" is renamed "err".
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(NewHandler(w, level))
}

// NewHandler is NewLogger's handler, for callers that wrap it further or
// change the level at run time (pass a *slog.LevelVar).
//
// Groups opened with WithGroup also hold the trace attributes of records
// logged through them, so keep groups for nested detail, not whole loggers.
func NewHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return traceHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: replaceAttr,
	})}
}

func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		if l, ok := a.Value.Any().(slog.Level); ok {
			return slog.String(slog.LevelKey, strings.ToLower(l.String()))
		}
	case "error":
		a.Key = KeyErr
	}
	return a
}

// traceHandler adds the trace and span ids found in the record's context.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(
			slog.String(KeyTraceID, sc.TraceID().String()),
			slog.String(KeySpanID, sc.SpanID().String()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
