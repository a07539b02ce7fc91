package projection_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/libs/testwait"
)

var (
	spans  = tracetest.NewInMemoryExporter()
	reader = sdkmetric.NewManualReader()
)

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)))
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

const (
	stream = "TICKETS"
	schema = "rm"
	tenant = "t1"
)

// The test read model: per-aggregate counts, which would double on a
// double apply, and one row per applied event whose primary key (the stream
// sequence) makes a double apply fail loudly (and land in the DLQ, which
// every test checks is empty unless it expects otherwise).
var readModel = fstest.MapFS{"00001_read_model.sql": {Data: []byte(`-- +goose Up
create table applied (seq bigint primary key, aggregate text not null, event_id text not null unique);
create table counts (aggregate text primary key, n int not null);
-- +goose Down
drop table applied; drop table counts;
`)}}

// counter is the test projection.
type counter struct {
	name   string
	calls  atomic.Int64 // Apply calls, failed ones included
	resets atomic.Int64
	// hook runs at the start of Apply with the call number; an error it
	// returns is Apply's.
	hook func(ctx context.Context, tx pgx.Tx, e es.Event, call int64) error
}

func (c *counter) Name() string   { return c.name }
func (c *counter) Stream() string { return stream }

func (c *counter) Apply(ctx context.Context, tx pgx.Tx, e es.Event) error {
	n := c.calls.Add(1)
	if c.hook != nil {
		if err := c.hook(ctx, tx, e, n); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "insert into rm.applied (seq, aggregate, event_id) values ($1, $2, $3)",
		int64(e.Sequence), e.AggregateID, e.ID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `insert into rm.counts (aggregate, n) values ($1, 1)
		on conflict (aggregate) do update set n = counts.n + 1`, e.AggregateID)
	return err
}

// batchCounter is counter with ApplyBatch: one pgx.Batch per call.
type batchCounter struct {
	counter
	batchCalls atomic.Int64
	largest    atomic.Int64 // most events in one ApplyBatch
	// batchHook runs at the start of ApplyBatch; an error it returns is
	// ApplyBatch's.
	batchHook func(ctx context.Context, tx pgx.Tx, events []es.Event) error
}

func (c *batchCounter) ApplyBatch(ctx context.Context, tx pgx.Tx, events []es.Event) error {
	c.batchCalls.Add(1)
	for {
		l := c.largest.Load()
		if int64(len(events)) <= l || c.largest.CompareAndSwap(l, int64(len(events))) {
			break
		}
	}
	if c.batchHook != nil {
		if err := c.batchHook(ctx, tx, events); err != nil {
			return err
		}
	}
	b := &pgx.Batch{}
	for _, e := range events {
		b.Queue("insert into rm.applied (seq, aggregate, event_id) values ($1, $2, $3)", int64(e.Sequence), e.AggregateID, e.ID)
		b.Queue(`insert into rm.counts (aggregate, n) values ($1, 1)
			on conflict (aggregate) do update set n = counts.n + 1`, e.AggregateID)
	}
	return tx.SendBatch(ctx, b).Close()
}

func (c *counter) Reset(ctx context.Context, tx pgx.Tx) error {
	c.resets.Add(1)
	_, err := tx.Exec(ctx, "truncate rm.applied, rm.counts")
	return err
}

// env is one test's world: its own JetStream server and Postgres database.
type env struct {
	srv  *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	pool *pgxpool.Pool
	// owner acts as the login role: it may terminate the pool's backends.
	owner *pgxpool.Pool
	ids   atomic.Int64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{srv: natstest.Start(t)}
	e.nc, e.js = e.srv.Conn(t)
	var url string
	e.pool, url = pgtest.NewDB(t)
	e.owner = pgtest.Owner(t, url)
	ctx := testCtx(t)
	if _, err := natsx.EnsureStream(ctx, e.js, natsx.StreamConfig{Name: stream, Subjects: []string{"ticket.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := deadletter.EnsureStream(ctx, e.js, 1); err != nil {
		t.Fatal(err)
	}
	if err := pgdb.Migrate(ctx, e.pool, schema, readModel); err != nil {
		t.Fatal(err)
	}
	return e
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) runner(t testing.TB, p projection.Projection, opts projection.Options) *projection.Runner {
	t.Helper()
	opts.Schema = schema
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := projection.New(e.nc, e.js, e.pool, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs r until the returned stop is called (or the test ends); stop
// cancels, waits for Run and checks it returned nil.
func start(t testing.TB, r *projection.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	return startWith(t, ctx, cancel, r)
}

func startWith(t testing.TB, ctx context.Context, cancel context.CancelFunc, r *projection.Runner) (stop func()) {
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// publish appends one event for aggregate agg and returns its sequence.
func (e *env) publish(t *testing.T, agg string) uint64 {
	return e.publishTraced(t, context.Background(), agg)
}

func (e *env) publishTraced(t *testing.T, ctx context.Context, agg string) uint64 {
	t.Helper()
	return e.publishFor(t, ctx, tenant, agg)
}

// publishFor publishes an event of tenant ten (none when "").
func (e *env) publishFor(t *testing.T, ctx context.Context, ten, agg string) uint64 {
	t.Helper()
	ev := es.Event{
		ID:          fmt.Sprintf("ev%06d", e.ids.Add(1)),
		Type:        "opsdesk.test.counted.v1",
		Source:      "/test",
		Tenant:      ten,
		AggregateID: agg,
		Time:        time.Now(),
		Data:        []byte(`{}`),
	}
	h := es.EncodeHeaders(ev)
	natsx.Inject(ctx, h)
	if ten == "" {
		ten = "none"
	}
	msg := &nats.Msg{Subject: "ticket." + ten + "." + agg, Header: nats.Header(h), Data: ev.Data}
	ack, err := e.js.PublishMsg(testCtx(t), msg)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ack.Sequence
}

// publishRound publishes n events round-robin over aggs and returns the
// expected count per aggregate and the last sequence.
func (e *env) publishRound(t *testing.T, n int, aggs ...string) (map[string]int, uint64) {
	t.Helper()
	want := map[string]int{}
	var last uint64
	for i := 0; i < n; i++ {
		a := aggs[i%len(aggs)]
		last = e.publish(t, a)
		want[a]++
	}
	return want, last
}

func waitFor(t *testing.T, r *projection.Runner, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// counts returns the read model's per-aggregate counts.
func (e *env) counts(t *testing.T) map[string]int {
	t.Helper()
	rows, _ := e.pool.Query(testCtx(t), "select aggregate, n from rm.counts")
	got := map[string]int{}
	var agg string
	var n int
	_, err := pgx.ForEachRow(rows, []any{&agg, &n}, func() error {
		got[agg] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// appliedSeqs returns the sequences in the read model, in order.
func (e *env) appliedSeqs(t *testing.T) []int64 {
	t.Helper()
	rows, _ := e.pool.Query(testCtx(t), "select seq from rm.applied order by seq")
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// assertExactlyOnce checks that the read model holds every expected event
// once: counts per aggregate as published, one row per event, and no dead
// letters (a double apply would have hit the primary key and ended there).
func (e *env) assertExactlyOnce(t *testing.T, want map[string]int) {
	t.Helper()
	got := e.counts(t)
	total := 0
	for a, n := range want {
		total += n
		if got[a] != n {
			t.Errorf("aggregate %s: count %d, want %d", a, got[a], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("read model has aggregates %v, want %v", got, want)
	}
	if seqs := e.appliedSeqs(t); len(seqs) != total {
		t.Errorf("read model holds %d events, want %d", len(seqs), total)
	}
	if n := e.deadLetters(t); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

func (e *env) deadLetters(t *testing.T) int {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), deadletter.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}

func (e *env) position(t *testing.T, r *projection.Runner) uint64 {
	t.Helper()
	pos, err := r.Position(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func merge(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

// metricValue returns the value of an int64 counter or gauge for one
// projection, and whether it was reported.
func metricValue(t *testing.T, name, projectionName string) (int64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attribute.String("projection", projectionName)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				if v, ok := p.Attributes.Value(want.Key); ok && v.AsString() == projectionName {
					return p.Value, true
				}
			}
		}
	}
	return 0, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, what, cond)
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
