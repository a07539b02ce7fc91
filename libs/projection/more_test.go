package projection_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/projection"
)

// createConsumer has a runner create the projection's consumer, on a stream
// still empty, and stops it.
func createConsumer(t *testing.T, e *env, name string) {
	t.Helper()
	ctx := testCtx(t)
	stop := start(t, e.runner(t, &counter{name: name}, projection.Options{BatchSize: 10}))
	eventually(t, "the consumer", func() bool {
		_, err := e.js.Consumer(ctx, stream, name)
		return err == nil
	})
	stop()
}

// holdFirst plays a replica that took events 1..n and will not ack them
// (it died, or the delivery was lost in a NATS outage): it fetches them
// through the projection's consumer and lets its pin lapse.
func holdFirst(t *testing.T, e *env, name string, n int) []jetstream.Msg {
	t.Helper()
	ctx := testCtx(t)
	cons, err := e.js.Consumer(ctx, stream, name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cons.Fetch(n, jetstream.FetchPriorityGroup(projection.PriorityGroup), jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var held []jetstream.Msg
	for m := range b.Messages() {
		held = append(held, m)
	}
	if len(held) != n {
		t.Fatalf("held %d events, want %d", len(held), n)
	}
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(ctx, name, projection.PriorityGroup); err != nil {
		t.Fatal(err)
	}
	return held
}

// TestEventsAheadOfAGapWaitForIt: a runner that receives events 11.. while
// 1..10 are held elsewhere must not apply them (the checkpoint would then
// skip 1..10 for ever) until 1..10 come back.
func TestEventsAheadOfAGapWaitForIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__gap_v1"
	ctx := testCtx(t)
	createConsumer(t, e, name)
	want, last := e.publishRound(t, 30, "a", "b")
	held := holdFirst(t, e, name, 10)

	p := &counter{name: name}
	r := e.runner(t, p, projection.Options{BatchSize: 10})
	start(t, r)
	cons, err := e.js.Consumer(ctx, stream, name)
	if err != nil {
		t.Fatal(err)
	}
	// The runner gets events 11.. and keeps handing them back (or, if it
	// wrongly applied them, the checks below say so).
	eventually(t, "events 11.. handed back", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumRedelivered >= 10 || p.calls.Load() > 0
	})
	if pos := e.position(t, r); pos != 0 {
		t.Fatalf("checkpoint moved to %d while events 1..10 were held elsewhere", pos)
	}
	if calls := p.calls.Load(); calls != 0 {
		t.Fatalf("Apply ran %d times while events 1..10 were held elsewhere", calls)
	}

	// The holder gives them back.
	for _, m := range held {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, r, last)
	e.assertExactlyOnce(t, want)
}

// TestLostEventsAreFetchedAgain: when the events a runner waits for never
// come back (the holder is gone for good), the runner has the consumer
// deliver from its checkpoint again after a few seconds, instead of waiting
// for JetStream's 30 s ack wait.
func TestLostEventsAreFetchedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__lost_v1"
	createConsumer(t, e, name)
	want, last := e.publishRound(t, 30, "a", "b")
	_ = holdFirst(t, e, name, 10) // never acked nor handed back

	r := e.runner(t, &counter{name: name}, projection.Options{BatchSize: 10})
	start(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	e.assertExactlyOnce(t, want)
}

// TestPostgresDownLongerThanMaxAttemptsIsNotPoison kills the connection
// every time one event is applied, more often than MaxAttempts: that is an
// outage, not a poison event, so it is retried until it passes and nothing
// is dead-lettered.
func TestPostgresDownLongerThanMaxAttemptsIsNotPoison(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__outage_v1"
	var kills atomic.Int64
	p := &counter{name: name, hook: func(ctx context.Context, tx pgx.Tx, ev es.Event, _ int64) error {
		if ev.Sequence == 7 && kills.Load() < 4 {
			kills.Add(1)
			if _, err := e.owner.Exec(ctx, "select pg_terminate_backend($1, 5000)", tx.Conn().PgConn().PID()); err != nil {
				t.Errorf("terminate: %v", err)
			}
		}
		return nil
	}}
	r := e.runner(t, p, projection.Options{BatchSize: 5, MaxAttempts: 2})
	want, last := e.publishRound(t, 12, "a", "b")
	start(t, r)
	waitFor(t, r, last)
	if kills.Load() != 4 {
		t.Fatalf("connection killed %d times, want 4", kills.Load())
	}
	e.assertExactlyOnce(t, want)
}

func TestBatchProjectionAppliesRunsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "test__batch_v1"
	var poisonCalls atomic.Int64
	p := &batchCounter{counter: counter{name: name, hook: func(_ context.Context, _ pgx.Tx, ev es.Event, _ int64) error {
		if ev.AggregateID == "poison" {
			poisonCalls.Add(1)
			return errors.New("poison event refused")
		}
		return nil
	}}}
	p.batchHook = func(_ context.Context, _ pgx.Tx, events []es.Event) error {
		for _, ev := range events {
			if ev.AggregateID == "poison" {
				return errors.New("poison event refused")
			}
		}
		return nil
	}
	r := e.runner(t, p, projection.Options{BatchSize: 50, MaxAttempts: 2})

	want, _ := e.publishRound(t, 200, "a", "b", "c")
	start(t, r)
	// Wait until the backlog is applied, then add a poison event in the
	// middle of another run.
	_, last := e.publishRound(t, 1, "a")
	want["a"]++
	waitFor(t, r, last)
	if p.largest.Load() < 10 {
		t.Fatalf("largest ApplyBatch held %d events: runs are not batched", p.largest.Load())
	}
	more, _ := e.publishRound(t, 10, "d")
	e.publish(t, "poison")
	more2, last := e.publishRound(t, 10, "d")
	waitFor(t, r, last)

	want = merge(want, merge(more, more2))
	e.assertCounts(t, want)
	if n := poisonCalls.Load(); n != 2 {
		t.Errorf("poison Apply ran %d times, want MaxAttempts = 2", n)
	}
	letters, err := deadletter.List(testCtx(t), e.js, name, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].Event.AggregateID != "poison" {
		t.Fatalf("dead letters = %+v, want the poison event", letters)
	}
	// Every event still has its consumer span.
	eventually(t, "a consumer span per event", func() bool {
		n := 0
		for _, s := range spans.GetSpans() {
			if s.Name == name+" apply" {
				n++
			}
		}
		return n >= sum(want)
	})
}

// TestSetTenantScopesEachEvent checks Options.SetTenant: each event is
// applied with app.tenant_id set to its tenant, each ApplyBatch holds one
// tenant's events (all of them in the batch), and an event without a
// tenant is dead-lettered.
func TestSetTenantScopesEachEvent(t *testing.T) {
	t.Parallel()
	for _, batched := range []bool{false, true} {
		name := "test__tenant_v1"
		if batched {
			name = "test__tenant_batch_v1"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			check := func(ctx context.Context, tx pgx.Tx, ten string) error {
				var got string
				if err := tx.QueryRow(ctx, "select current_setting('app.tenant_id')").Scan(&got); err != nil {
					return err
				}
				if got != ten {
					t.Errorf("event of %q applied with app.tenant_id %q", ten, got)
				}
				return nil
			}
			hook := func(ctx context.Context, tx pgx.Tx, ev es.Event, _ int64) error {
				return check(ctx, tx, ev.Tenant)
			}
			var p projection.Projection = &counter{name: name, hook: hook}
			if batched {
				bc := &batchCounter{counter: counter{name: name, hook: hook}}
				bc.batchHook = func(ctx context.Context, tx pgx.Tx, events []es.Event) error {
					for _, ev := range events[1:] {
						if ev.Tenant != events[0].Tenant {
							t.Errorf("ApplyBatch mixes tenants %s and %s", events[0].Tenant, ev.Tenant)
						}
					}
					return check(ctx, tx, events[0].Tenant)
				}
				p = bc
			}
			r := e.runner(t, p, projection.Options{SetTenant: true, MaxAttempts: 1})
			want := map[string]int{}
			for i := 0; i < 30; i++ {
				ten := []string{"t1", "t1", "t2"}[i%3]
				e.publishFor(t, context.Background(), ten, "a-"+ten)
				want["a-"+ten]++
			}
			e.publishFor(t, context.Background(), "", "orphan")
			last := e.publishFor(t, context.Background(), "t2", "a-t2")
			want["a-t2"]++
			start(t, r)
			waitFor(t, r, last)
			e.assertCounts(t, want)
			letters, err := deadletter.List(testCtx(t), e.js, name, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(letters) != 1 || !strings.Contains(letters[0].Error, "tenant") {
				t.Fatalf("dead letters = %+v, want the event without a tenant", letters)
			}
			// Interleaved tenants (t1, t1, t2, ...) are grouped per tenant,
			// not cut into runs of one or two.
			if bc, ok := p.(*batchCounter); ok && bc.largest.Load() < 10 {
				t.Errorf("largest ApplyBatch held %d events; interleaved tenants were not grouped", bc.largest.Load())
			}
		})
	}
}
