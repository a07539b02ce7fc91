package projection_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/projection"
)

func TestNewRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := map[string]struct {
		p    projection.Projection
		opts projection.Options
	}{
		"no schema":         {&counter{name: "ok"}, projection.Options{}},
		"bad schema":        {&counter{name: "ok"}, projection.Options{Schema: "rm; drop"}},
		"name with a dot":   {&counter{name: "svc.proj"}, projection.Options{Schema: schema}},
		"name with a space": {&counter{name: "svc proj"}, projection.Options{Schema: schema}},
		"no projection":     {nil, projection.Options{Schema: schema}},
	}
	for name, c := range cases {
		if _, err := projection.New(e.nc, e.js, e.pool, c.p, c.opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := projection.New(nil, e.js, e.pool, &counter{name: "ok"}, projection.Options{Schema: schema}); err == nil {
		t.Error("nil NATS connection accepted")
	}
}

func TestAppliesEveryEventExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__applies_v1"
	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{BatchSize: 64})
	// Metrics are process-wide: compare increases (go test -count=N).
	appliedBefore, _ := metricValue(t, "opsdesk_projection_applied_total", name)

	// Events stored before the runner starts, then more while it runs.
	want, last := e.publishRound(t, 300, "a", "b", "c")
	start(t, r)
	waitFor(t, r, last)
	if err := r.Run(context.Background()); !errors.Is(err, projection.ErrRunning) {
		t.Fatalf("second Run: %v, want ErrRunning", err)
	}
	more, last := e.publishRound(t, 30, "a", "b", "c", "d", "e")
	waitFor(t, r, last)

	want = merge(want, more)
	e.assertExactlyOnce(t, want)
	if pos := e.position(t, r); pos != last {
		t.Fatalf("Position = %d, want %d", pos, last)
	}
	if calls := p.calls.Load(); calls != 330 {
		t.Fatalf("Apply ran %d times for 330 events", calls)
	}

	if v, _ := metricValue(t, "opsdesk_projection_applied_total", name); v-appliedBefore != 330 {
		t.Errorf("applied_total rose by %d, want 330", v-appliedBefore)
	}
	if v, _ := metricValue(t, "opsdesk_projection_last_seq", name); v != int64(last) {
		t.Errorf("last_seq = %d, want %d", v, last)
	}
	// Acks are asynchronous: the server sees the last ones a moment later.
	eventually(t, "lag 0", func() bool {
		v, ok := metricValue(t, "opsdesk_projection_lag_events", name)
		return ok && v == 0
	})
}

func TestLagCountsEventsNotYetApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__lag_v1"
	release := make(chan struct{})
	p := &counter{name: name, hook: func(ctx context.Context, _ pgx.Tx, _ es.Event, _ int64) error {
		select { // hold the first batch until the test has looked at the lag
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	r := e.runner(t, p, projection.Options{BatchSize: 10})
	_, last := e.publishRound(t, 25, "a")
	start(t, r)
	eventually(t, "lag 25", func() bool {
		v, ok := metricValue(t, "opsdesk_projection_lag_events", name)
		return ok && v == 25
	})
	close(release)
	waitFor(t, r, last)
	eventually(t, "lag 0", func() bool {
		v, ok := metricValue(t, "opsdesk_projection_lag_events", name)
		return ok && v == 0
	})
}

// TestRedeliveredEventsAreSkipped makes JetStream deliver every event again
// (a new consumer starts from the first event, as after lost acks) and shows
// the checkpoint skips them all.
func TestRedeliveredEventsAreSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__redelivery_v1"
	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{BatchSize: 16})
	want, last := e.publishRound(t, 50, "a", "b")
	stop := start(t, r)
	waitFor(t, r, last)
	stop()

	if err := e.js.DeleteConsumer(testCtx(t), stream, name); err != nil {
		t.Fatal(err)
	}
	r2 := e.runner(t, p, projection.Options{BatchSize: 16})
	start(t, r2)
	more, last := e.publishRound(t, 10, "a", "b")
	waitFor(t, r2, last)
	e.assertExactlyOnce(t, merge(want, more))
	// The 50 redelivered events reached the runner (the consumer started
	// over) but never Apply.
	if calls := p.calls.Load(); calls != 60 {
		t.Fatalf("Apply ran %d times for 60 events", calls)
	}
	if info, err := e.js.Consumer(testCtx(t), stream, name); err != nil {
		t.Fatal(err)
	} else if ci := info.CachedInfo(); ci.Delivered.Stream < last {
		t.Fatalf("consumer delivered up to %d, want %d", ci.Delivered.Stream, last)
	}
}

// stopMidBatch runs 50 events through batches of 10 with a hook that stops
// the runner while it applies the 15th (the 5th of the second batch), then
// restarts it and checks every event is applied exactly once.
func stopMidBatch(t *testing.T, name string, hook func(cancel context.CancelFunc) func(ctx context.Context, tx pgx.Tx, e es.Event, call int64) error) {
	e := newEnv(t)
	want, last := e.publishRound(t, 50, "a", "b", "c", "d", "e")

	ctx, cancel := context.WithCancel(context.Background())
	p := &counter{name: name, hook: hook(cancel)}
	r := e.runner(t, p, projection.Options{BatchSize: 10})
	stop := startWith(t, ctx, cancel, r)
	<-ctx.Done()
	stop() // Run must return nil, having rolled back the batch in flight

	// The interrupted batch left no trace: the checkpoint is at a batch
	// boundary before the 15th event, and the read model holds exactly the
	// events up to it.
	pos := e.position(t, r)
	if pos == 0 || pos >= 15 {
		t.Fatalf("checkpoint after the stop = %d, want a batch boundary in 1..14", pos)
	}
	if seqs := e.appliedSeqs(t); len(seqs) != int(pos) || seqs[len(seqs)-1] != int64(pos) {
		t.Fatalf("read model after the stop holds %v, want seqs 1..%d", seqs, pos)
	}

	// A new runner gets the unacked events at once: they were handed back
	// (no 30 s ack wait) and the stopped runner unpinned the consumer (no
	// 10 s pin timeout).
	r2 := e.runner(t, &counter{name: name}, projection.Options{BatchSize: 10})
	start(t, r2)
	quick, cancelQuick := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelQuick()
	if err := r2.WaitFor(quick, last); err != nil {
		t.Fatalf("restarted runner: %v", err)
	}
	e.assertExactlyOnce(t, want)
}

func TestStopWhileApplyBlocksRedeliversTheBatch(t *testing.T) {
	t.Parallel()
	stopMidBatch(t, "test__stop_blocked_v1", func(cancel context.CancelFunc) func(context.Context, pgx.Tx, es.Event, int64) error {
		return func(ctx context.Context, _ pgx.Tx, _ es.Event, call int64) error {
			if call == 15 {
				cancel() // the process is told to stop while Apply is busy
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
	})
}

func TestCancelInsideApplyMidBatch(t *testing.T) {
	t.Parallel()
	stopMidBatch(t, "test__cancel_inside_v1", func(cancel context.CancelFunc) func(context.Context, pgx.Tx, es.Event, int64) error {
		return func(ctx context.Context, tx pgx.Tx, _ es.Event, call int64) error {
			if call == 15 {
				cancel()
			}
			return nil // Apply goes on writing with a cancelled context
		}
	})
}

// TestPostgresConnectionKilledMidBatch kills the runner's Postgres
// connection in the middle of a batch: the runner retries the batch on a new
// connection without dead-lettering anything, and after a restart the read
// model still holds every event exactly once.
func TestPostgresConnectionKilledMidBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__conn_killed_v1"
	var killed atomic.Bool
	p := &counter{name: name, hook: func(ctx context.Context, tx pgx.Tx, _ es.Event, call int64) error {
		if call == 15 && killed.CompareAndSwap(false, true) {
			pid := tx.Conn().PgConn().PID()
			var ok bool
			// Wait (up to 5 s) until the backend has gone.
			if err := e.owner.QueryRow(ctx, "select pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
				t.Errorf("terminate backend %d: %v %v", pid, ok, err)
			}
		}
		return nil // Apply's own statements now hit the dead connection
	}}
	r := e.runner(t, p, projection.Options{BatchSize: 10})
	want, last := e.publishRound(t, 50, "a", "b", "c")
	stop := start(t, r)
	waitFor(t, r, last)
	if !killed.Load() {
		t.Fatal("the connection was never killed")
	}
	if calls := p.calls.Load(); calls <= 50 {
		t.Fatalf("Apply ran %d times: the interrupted batch was not retried", calls)
	}
	e.assertExactlyOnce(t, want)

	stop()
	r2 := e.runner(t, &counter{name: name}, projection.Options{BatchSize: 10})
	start(t, r2)
	more, last := e.publishRound(t, 10, "a", "b", "c")
	waitFor(t, r2, last)
	e.assertExactlyOnce(t, merge(want, more))
}

func TestPoisonEventIsDeadLetteredAndDoesNotBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__poison_v1"
	var poisonCalls, flakyCalls atomic.Int64
	var fixed atomic.Bool
	p := &counter{name: name, hook: func(_ context.Context, _ pgx.Tx, ev es.Event, _ int64) error {
		switch ev.AggregateID {
		case "poison":
			if fixed.Load() {
				return nil
			}
			poisonCalls.Add(1)
			return errors.New("poison event refused")
		case "flaky":
			if flakyCalls.Add(1) <= 2 {
				return errors.New("flaky failure")
			}
		}
		return nil
	}}
	r := e.runner(t, p, projection.Options{MaxAttempts: 3})
	appliedBefore, _ := metricValue(t, "opsdesk_projection_applied_total", name)
	deadBefore, _ := metricValue(t, "opsdesk_projection_deadlettered_total", name)

	want := map[string]int{}
	var poisonSeq, last uint64
	for i := 0; i < 20; i++ {
		agg := []string{"a", "b"}[i%2]
		last = e.publish(t, agg)
		want[agg]++
		switch i {
		case 6:
			poisonSeq = e.publish(t, "poison")
		case 12:
			e.publish(t, "flaky") // fails twice, then applies: not poison
			want["flaky"]++
		}
	}
	start(t, r)
	waitFor(t, r, last)

	e.assertCounts(t, want)
	if n := poisonCalls.Load(); n != 3 {
		t.Errorf("poison event tried %d times, want MaxAttempts = 3", n)
	}
	letters, err := deadletter.List(testCtx(t), e.js, name, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(letters), letters)
	}
	l := letters[0]
	if l.OriginalSeq != poisonSeq || l.Consumer != name || l.Stream != stream || l.Attempts != 3 ||
		!strings.Contains(l.Error, "poison event refused") || l.Event.AggregateID != "poison" {
		t.Fatalf("dead letter = %+v", l)
	}
	// Once the cause is fixed, the dead letter is replayed through the
	// registry the service wires up.
	fixed.Store(true)
	reg := deadletter.NewRegistry()
	reg.Register(name, r.Replay)
	if err := reg.Replay(testCtx(t), e.js, l.Seq); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if got := e.counts(t)["poison"]; got != 1 {
		t.Errorf("after replay the poison aggregate counts %d, want 1", got)
	}
	if left, err := deadletter.List(testCtx(t), e.js, name, 10); err != nil || len(left) != 0 {
		t.Errorf("after replay the DLQ holds %v (%v)", left, err)
	}

	if v, _ := metricValue(t, "opsdesk_projection_deadlettered_total", name); v-deadBefore != 1 {
		t.Errorf("deadlettered_total rose by %d, want 1", v-deadBefore)
	}
	if v, _ := metricValue(t, "opsdesk_projection_applied_total", name); v-appliedBefore != int64(sum(want)) {
		t.Errorf("applied_total rose by %d, want %d", v-appliedBefore, sum(want))
	}
}

func TestMalformedEventIsDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__malformed_v1"
	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{})

	want, _ := e.publishRound(t, 5, "a")
	// No ce-type and no ce-time: not an event.
	bad := &nats.Msg{Subject: "ticket.t1.x", Header: nats.Header{"ce-id": {"junk-1"}}, Data: []byte("{")}
	ack, err := e.js.PublishMsg(testCtx(t), bad)
	if err != nil {
		t.Fatal(err)
	}
	more, last := e.publishRound(t, 5, "a")
	start(t, r)
	waitFor(t, r, last)

	e.assertCounts(t, merge(want, more))
	if calls := p.calls.Load(); calls != 10 {
		t.Errorf("Apply ran %d times, want 10 (never for the malformed message)", calls)
	}
	letters, err := deadletter.List(testCtx(t), e.js, name, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].OriginalSeq != ack.Sequence || !strings.Contains(letters[0].Error, "malformed") {
		t.Fatalf("dead letters = %+v, want the malformed message (seq %d)", letters, ack.Sequence)
	}
}

func TestRebuildReplaysIntoAnEmptyReadModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__rebuild_v1"
	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{BatchSize: 32})
	want, last := e.publishRound(t, 100, "a", "b", "c", "d")
	start(t, r)
	waitFor(t, r, last)
	before := e.appliedSeqs(t)

	// While Run runs.
	if err := r.Rebuild(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, last)
	if p.resets.Load() != 1 {
		t.Fatalf("Reset ran %d times", p.resets.Load())
	}
	if calls := p.calls.Load(); calls != 200 {
		t.Fatalf("Apply ran %d times, want 200 (every event twice: once, then in the replay)", calls)
	}
	if after := e.appliedSeqs(t); !slices.Equal(before, after) {
		t.Fatalf("replayed read model differs: %d events before, %d after", len(before), len(after))
	}
	e.assertExactlyOnce(t, want)

	// It keeps following the stream afterwards.
	more, last := e.publishRound(t, 8, "a", "b", "c", "d")
	waitFor(t, r, last)
	e.assertExactlyOnce(t, merge(want, more))
}

func TestRebuildWhileStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__rebuild_stopped_v1"
	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{})
	want, last := e.publishRound(t, 20, "a", "b")
	stop := start(t, r)
	waitFor(t, r, last)
	stop()

	if err := r.Rebuild(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if pos := e.position(t, r); pos != 0 {
		t.Fatalf("checkpoint after Rebuild = %d", pos)
	}
	if got := e.counts(t); len(got) != 0 {
		t.Fatalf("read model after Rebuild = %v, want empty", got)
	}
	start(t, r)
	waitFor(t, r, last)
	e.assertExactlyOnce(t, want)
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__waitfor_v1"
	r := e.runner(t, &counter{name: name}, projection.Options{})

	// Before anything ran, nothing is reached, and the wait ends with ctx.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.WaitFor(short, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor before start: %v, want DeadlineExceeded", err)
	}
	if err := projection.WaitFor(short, e.pool, schema, name, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("package WaitFor before start: %v, want DeadlineExceeded", err)
	}

	_, last := e.publishRound(t, 5, "a")
	start(t, r)
	waitFor(t, r, last)
	if err := projection.WaitFor(testCtx(t), e.pool, schema, name, last); err != nil {
		t.Fatalf("package WaitFor for a reached seq: %v", err)
	}

	// Not reached yet: bounded by ctx.
	short2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := r.WaitFor(short2, last+1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor beyond the stream: %v, want DeadlineExceeded", err)
	}

	// Waiters (in-process and cross-process) wake when the event arrives.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- r.WaitFor(testCtx(t), last+1) })
	wg.Go(func() { errs <- projection.WaitFor(testCtx(t), e.pool, schema, name, last+1) })
	if seq := e.publish(t, "a"); seq != last+1 {
		t.Fatalf("published seq %d", seq)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("WaitFor after publish: %v", err)
		}
	}

	// A Runner that is not running answers from the checkpoint table.
	idle := e.runner(t, &counter{name: name}, projection.Options{})
	if err := idle.WaitFor(testCtx(t), last+1); err != nil {
		t.Fatalf("WaitFor on an idle runner: %v", err)
	}
}

// TestTwoRunnersOfOneProjection runs two replicas of the same projection
// while events are appended concurrently: they serialise on the checkpoint
// and every event is applied exactly once.
func TestTwoRunnersOfOneProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__replicas_v1"
	p1, p2 := &counter{name: name}, &counter{name: name}
	r1 := e.runner(t, p1, projection.Options{BatchSize: 16})
	r2 := e.runner(t, p2, projection.Options{BatchSize: 16})
	start(t, r1)
	start(t, r2)

	var mu sync.Mutex
	want := map[string]int{}
	var last uint64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			aggs := []string{"a", "b", "c"}
			for i := 0; i < 100; i++ {
				seq := e.publish(t, aggs[i%3])
				mu.Lock()
				want[aggs[i%3]]++
				last = max(last, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := projection.WaitFor(ctx, e.pool, schema, name, last); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(t, want)
	// Whichever replica did the work, both answer read-your-writes waits.
	for _, r := range []*projection.Runner{r1, r2} {
		quick, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := r.WaitFor(quick, last); err != nil {
			t.Errorf("replica WaitFor: %v", err)
		}
		cancel()
	}
	if n1, n2 := p1.calls.Load(), p2.calls.Load(); n1+n2 != 400 {
		t.Fatalf("Apply ran %d+%d times for 400 events", n1, n2)
	}
}

// TestTraceContinuesFromThePublisher checks that the consumer span is a
// child of the span that published the event and the SQL of Apply runs
// under the consumer span, so one trace spans publish -> consume -> SQL.
func TestTraceContinuesFromThePublisher(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__trace_v1"
	r := e.runner(t, &counter{name: name}, projection.Options{})

	pctx, pub := otel.Tracer("test").Start(context.Background(), "TICKETS publish", trace.WithSpanKind(trace.SpanKindProducer))
	seq := e.publishTraced(t, pctx, "traced")
	pub.End()
	_, last := e.publishRound(t, 3, "untraced")
	start(t, r)
	waitFor(t, r, max(seq, last))

	var apply *trace.SpanContext
	all := spans.GetSpans()
	for i := range all {
		s := all[i]
		if s.Name == name+" apply" && s.Parent.SpanID() == pub.SpanContext().SpanID() {
			if s.SpanKind != trace.SpanKindConsumer || s.SpanContext.TraceID() != pub.SpanContext().TraceID() {
				t.Fatalf("consumer span %+v", s)
			}
			apply = &s.SpanContext
		}
	}
	if apply == nil {
		t.Fatal("no consumer span child of the publish span")
	}
	// The batch span ends just after the checkpoint moves.
	eventually(t, "a batch span linked to the event's trace", func() bool {
		for _, s := range spans.GetSpans() {
			if s.Name != name+" batch" {
				continue
			}
			for _, l := range s.Links {
				if l.SpanContext.SpanID() == pub.SpanContext().SpanID() {
					return true
				}
			}
		}
		return false
	})
	var sql bool
	for _, s := range all {
		if s.Parent.SpanID() != apply.SpanID() {
			continue
		}
		for _, a := range s.Attributes {
			if a.Key == "db.query.text" && strings.Contains(a.Value.AsString(), "insert into rm.applied") {
				sql = true
			}
		}
	}
	if !sql {
		t.Fatal("Apply's SQL did not run under the consumer span")
	}
}

// assertCounts is assertExactlyOnce for tests that expect dead letters.
func (e *env) assertCounts(t *testing.T, want map[string]int) {
	t.Helper()
	got := e.counts(t)
	for _, a := range sortedKeys(want) {
		if got[a] != want[a] {
			t.Errorf("aggregate %s: count %d, want %d", a, got[a], want[a])
		}
	}
	if len(got) != len(want) {
		t.Errorf("read model has aggregates %v, want %v", got, want)
	}
	if seqs := e.appliedSeqs(t); len(seqs) != sum(want) {
		t.Errorf("read model holds %d events, want %d", len(seqs), sum(want))
	}
}

// TestRecreatedStreamRebuildsTheReadModel: a stream deleted and created
// again starts its sequences over; the runner notices that its checkpoint
// belongs to the old stream and replays the new one into an empty read
// model instead of skipping its first events.
func TestRecreatedStreamRebuildsTheReadModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__recreated_v1"
	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{})
	_, last := e.publishRound(t, 10, "old")
	stop := start(t, r)
	waitFor(t, r, last)
	stop()

	ctx := testCtx(t)
	if err := e.js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.EnsureStream(ctx, e.js, natsx.StreamConfig{Name: stream, Subjects: []string{"ticket.>"}}); err != nil {
		t.Fatal(err)
	}
	want, last := e.publishRound(t, 3, "new")
	if last >= 10 {
		t.Fatalf("the new stream continues at %d", last)
	}
	r = e.runner(t, p, projection.Options{})
	stop = start(t, r)
	// The old checkpoint (10) is past the new events until the runner has
	// checked the stream, so wait for the read model itself.
	eventually(t, "the new stream's events, and only them", func() bool {
		got := e.counts(t)
		return len(got) == 1 && got["new"] == 3
	})
	waitFor(t, r, last)
	stop()
	e.assertExactlyOnce(t, want)
	// A restart on the same stream keeps the read model.
	r = e.runner(t, p, projection.Options{})
	stop = start(t, r)
	more, last := e.publishRound(t, 2, "new")
	waitFor(t, r, last)
	stop()
	e.assertExactlyOnce(t, merge(want, more))
	if n := p.resets.Load(); n != 1 {
		t.Fatalf("read model reset %d times after a plain restart, want still once", n)
	}
}
