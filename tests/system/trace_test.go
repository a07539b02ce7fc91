package system_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/testwait"
	"github.com/opsdesk/opsdesk/services/intake"
)

// TestOneTrace (issue 2, item 9): POST /v1/tickets, the append to
// JetStream, the projection's consumer and the SQL it runs are one trace:
// the consumer span is a child of the publish span, across the NATS hop
// (traceparent stored with the event), and the SQL spans are below the
// consumer span.
//
// Not parallel, so the spans of other tests' requests do not interleave;
// it finds its own trace from the consumer span of its ticket anyway.
func TestOneTrace(t *testing.T) {
	spans.Reset()
	s := start(t, intake.Config{})

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := s.postTicket(ctx, "t_trace", "Trace me")
	if err != nil {
		t.Fatal(err)
	}
	tk, seq := created(t, a)
	s.waitProjected(t, seq, 10*time.Second)

	// The consumer span of this ticket's event names its subject; its
	// trace must hold the request's server span and the publish span. The
	// server span ends after the response is written, so it may land a
	// moment after the client has the 201; the consumer's spans ended
	// before its checkpoint committed.
	var server, publish, consumer tracetest.SpanStub
	var traceID trace.TraceID
	testwait.Until(t, 5*time.Second, "the HTTP server, publish and consumer spans of one trace", func() bool {
		all := spans.GetSpans()
		var ok bool
		consumer, ok = find(all, func(s tracetest.SpanStub) bool {
			return s.SpanKind == trace.SpanKindConsumer && s.Name == intake.TicketsProjection+" apply" &&
				hasAttr(s, "ticket.t_trace."+tk.ID)
		})
		if !ok {
			return false
		}
		traceID = consumer.SpanContext.TraceID()
		var ok1, ok2 bool
		server, ok1 = find(all, func(s tracetest.SpanStub) bool {
			return s.SpanContext.TraceID() == traceID && s.SpanKind == trace.SpanKindServer && strings.Contains(s.Name, "/v1/tickets")
		})
		publish, ok2 = find(all, func(s tracetest.SpanStub) bool {
			return s.SpanContext.TraceID() == traceID && s.SpanKind == trace.SpanKindProducer && s.Name == "TICKETS publish"
		})
		return ok1 && ok2
	}, func() string { return "spans recorded:\n" + spanTree(spans.GetSpans(), trace.TraceID{}) })

	all := spans.GetSpans()
	tree := spanTree(all, traceID)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nspans of trace %s:\n%s", append(args, traceID, tree)...)
	}
	if server.Parent.IsValid() {
		fail("the HTTP server span has parent %s; the request carried no traceparent, so it must be the root", server.Parent.SpanID())
	}
	if !ancestor(all, server, publish) {
		fail("the HTTP server span is not an ancestor of the publish span")
	}
	if consumer.Parent.SpanID() != publish.SpanContext.SpanID() {
		fail("consumer span's parent is %s, want the publish span %s", consumer.Parent.SpanID(), publish.SpanContext.SpanID())
	}

	// The SQL of that Apply: otelpgx client spans below the consumer span,
	// and at least one of them writes the read model.
	var sql []tracetest.SpanStub
	for _, sp := range all {
		if sp.SpanKind == trace.SpanKindClient && sp.SpanContext.TraceID() == traceID && ancestor(all, consumer, sp) {
			sql = append(sql, sp)
		}
	}
	if len(sql) == 0 {
		fail("no SQL span below the consumer span")
	}
	if !slices.ContainsFunc(sql, func(sp tracetest.SpanStub) bool { return strings.Contains(statement(sp), "intake.tickets") }) {
		fail("no SQL span below the consumer span writes intake.tickets")
	}
	// Every span of the trace hangs off the root: no broken link in the chain.
	for _, sp := range all {
		if sp.SpanContext.TraceID() == traceID && sp.SpanContext.SpanID() != server.SpanContext.SpanID() && !ancestor(all, server, sp) {
			fail("span %q is in the trace but not below the HTTP server span", sp.Name)
		}
	}
	t.Logf("one trace %s:\n%s", traceID, tree)
}

func find(spans tracetest.SpanStubs, match func(tracetest.SpanStub) bool) (tracetest.SpanStub, bool) {
	for _, s := range spans {
		if match(s) {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}

// hasAttr reports whether any attribute of s has the string value v (the
// consumer span names the event's subject; the key is the semconv's).
func hasAttr(s tracetest.SpanStub, v string) bool {
	return slices.ContainsFunc(s.Attributes, func(kv attribute.KeyValue) bool { return kv.Value.String() == v })
}

// statement is the SQL text of an otelpgx span.
func statement(s tracetest.SpanStub) string {
	for _, kv := range s.Attributes {
		if kv.Key == "db.query.text" || kv.Key == "db.statement" {
			return kv.Value.AsString()
		}
	}
	return s.Name
}

// ancestor reports whether a is a strict ancestor of d, following parent
// span ids through the recorded spans.
func ancestor(spans tracetest.SpanStubs, a, d tracetest.SpanStub) bool {
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	cur := d
	for range len(spans) + 1 {
		if !cur.Parent.IsValid() || cur.Parent.TraceID() != a.SpanContext.TraceID() {
			return false
		}
		if cur.Parent.SpanID() == a.SpanContext.SpanID() {
			return true
		}
		next, ok := byID[cur.Parent.SpanID()]
		if !ok {
			return false
		}
		cur = next
	}
	return false
}

// spanTree renders the spans of one trace (every span for the zero trace
// id) as an indented tree, for failure messages; spans whose parent was
// not recorded are listed as roots.
func spanTree(spans tracetest.SpanStubs, traceID trace.TraceID) string {
	var in tracetest.SpanStubs
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		if !traceID.IsValid() || s.SpanContext.TraceID() == traceID {
			in = append(in, s)
			ids[s.SpanContext.SpanID()] = true
		}
	}
	children := map[trace.SpanID][]tracetest.SpanStub{}
	var roots []tracetest.SpanStub
	for _, s := range in {
		if s.Parent.IsValid() && ids[s.Parent.SpanID()] {
			children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s tracetest.SpanStub, depth int)
	walk = func(s tracetest.SpanStub, depth int) {
		name := s.Name
		if st := statement(s); st != s.Name {
			name += ": " + strings.Join(strings.Fields(st), " ")
			if len(name) > 110 {
				name = name[:110] + "..."
			}
		}
		fmt.Fprintf(&b, "%s%s [%s] span=%s parent=%s\n", strings.Repeat("  ", depth), name, s.SpanKind, s.SpanContext.SpanID(), s.Parent.SpanID())
		kids := children[s.SpanContext.SpanID()]
		slices.SortFunc(kids, func(x, y tracetest.SpanStub) int { return x.StartTime.Compare(y.StartTime) })
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	if b.Len() == 0 {
		return "(no spans)"
	}
	return b.String()
}
