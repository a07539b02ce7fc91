package reaction_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/api/events"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/reaction"
	"github.com/opsdesk/opsdesk/libs/testwait"
)

const (
	service = "test"
	stream  = "TICKETS"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	reg *deadletter.Registry
}

// newEnv starts an embedded JetStream with the TICKETS stream and, unless
// noDLQ, the DLQ stream.
func newEnv(t *testing.T, noDLQ bool) env {
	t.Helper()
	nc, js := natstest.Start(t).Conn(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"ticket.>"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	if !noDLQ {
		if err := deadletter.EnsureStream(ctx, js, 1); err != nil {
			t.Fatal(err)
		}
	}
	return env{nc: nc, js: js, reg: deadletter.NewRegistry()}
}

func (e env) router(t *testing.T, cfg reaction.Config) *reaction.Router {
	t.Helper()
	cfg.Service = service
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.InitialInterval == 0 {
		cfg.InitialInterval = time.Millisecond
	}
	r, err := reaction.New(e.nc, e.js, cfg, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run starts r and stops it when the test ends, checking Run's result.
func run(t *testing.T, r *reaction.Router) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before running: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("router not running after 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func newEvent(typ string) es.Event {
	return es.Event{
		ID:          ulid.Make().String(),
		Type:        typ,
		Source:      "/services/intake",
		Tenant:      "t1",
		AggregateID: "tk_" + ulid.Make().String(),
		Time:        time.Now().UTC(),
		Data:        []byte(`{"title":"printer on fire"}`),
	}
}

func publish(t *testing.T, js jetstream.JetStream, e es.Event) uint64 {
	t.Helper()
	msg := nats.NewMsg("ticket." + e.Tenant + "." + e.AggregateID)
	msg.Header = nats.Header(es.EncodeHeaders(e))
	msg.Data = e.Data
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, what, cond)
}

// settled reports whether the consumer has acked everything up to seq.
func settled(t *testing.T, js jetstream.JetStream, consumer string, seq uint64) bool {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, consumer)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream >= seq
}

func letters(t *testing.T, js jetstream.JetStream, consumer string) []deadletter.Letter {
	t.Helper()
	ls, err := deadletter.List(context.Background(), js, consumer, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// recorder counts handler runs and successes per event id.
type recorder struct {
	mu     sync.Mutex
	runs   map[string]int
	ok     map[string]int
	events map[string]es.Event
	ctxs   map[string]context.Context
}

func newRecorder() *recorder {
	return &recorder{runs: map[string]int{}, ok: map[string]int{}, events: map[string]es.Event{}, ctxs: map[string]context.Context{}}
}

// handler runs fail(e, run) and records the outcome.
func (rc *recorder) handler(fail func(e es.Event, run int) error) reaction.Handler {
	return func(ctx context.Context, e es.Event) error {
		rc.mu.Lock()
		rc.runs[e.ID]++
		run := rc.runs[e.ID]
		rc.events[e.ID] = e
		rc.ctxs[e.ID] = ctx
		rc.mu.Unlock()
		if err := fail(e, run); err != nil {
			return err
		}
		rc.mu.Lock()
		rc.ok[e.ID]++
		rc.mu.Unlock()
		return nil
	}
}

func (rc *recorder) get(id string) (runs, ok int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.runs[id], rc.ok[id]
}

func TestPoisonMessageIsDeadLetteredAndDoesNotBlock(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	bad := newEvent("opsdesk.ticket.created.v1")
	rc := newRecorder()
	r := env.router(t, reaction.Config{MaxRetries: 2})
	r.Handle("poison", stream, []string{"ticket.>"}, rc.handler(func(e es.Event, _ int) error {
		if e.ID == bad.ID {
			return errors.New("printer service said no")
		}
		return nil
	}))
	run(t, r)

	before := newEvent("opsdesk.ticket.created.v1")
	publish(t, env.js, before)
	badSeq := publish(t, env.js, bad)
	var after []es.Event
	var last uint64
	for range 5 {
		e := newEvent("opsdesk.ticket.created.v1")
		after = append(after, e)
		last = publish(t, env.js, e)
	}

	eventually(t, "messages after the poison one handled", func() bool {
		for _, e := range after {
			if _, ok := rc.get(e.ID); ok != 1 {
				return false
			}
		}
		return true
	})
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__poison", last) })

	if runs, ok := rc.get(bad.ID); runs != 3 || ok != 0 {
		t.Fatalf("poison message: %d runs, %d successes; want 3 runs (1 + 2 retries), 0 successes", runs, ok)
	}
	if _, ok := rc.get(before.ID); ok != 1 {
		t.Fatalf("message before the poison one handled %d times, want 1", ok)
	}
	ls := letters(t, env.js, "test__poison")
	if len(ls) != 1 {
		t.Fatalf("got %d dead letters, want 1: %+v", len(ls), ls)
	}
	l := ls[0]
	if l.Consumer != "test__poison" || l.Stream != stream || l.OriginalSeq != badSeq ||
		l.Subject != "ticket.t1."+bad.AggregateID || l.Attempts != 3 || l.Deliveries != 1 {
		t.Fatalf("dead letter = %+v", l)
	}
	if !strings.Contains(l.Error, "printer service said no") {
		t.Fatalf("dead letter error = %q", l.Error)
	}
	if l.Event.ID != bad.ID || l.Event.Type != bad.Type || string(l.Event.Data) != string(bad.Data) || l.Malformed != "" {
		t.Fatalf("dead letter event = %+v", l.Event)
	}
	// The correlation middleware gave the event a correlation id (its own id).
	if l.Event.CorrelationID != bad.ID {
		t.Fatalf("dead letter correlation id = %q, want %q", l.Event.CorrelationID, bad.ID)
	}
}

func TestTransientFailureIsRetriedAndHandledOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	rc := newRecorder()
	r := env.router(t, reaction.Config{MaxRetries: 3})
	r.Handle("flaky", stream, []string{"ticket.>"}, rc.handler(func(_ es.Event, run int) error {
		if run <= 2 {
			return fmt.Errorf("transient failure %d", run)
		}
		return nil
	}))
	run(t, r)

	e := newEvent("opsdesk.ticket.created.v1")
	e.CorrelationID = "corr-123"
	seq := publish(t, env.js, e)
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__flaky", seq) })

	if runs, ok := rc.get(e.ID); runs != 3 || ok != 1 {
		t.Fatalf("%d runs, %d successes; want 3 runs, 1 success", runs, ok)
	}
	if ls := letters(t, env.js, ""); len(ls) != 0 {
		t.Fatalf("dead letters: %+v", ls)
	}
	rc.mu.Lock()
	got := rc.events[e.ID]
	rc.mu.Unlock()
	if got.Sequence != seq || got.Subject != "ticket.t1."+e.AggregateID || got.CorrelationID != "corr-123" ||
		!got.Time.Equal(e.Time) || got.Tenant != "t1" {
		t.Fatalf("handler got %+v", got)
	}
}

func TestPanicIsRetriedThenDeadLettered(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	rc := newRecorder()
	r := env.router(t, reaction.Config{MaxRetries: 1})
	r.Handle("panicky", stream, []string{"ticket.>"}, rc.handler(func(es.Event, int) error { panic("boom") }))
	run(t, r)

	e := newEvent("opsdesk.ticket.created.v1")
	seq := publish(t, env.js, e)
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__panicky", seq) })
	ls := letters(t, env.js, "test__panicky")
	if len(ls) != 1 || ls[0].Attempts != 2 || !strings.Contains(ls[0].Error, "boom") {
		t.Fatalf("dead letters = %+v", ls)
	}
}

func TestMalformedMessageIsDeadLettered(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	rc := newRecorder()
	r := env.router(t, reaction.Config{MaxRetries: 3})
	r.Handle("strict", stream, []string{"ticket.>"}, rc.handler(func(es.Event, int) error { return nil }))
	run(t, r)

	// No ce-type, and a body that is not even JSON.
	msg := nats.NewMsg("ticket.t1.tk_broken")
	msg.Header.Set(events.HeaderID, "01BROKEN")
	msg.Header.Set(events.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	msg.Data = []byte("not json")
	ack, err := env.js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	good := newEvent("opsdesk.ticket.created.v1")
	seq := publish(t, env.js, good)

	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__strict", seq) })
	if runs, _ := rc.get("01BROKEN"); runs != 0 {
		t.Fatalf("handler ran %d times for the malformed message", runs)
	}
	if _, ok := rc.get(good.ID); ok != 1 {
		t.Fatalf("good message after the malformed one handled %d times", ok)
	}
	ls := letters(t, env.js, "test__strict")
	if len(ls) != 1 {
		t.Fatalf("dead letters = %+v", ls)
	}
	l := ls[0]
	if l.OriginalSeq != ack.Sequence || l.Malformed == "" || !strings.Contains(l.Error, "malformed") {
		t.Fatalf("dead letter = %+v", l)
	}
	// Retrying cannot fix a malformed message: it is dead-lettered at once.
	if l.Attempts != 1 {
		t.Fatalf("attempts = %d, want 1", l.Attempts)
	}
	// Such a letter cannot be replayed, only discarded.
	if err := env.reg.Replay(context.Background(), env.js, l.Seq); !errors.Is(err, deadletter.ErrNotReplayable) {
		t.Fatalf("Replay = %v, want ErrNotReplayable", err)
	}
}

// A reaction that appends an event before failing runs again on retry and
// on replay; the derived id makes JetStream store the event once.
func TestRedeliveredReactionAppendsOnce(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	ctx := context.Background()
	if _, err := env.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TRIAGE", Subjects: []string{"triage.>"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	broken := true
	appends := 0
	r := env.router(t, reaction.Config{MaxRetries: 1})
	r.Handle("assign", stream, []string{"ticket.>"}, func(ctx context.Context, cause es.Event) error {
		out := reaction.FollowUp(cause, "assign", es.Event{
			Type: "opsdesk.triage.assigned.v1", Source: "/services/triage", AggregateID: cause.AggregateID,
			Time: time.Now().UTC(), Data: []byte(`{"group":"desk"}`),
		})
		msg := nats.NewMsg("triage." + out.Tenant + "." + out.AggregateID)
		msg.Header = nats.Header(es.EncodeHeaders(out)) // Nats-Msg-Id = out.ID
		msg.Data = out.Data
		if _, err := env.js.PublishMsg(ctx, msg); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		appends++
		if broken {
			return errors.New("crashed after appending")
		}
		return nil
	})
	run(t, r)

	cause := newEvent("opsdesk.ticket.created.v1")
	cause.CorrelationID = "corr-1"
	seq := publish(t, env.js, cause)
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__assign", seq) })
	ls := letters(t, env.js, "test__assign")
	if len(ls) != 1 {
		t.Fatalf("dead letters = %+v", ls)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if err := env.reg.Replay(ctx, env.js, ls[0].Seq); err != nil {
		t.Fatalf("Replay: %v", err)
	}

	mu.Lock()
	if appends != 3 {
		t.Fatalf("handler appended %d times, want 3 (run, retry, replay)", appends)
	}
	mu.Unlock()
	st, err := env.js.Stream(ctx, "TRIAGE")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("TRIAGE holds %d events, want 1", info.State.Msgs)
	}
	raw, err := st.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	got, err := es.DecodeHeaders(raw.Subject, es.Header(raw.Header), raw.Data, raw.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != reaction.DeriveID(cause.ID, "assign") || got.CausationID != cause.ID || got.CorrelationID != "corr-1" || got.Tenant != "t1" {
		t.Fatalf("appended event = %+v", got)
	}
}

func TestReplayRerunsHandlerAndRemovesLetter(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	ctx := context.Background()
	var mu sync.Mutex
	fixed := false
	rc := newRecorder()
	r := env.router(t, reaction.Config{MaxRetries: -1})
	r.Handle("notify", stream, []string{"ticket.>"}, rc.handler(func(es.Event, int) error {
		mu.Lock()
		defer mu.Unlock()
		if !fixed {
			return errors.New("smtp down")
		}
		return nil
	}))
	// Another consumer's letter must be untouched by the replay and the filter.
	other := newEvent("opsdesk.ticket.created.v1")
	if err := deadletter.PublishOriginal(ctx, env.js, "other__thing", deadletter.Original{
		Stream: "ELSEWHERE", Subject: "ticket.t1." + other.AggregateID, Sequence: 7,
		Header: es.EncodeHeaders(other), Data: other.Data,
	}, errors.New("other failure"), 1); err != nil {
		t.Fatal(err)
	}
	run(t, r)

	e := newEvent("opsdesk.ticket.created.v1")
	seq := publish(t, env.js, e)
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__notify", seq) })
	ls := letters(t, env.js, "test__notify")
	if len(ls) != 1 || ls[0].Event.ID != e.ID || ls[0].Attempts != 1 {
		t.Fatalf("dead letters of test__notify = %+v", ls)
	}
	if all := letters(t, env.js, ""); len(all) != 2 {
		t.Fatalf("all dead letters = %+v", all)
	}

	// Still broken: the replay fails and the letter stays.
	if err := env.reg.Replay(ctx, env.js, ls[0].Seq); !errors.Is(err, deadletter.ErrReplayFailed) {
		t.Fatalf("Replay while broken = %v, want ErrReplayFailed", err)
	}
	if got := letters(t, env.js, "test__notify"); len(got) != 1 {
		t.Fatalf("letter gone after a failed replay: %+v", got)
	}

	mu.Lock()
	fixed = true
	mu.Unlock()
	if err := env.reg.Replay(ctx, env.js, ls[0].Seq); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if runs, ok := rc.get(e.ID); runs != 3 || ok != 1 {
		t.Fatalf("%d runs, %d successes; want 3 runs (delivery, failed replay, replay), 1 success", runs, ok)
	}
	rc.mu.Lock()
	got := rc.events[e.ID]
	rc.mu.Unlock()
	if got.Sequence != seq || got.Subject != "ticket.t1."+e.AggregateID || got.Type != e.Type {
		t.Fatalf("replayed event = %+v", got)
	}
	if left := letters(t, env.js, "test__notify"); len(left) != 0 {
		t.Fatalf("letter still there after replay: %+v", left)
	}
	if left := letters(t, env.js, ""); len(left) != 1 || left[0].Consumer != "other__thing" {
		t.Fatalf("other letters = %+v", left)
	}
	if err := env.reg.Replay(ctx, env.js, ls[0].Seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("second Replay = %v, want ErrNotFound", err)
	}
}

// When the DLQ cannot take the message, it is not acked: it comes back
// until it can be dead-lettered.
func TestDeadLetterFailureRedelivers(t *testing.T) {
	t.Parallel()
	env := newEnv(t, true) // no DLQ stream yet
	rc := newRecorder()
	r := env.router(t, reaction.Config{MaxRetries: -1, RedeliveryDelay: 20 * time.Millisecond})
	r.Handle("stuck", stream, []string{"ticket.>"}, rc.handler(func(es.Event, int) error { return errors.New("always fails") }))
	run(t, r)

	e := newEvent("opsdesk.ticket.created.v1")
	seq := publish(t, env.js, e)
	eventually(t, "a redelivery", func() bool { runs, _ := rc.get(e.ID); return runs >= 2 })
	if settled(t, env.js, "test__stuck", seq) {
		t.Fatal("message acked although it could not be dead-lettered")
	}
	if err := deadletter.EnsureStream(context.Background(), env.js, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__stuck", seq) })
	ls := letters(t, env.js, "test__stuck")
	if len(ls) != 1 || ls[0].Event.ID != e.ID || ls[0].Deliveries < 2 {
		t.Fatalf("dead letters = %+v", ls)
	}
}

// The handler's span is a consumer span, child of the span that published
// the event. Not parallel: it installs a global tracer provider.
func TestHandlerSpanIsChildOfPublisher(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.Background())
	})

	env := newEnv(t, false)
	rc := newRecorder()
	r := env.router(t, reaction.Config{})
	r.Handle("traced", stream, []string{"ticket.>"}, rc.handler(func(es.Event, int) error { return nil }))
	run(t, r)

	pctx, pub := tp.Tracer("test").Start(context.Background(), "TICKETS publish", trace.WithSpanKind(trace.SpanKindProducer))
	e := newEvent("opsdesk.ticket.created.v1")
	h := es.Header{}
	natsx.Inject(pctx, h)
	e.TraceParent = h[events.HeaderTraceParent][0]
	seq := publish(t, env.js, e)
	pub.End()
	eventually(t, "consumer settled", func() bool { return settled(t, env.js, "test__traced", seq) })

	var handle sdktrace.ReadOnlySpan
	for _, s := range exporter.GetSpans().Snapshots() {
		if s.Name() == "test__traced handle" {
			handle = s
		}
	}
	if handle == nil {
		t.Fatalf("no handle span among %d spans", len(exporter.GetSpans()))
	}
	want := pub.SpanContext()
	if handle.SpanContext().TraceID() != want.TraceID() || handle.Parent().SpanID() != want.SpanID() {
		t.Fatalf("handle span trace %s parent %s; want trace %s parent %s",
			handle.SpanContext().TraceID(), handle.Parent().SpanID(), want.TraceID(), want.SpanID())
	}
	if handle.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("span kind = %v", handle.SpanKind())
	}
	rc.mu.Lock()
	hctx := rc.ctxs[e.ID]
	rc.mu.Unlock()
	if got := trace.SpanContextFromContext(hctx); got.SpanID() != handle.SpanContext().SpanID() {
		t.Fatalf("handler context carries span %s, want the handle span %s", got.SpanID(), handle.SpanContext().SpanID())
	}
}

// Closing the router lets the message in flight finish and be acked, and
// leaves the shared NATS connection open.
func TestCloseFinishesInFlightAndKeepsConnection(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rc := newRecorder()
	r := env.router(t, reaction.Config{})
	r.Handle("slow", stream, []string{"ticket.>"}, rc.handler(func(es.Event, int) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()

	e := newEvent("opsdesk.ticket.created.v1")
	seq := publish(t, env.js, e)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler not started")
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if !env.nc.IsConnected() {
		t.Fatal("Close closed the shared NATS connection")
	}
	eventually(t, "in-flight message acked", func() bool { return settled(t, env.js, "test__slow", seq) })
	if _, ok := rc.get(e.ID); ok != 1 {
		t.Fatalf("in-flight message handled %d times", ok)
	}
}

func TestWiringErrorsFailRun(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	nop := func(context.Context, es.Event) error { return nil }
	for name, wire := range map[string]func(r *reaction.Router){
		"bad name":    func(r *reaction.Router) { r.Handle("a.b", stream, []string{"ticket.>"}, nop) },
		"no subjects": func(r *reaction.Router) { r.Handle("a", stream, nil, nop) },
		"duplicate": func(r *reaction.Router) {
			r.Handle("a", stream, []string{"ticket.>"}, nop)
			r.Handle("a", stream, []string{"ticket.>"}, nop)
		},
		"missing stream": func(r *reaction.Router) { r.Handle("a", "NOPE", []string{"nope.>"}, nop) },
	} {
		r := env.router(t, reaction.Config{})
		wire(r)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.Run(ctx)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Run = %v, want a wiring error", name, err)
		}
		_ = r.Close()
	}
	if _, err := reaction.New(env.nc, env.js, reaction.Config{Service: "bad.service"}, nil); err == nil {
		t.Error("New accepted an invalid service name")
	}
}

// Stopping a router (context cancelled, as the runtime does) hands back the
// messages it had buffered; a new router on the same durable consumer picks
// them up at once, not after AckWait, and nothing is lost.
func TestRestartResumesWithoutLoss(t *testing.T) {
	t.Parallel()
	env := newEnv(t, false)
	rc := newRecorder()
	reached, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	handled := 0
	h := rc.handler(func(es.Event, int) error {
		mu.Lock()
		handled++
		n := handled
		mu.Unlock()
		if n == 5 {
			close(reached)
			<-release
		}
		return nil
	})
	var ids []string
	var last uint64
	for range 40 {
		e := newEvent("opsdesk.ticket.created.v1")
		ids = append(ids, e.ID)
		last = publish(t, env.js, e)
	}

	r1 := env.router(t, reaction.Config{})
	r1.Handle("resume", stream, []string{"ticket.>"}, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r1.Run(ctx) }()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("fifth message not reached")
	}
	cancel()
	close(release)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}

	r2 := env.router(t, reaction.Config{})
	r2.Handle("resume", stream, []string{"ticket.>"}, h)
	run(t, r2)
	eventually(t, "every message handled", func() bool {
		for _, id := range ids {
			if _, ok := rc.get(id); ok == 0 {
				return false
			}
		}
		return settled(t, env.js, "test__resume", last)
	})
	for i, id := range ids[:5] {
		if _, ok := rc.get(id); ok != 1 {
			t.Errorf("message %d, acked before the restart, handled %d times", i+1, ok)
		}
	}
}

// RunRetrying waits for a stream created after it started (another
// service's, in a split deployment), then handles its events; it returns
// nil when ctx ends.
func TestRunRetryingWaitsForTheStream(t *testing.T) {
	nc, js := natstest.Start(t).Conn(t)
	got := make(chan string, 1)
	build := func() (*reaction.Router, error) {
		r, err := reaction.New(nc, js, reaction.Config{Service: service, Logger: quiet, MaxRetries: -1}, nil)
		if err != nil {
			return nil, err
		}
		r.Handle("late", stream, []string{"ticket.>"}, func(_ context.Context, e es.Event) error {
			got <- e.ID
			return nil
		})
		return r, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reaction.RunRetrying(ctx, build, 20*time.Millisecond, quiet) }()
	// No stream yet: RunRetrying keeps waiting rather than failing.
	select {
	case err := <-done:
		t.Fatalf("RunRetrying returned without the stream: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: stream, Subjects: []string{"ticket.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := deadletter.EnsureStream(context.Background(), js, 1); err != nil {
		t.Fatal(err)
	}
	e := newEvent("opsdesk.ticket.created.v1")
	publish(t, js, e)
	select {
	case id := <-got:
		if id != e.ID {
			t.Fatalf("handled %s, want %s", id, e.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not handled after the stream appeared")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunRetrying after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("RunRetrying did not return after cancel")
	}
}
