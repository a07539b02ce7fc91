package jsstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/api/events"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/es/estest"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
)

const (
	testContext = "ticket"
	testStream  = "TICKETS"
)

// setup starts a JetStream server with the event stream and returns a
// client connection to it.
func setup(t testing.TB) (*natstest.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{Name: testStream, Subjects: []string{testContext + ".>"}}); err != nil {
		t.Fatal(err)
	}
	return srv, nc, js
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  jsstore.Config
	}{
		{"Direct", jsstore.Config{LoadMethod: jsstore.LoadDirect}},
		// Small pages: every aggregate beyond a few events takes several requests.
		{"DirectSmallPages", jsstore.Config{LoadMethod: jsstore.LoadDirect, LoadPageSize: 3}},
		{"Ordered", jsstore.Config{LoadMethod: jsstore.LoadOrdered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, nc, js := setup(t)
			cfg := tc.cfg
			cfg.Context, cfg.Stream = testContext, testStream
			estest.Run(t, func(t *testing.T) es.Store { return jsstore.New(nc, js, cfg) })
		})
	}
}

func TestMultiAppendConformance(t *testing.T) {
	_, nc, js := setup(t)
	estest.RunMulti(t, func(t *testing.T) es.MultiAppender {
		return jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream})
	})
}

func newEvent(key es.Key) es.Event {
	return es.Event{
		ID: ulid.Make().String(), Type: "opsdesk.ticket.created.v1", Source: "/services/test",
		Tenant: key.Tenant, AggregateID: key.ID, Time: time.Now().UTC(), Data: []byte(`{}`),
	}
}

func newKey() es.Key {
	return es.Key{Tenant: "t_" + ulid.Make().String(), ID: "tk_" + ulid.Make().String()}
}

// The store writes CloudEvents binary mode: any tool reading the stream
// finds the ce-* headers, and Nats-Msg-Id is the event id.
func TestStoredMessagesAreCloudEvents(t *testing.T) {
	_, nc, js := setup(t)
	s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream})
	key := newKey()
	e := newEvent(key)
	seq, err := s.Append(context.Background(), key, 0, []es.Event{e, newEvent(key)})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(context.Background(), testStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetMsg(context.Background(), seq-1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != key.Subject(testContext) {
		t.Fatalf("subject %q, want %q", raw.Subject, key.Subject(testContext))
	}
	for k, want := range map[string]string{
		events.HeaderSpecVersion: "1.0",
		events.HeaderID:          e.ID,
		events.HeaderMsgID:       e.ID,
		events.HeaderType:        e.Type,
		events.HeaderTenant:      key.Tenant,
		events.HeaderSubject:     key.ID,
		events.HeaderContentType: "application/json",
	} {
		if got := raw.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

// While NATS is down an append fails with ErrUnavailable within the publish
// timeout instead of hanging, and works again once NATS is back.
func TestAppendWhileServerDown(t *testing.T) {
	srv, nc, js := setup(t)
	const timeout = 300 * time.Millisecond
	s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream, PublishTimeout: timeout})
	key := newKey()
	seq, err := s.Append(context.Background(), key, 0, []es.Event{newEvent(key)})
	if err != nil {
		t.Fatal(err)
	}

	srv.Shutdown()
	for _, n := range []int{1, 3} {
		start := time.Now()
		_, err := s.Append(context.Background(), key, seq, []es.Event{newEvent(key), newEvent(key), newEvent(key)}[:n])
		if !errors.Is(err, es.ErrUnavailable) {
			t.Fatalf("append of %d while NATS is down: err %v, want ErrUnavailable", n, err)
		}
		if took := time.Since(start); took > timeout+time.Second {
			t.Fatalf("append of %d while NATS is down took %s, publish timeout is %s", n, took, timeout)
		}
	}
	start := time.Now()
	if _, _, err := s.Load(context.Background(), key); !errors.Is(err, es.ErrUnavailable) {
		t.Fatalf("load while NATS is down: err %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > timeout+time.Second {
		t.Fatalf("load while NATS is down took %s", took)
	}

	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	e := newEvent(key)
	for {
		// Whatever the outage left buffered, retrying with the same event
		// is safe: a retry of a stored append succeeds.
		_, last, err := s.Load(context.Background(), key)
		if err == nil {
			_, err = s.Append(context.Background(), key, last, []es.Event{e})
			if err == nil {
				evts, _, err := s.Load(context.Background(), key)
				if err != nil {
					t.Fatal(err)
				}
				if evts[len(evts)-1].ID != e.ID {
					t.Fatalf("last event %s, want %s", evts[len(evts)-1].ID, e.ID)
				}
				return
			}
		}
		if !errors.Is(err, es.ErrUnavailable) && !errors.Is(err, es.ErrConcurrency) {
			t.Fatalf("after restart: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("append still failing 10s after NATS restarted: %v", err)
		}
		<-poll.C
	}
}

// One producer span per append, and every event carries its context, so a
// consumer's span is a child of the publish span.
func TestAppendTraced(t *testing.T) {
	_, nc, js := setup(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream, TracerProvider: tp})

	ctx, parent := tp.Tracer("test").Start(context.Background(), "POST /v1/tickets")
	key := newKey()
	if _, err := s.Append(ctx, key, 0, []es.Event{newEvent(key), newEvent(key)}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var publish sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == testStream+" publish" {
			if publish != nil {
				t.Fatal("two publish spans for one append")
			}
			publish = sp
		}
	}
	if publish == nil {
		t.Fatalf("no %q span among %d", testStream+" publish", len(rec.Ended()))
	}
	if publish.SpanKind() != trace.SpanKindProducer {
		t.Errorf("span kind %s, want producer", publish.SpanKind())
	}
	if publish.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("publish span is not a child of the caller's span")
	}
	attrs := map[string]string{}
	for _, kv := range publish.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	for k, want := range map[string]string{
		"messaging.system":              "nats",
		"messaging.destination.name":    key.Subject(testContext),
		"messaging.operation.type":      "send",
		"messaging.batch.message_count": "2",
	} {
		if attrs[k] != want {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], want)
		}
	}

	evts, _, err := s.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evts {
		if es.TraceID(e.TraceParent) != publish.SpanContext().TraceID().String() {
			t.Fatalf("event traceparent %q not in trace %s", e.TraceParent, publish.SpanContext().TraceID())
		}
		// What a consumer does: extract, then start its span.
		cctx := natsx.Extract(context.Background(), map[string][]string{events.HeaderTraceParent: {e.TraceParent}})
		_, consume := tp.Tracer("test").Start(cctx, "consume")
		consume.End()
		last := rec.Ended()[len(rec.Ended())-1]
		if last.Parent().SpanID() != publish.SpanContext().SpanID() {
			t.Fatalf("consumer span's parent %s, want the publish span %s", last.Parent().SpanID(), publish.SpanContext().SpanID())
		}
	}
}

// Appends the store refuses up front, without touching NATS.
func TestAppendRejectsBadEvents(t *testing.T) {
	_, nc, js := setup(t)
	s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream})
	key := newKey()
	e := newEvent(key)
	noID := newEvent(key)
	noID.ID = ""
	otherAggregate := newEvent(key)
	otherAggregate.AggregateID = "tk_other"
	for name, evts := range map[string][]es.Event{
		"no id":           {noID},
		"repeated id":     {e, e},
		"other aggregate": {otherAggregate},
		"too many":        make([]es.Event, jsstore.MaxBatch+1),
	} {
		if _, err := s.Append(context.Background(), key, 0, evts); err == nil {
			t.Errorf("%s: append succeeded", name)
		}
	}
	if evts, _, _ := s.Load(context.Background(), key); len(evts) != 0 {
		t.Fatalf("%d events stored by refused appends", len(evts))
	}
	// Missing tenant, aggregate and time are filled from the key and clock.
	bare := es.Event{ID: ulid.Make().String(), Type: "opsdesk.ticket.created.v1"}
	if _, err := s.Append(context.Background(), key, 0, []es.Event{bare}); err != nil {
		t.Fatal(err)
	}
	evts, _, err := s.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got := evts[0]; got.Tenant != key.Tenant || got.AggregateID != key.ID || time.Since(got.Time) > time.Minute {
		t.Fatalf("filled envelope %+v", got)
	}
}

// BenchmarkLoad compares the two load methods on aggregates of 5 and 50
// events, one load at a time and 8 concurrent loaders. Server and client
// share the machine, so server CPU counts.
// Run: go test -run '^$' -bench BenchmarkLoad -benchmem ./es/jsstore/
func BenchmarkLoad(b *testing.B) {
	_, nc, js := setup(b)
	for _, size := range []int{5, 50} {
		key := newKey()
		writer := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream})
		evts := make([]es.Event, size)
		for i := range evts {
			evts[i] = newEvent(key)
			evts[i].Data = []byte(fmt.Sprintf(`{"title":"printer on floor %d is down","n":%d,"pad":%q}`, i, i, strings.Repeat("x", 200)))
		}
		if _, err := writer.Append(context.Background(), key, 0, evts); err != nil {
			b.Fatal(err)
		}
		for _, method := range []jsstore.LoadMethod{jsstore.LoadDirect, jsstore.LoadOrdered} {
			s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream, LoadMethod: method})
			load := func(b *testing.B) {
				got, _, err := s.Load(context.Background(), key)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != size {
					b.Fatalf("loaded %d events, want %d", len(got), size)
				}
			}
			b.Run(fmt.Sprintf("%s/events=%d", method, size), func(b *testing.B) {
				for b.Loop() {
					load(b)
				}
			})
			// Loads from concurrent requests, as a busy service does.
			b.Run(fmt.Sprintf("%s/events=%d/parallel=8", method, size), func(b *testing.B) {
				b.SetParallelism(4) // 4 x GOMAXPROCS(2) goroutines
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						load(b)
					}
				})
			})
		}
	}
}

// Dedup is stream-wide: an event id already stored on one aggregate and
// appended to another is an error, never a silent "already stored".
func TestReusedIDOnOtherAggregate(t *testing.T) {
	_, nc, js := setup(t)
	s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream})
	ctx := context.Background()
	a, b := newKey(), newKey()
	e1, e2 := newEvent(a), newEvent(a)
	if _, err := s.Append(ctx, a, 0, []es.Event{e1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, a, 0, []es.Event{e2}); !errors.Is(err, es.ErrConcurrency) {
		t.Fatalf("second event at 0: %v, want ErrConcurrency", err)
	}
	for name, evts := range map[string][]es.Event{"single": {e1}, "batch": {e1, newEvent(b)}} {
		reused := make([]es.Event, len(evts))
		for i, e := range evts {
			e.Tenant, e.AggregateID = b.Tenant, b.ID
			reused[i] = e
		}
		_, err := s.Append(ctx, b, 0, reused)
		if !errors.Is(err, jsstore.ErrDuplicateID) {
			t.Fatalf("%s: reused id on another aggregate: err %v, want ErrDuplicateID", name, err)
		}
	}
	if evts, _, err := s.Load(ctx, b); err != nil || len(evts) != 0 {
		t.Fatalf("aggregate b holds %d events (err %v), want none", len(evts), err)
	}
}

// Concurrent loads through one store share its reply subscription; each
// must get exactly its own aggregate's events.
func TestConcurrentLoadsDoNotMix(t *testing.T) {
	_, nc, js := setup(t)
	s := jsstore.New(nc, js, jsstore.Config{Context: testContext, Stream: testStream, LoadPageSize: 4})
	ctx := context.Background()
	const aggregates = 8
	keys := make([]es.Key, aggregates)
	ids := make([][]string, aggregates)
	for i := range keys {
		keys[i] = newKey()
		evts := make([]es.Event, i+1)
		for j := range evts {
			evts[j] = newEvent(keys[i])
			ids[i] = append(ids[i], evts[j].ID)
		}
		if _, err := s.Append(ctx, keys[i], 0, evts); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, aggregates)
	for i := range keys {
		go func() {
			for range 20 {
				evts, _, err := s.Load(ctx, keys[i])
				if err != nil {
					errs <- err
					return
				}
				if len(evts) != len(ids[i]) {
					errs <- fmt.Errorf("aggregate %d: %d events, want %d", i, len(evts), len(ids[i]))
					return
				}
				for j, e := range evts {
					if e.ID != ids[i][j] {
						errs <- fmt.Errorf("aggregate %d event %d: id %s, want %s", i, j, e.ID, ids[i][j])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range keys {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
