package natsx_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInjectExtractRoundTrip(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "publish")
	defer span.End()

	h := nats.Header{}
	natsx.Inject(ctx, h) // nats.Header converts to the plain map type
	if h.Get("traceparent") == "" {
		t.Fatalf("no traceparent injected: %v", h)
	}
	got := trace.SpanContextFromContext(natsx.Extract(context.Background(), h))
	if !got.IsRemote() || got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("extracted %v, want the publish span %v", got, span.SpanContext())
	}

	// Headers that went through HTTP come back canonicalised.
	canon := map[string][]string{"Traceparent": h["traceparent"]}
	if got := trace.SpanContextFromContext(natsx.Extract(context.Background(), canon)); got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("canonicalised header not extracted: %v", got)
	}

	// No span: nothing injected, an existing traceparent is left alone.
	keep := map[string][]string{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	natsx.Inject(context.Background(), keep)
	if keep["traceparent"][0] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Fatalf("inject without a span changed the header: %v", keep)
	}
	if got := trace.SpanContextFromContext(natsx.Extract(context.Background(), nats.Header{})); got.IsValid() {
		t.Fatalf("extract from empty headers gave %v", got)
	}
}

func TestEnsureStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Conn(t)
	ctx := ctxFor(t)
	cfg := natsx.StreamConfig{Name: "TICKETS", Subjects: []string{"ticket.>"}}
	for i := range 2 { // every replica calls it at every start
		s, err := natsx.EnsureStream(ctx, js, cfg)
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		c := s.CachedInfo().Config
		if c.Storage != jetstream.FileStorage || c.Retention != jetstream.LimitsPolicy || c.MaxAge != 0 ||
			c.Replicas != 1 || c.Duplicates != natsx.MinDuplicateWindow || !c.DenyDelete || !c.DenyPurge ||
			!c.AllowDirect || !c.AllowAtomicPublish {
			t.Fatalf("call %d: config %+v", i+1, c)
		}
	}

	// A changed duplicate window is applied to the existing stream.
	cfg.DuplicateWindow = 5 * time.Minute
	s, err := natsx.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Duplicates; got != 5*time.Minute {
		t.Fatalf("duplicates %s after update, want 5m", got)
	}

	// Concurrent first calls (replicas starting together) all succeed.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{Name: "ASSETS", Subjects: []string{"asset.>"}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent ensure: %v", err)
		}
	}
}

// A stream created by hand with settings EnsureStream cannot change is
// left running (with a log line), and the changeable ones are fixed.
func TestEnsureStreamKeepsUnchangeableSettings(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Conn(t)
	ctx := ctxFor(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TICKETS", Subjects: []string{"ticket.>"}, Storage: jetstream.MemoryStorage, MaxAge: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	s, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{Name: "TICKETS", Subjects: []string{"ticket.>"}})
	if err != nil {
		t.Fatalf("ensure over a memory stream: %v", err)
	}
	c := s.CachedInfo().Config
	if c.Storage != jetstream.MemoryStorage || c.MaxAge != 0 || !c.DenyDelete || !c.AllowAtomicPublish {
		t.Fatalf("config after ensure: %+v", c)
	}
}

func TestCounter(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Conn(t)
	ctx := ctxFor(t)
	for range 2 {
		if err := natsx.EnsureCounterStream(ctx, js, "TICKET_NUMBERS", []string{"ticketno.>"}, 1); err != nil {
			t.Fatal(err)
		}
	}

	const workers, each = 8, 25
	var (
		mu  sync.Mutex
		got []int64
		wg  sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range each {
				n, err := natsx.CounterAdd(ctx, js, "ticketno.t_acme", 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	if len(got) != workers*each {
		t.Fatalf("%d results, want %d", len(got), workers*each)
	}
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("totals are not 1..%d without repeats: position %d holds %d", workers*each, i, n)
		}
	}

	// Blocks of numbers, and counters are per subject (per tenant).
	if n, err := natsx.CounterAdd(ctx, js, "ticketno.t_acme", 32); err != nil || n != workers*each+32 {
		t.Fatalf("add 32 = %d, %v; want %d", n, err, workers*each+32)
	}
	if n, err := natsx.CounterAdd(ctx, js, "ticketno.t_other", 32); err != nil || n != 32 {
		t.Fatalf("other tenant's first block = %d, %v; want 32", n, err)
	}

	// The total survives a server restart.
	srv.Restart(t)
	_, js2 := srv.Conn(t)
	if n, err := natsx.CounterAdd(ctx, js2, "ticketno.t_other", 1); err != nil || n != 33 {
		t.Fatalf("after restart = %d, %v; want 33", n, err)
	}

	// A plain stream of the same name is not silently used as a counter.
	if _, err := natsx.EnsureStream(ctx, js2, natsx.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsureCounterStream(ctx, js2, "PLAIN", []string{"plain.>"}, 1); err == nil {
		t.Fatal("EnsureCounterStream accepted a stream without AllowMsgCounter")
	}
}

// A connection from Connect survives a server restart: it reconnects on
// its own and JetStream works again.
func TestConnectReconnects(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, err := natsx.Connect(srv.URL(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if _, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{Name: "TICKETS", Subjects: []string{"ticket.>"}}); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.Restart(t)

	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		_, err := js.Publish(ctx, "ticket.t.x", []byte("{}"))
		if err == nil {
			break
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("no publish within 10s of the restart: %v", err)
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatalf("no publish within 10s of the restart: %v", err)
		}
	}
	if !nc.IsConnected() {
		t.Fatal("published but not connected")
	}
}

func TestConnectFailsFast(t *testing.T) {
	t.Parallel()
	start := time.Now()
	if _, err := natsx.Connect("nats://127.0.0.1:1", "test"); err == nil {
		t.Fatal("connected to a closed port")
	}
	if time.Since(start) > 6*time.Second {
		t.Fatalf("took %s to fail", time.Since(start))
	}
}
