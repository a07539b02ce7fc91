// Package estest is the conformance suite every es.Store must pass: the
// guarantees the rest of OpsDesk builds on (optimistic concurrency, atomic
// batches, idempotent retries, faithful loads, tenant isolation), checked
// against a real store.
//
// Use it from the store's own tests:
//
//	func TestConformance(t *testing.T) {
//		estest.Run(t, func(t *testing.T) es.Store { return newStore(t) })
//	}
package estest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/es"
)

// Run runs the suite. newStore is called once per subtest, which run in
// parallel; stores may share a backend, since every subtest uses its own
// tenant and aggregate ids.
func Run(t *testing.T, newStore func(t *testing.T) es.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s es.Store)
	}{
		{"LoadUnknownAggregate", testLoadUnknown},
		{"AppendAndLoadRoundTrip", testRoundTrip},
		{"ConcurrentAppendsOneWinnerPerVersion", testConcurrentAppends},
		{"StaleExpectedSequence", testStaleExpected},
		{"RetriedSingleAppendStoredOnce", testRetrySingle},
		{"RetriedBatchAppendStoredOnce", testRetryBatch},
		{"StaleBatchStoresNothing", testStaleBatch},
		{"BatchVisibleWhollyOrNotAtAll", testBatchVisibility},
		{"TenantsIsolated", testTenantIsolation},
		{"InvalidKeysRejected", testInvalidKeys},
		{"LargeAggregate", testLargeAggregate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// timeout bounds each store call, so a hung store fails the test instead of
// stalling the run.
const timeout = 10 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// newKey returns an aggregate key no other test uses.
func newKey() es.Key {
	return es.Key{Tenant: "t_" + ulid.Make().String(), ID: "tk_" + ulid.Make().String()}
}

// newEvent returns an event with every envelope field set, so a round trip
// shows which ones a store drops.
func newEvent(key es.Key, n int) es.Event {
	id := ulid.Make().String()
	return es.Event{
		ID:            id,
		Type:          fmt.Sprintf("opsdesk.test.happened.v%d", n%3+1),
		Source:        "/services/estest",
		Tenant:        key.Tenant,
		AggregateID:   key.ID,
		Time:          time.Now().UTC().Add(time.Duration(n) * time.Millisecond).Round(time.Microsecond),
		Actor:         "user:alice",
		CorrelationID: "corr_" + id,
		CausationID:   "cause_" + id,
		Data:          []byte(fmt.Sprintf(`{"n":%d,"text":"caf\u00e9 \"quoted\""}`, n)),
	}
}

func newEvents(key es.Key, from, n int) []es.Event {
	out := make([]es.Event, n)
	for i := range out {
		out[i] = newEvent(key, from+i)
	}
	return out
}

func mustAppend(t *testing.T, s es.Store, key es.Key, expected uint64, evts []es.Event) uint64 {
	t.Helper()
	seq, err := s.Append(ctxFor(t), key, expected, evts)
	if err != nil {
		t.Fatalf("append %d events at %d: %v", len(evts), expected, err)
	}
	if seq <= expected {
		t.Fatalf("append at %d returned sequence %d, want more than expected", expected, seq)
	}
	return seq
}

func mustLoad(t *testing.T, s es.Store, key es.Key) ([]es.Event, uint64) {
	t.Helper()
	evts, last, err := s.Load(ctxFor(t), key)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return evts, last
}

// checkSame asserts that got is exactly want, in order, with every
// envelope field intact and the store fields set consistently.
func checkSame(t *testing.T, key es.Key, contextName string, got, want []es.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("loaded %d events, want %d", len(got), len(want))
	}
	var prev uint64
	for i, g := range got {
		w := want[i]
		switch {
		case g.ID != w.ID:
			t.Fatalf("event %d: id %s, want %s (order or content differs)", i, g.ID, w.ID)
		case g.Type != w.Type, g.Source != w.Source, g.Tenant != w.Tenant, g.AggregateID != w.AggregateID,
			g.Actor != w.Actor, g.CorrelationID != w.CorrelationID, g.CausationID != w.CausationID:
			t.Fatalf("event %d: envelope\n got %+v\nwant %+v", i, g, w)
		case !g.Time.Equal(w.Time):
			t.Fatalf("event %d: time %s, want %s", i, g.Time, w.Time)
		case string(g.Data) != string(w.Data):
			t.Fatalf("event %d: data %s, want %s", i, g.Data, w.Data)
		case g.Version != uint64(i+1):
			t.Fatalf("event %d: version %d, want %d", i, g.Version, i+1)
		case g.Sequence <= prev:
			t.Fatalf("event %d: sequence %d not after %d", i, g.Sequence, prev)
		case contextName != "" && g.Subject != key.Subject(contextName):
			t.Fatalf("event %d: subject %q, want %q", i, g.Subject, key.Subject(contextName))
		}
		prev = g.Sequence
	}
}

func testLoadUnknown(t *testing.T, s es.Store) {
	evts, last, err := s.Load(ctxFor(t), newKey())
	if err != nil || len(evts) != 0 || last != 0 {
		t.Fatalf("load of unknown aggregate = %d events, last %d, err %v; want none, 0, nil", len(evts), last, err)
	}
}

func testRoundTrip(t *testing.T, s es.Store) {
	key := newKey()
	var want []es.Event
	var last uint64
	for _, n := range []int{1, 3, 1, 2} { // singles and batches interleaved
		evts := newEvents(key, len(want), n)
		last = mustAppend(t, s, key, last, evts)
		want = append(want, evts...)
	}
	got, gotLast := mustLoad(t, s, key)
	// The store's context is the subject's first token.
	name := strings.SplitN(got[0].Subject, ".", 2)[0]
	checkSame(t, key, name, got, want)
	if gotLast != last || got[len(got)-1].Sequence != last {
		t.Fatalf("load last sequence %d (last event %d), want %d from the last append", gotLast, got[len(got)-1].Sequence, last)
	}
}

func testConcurrentAppends(t *testing.T, s es.Store) {
	const writers, versions = 8, 5
	key := newKey()
	var last uint64
	var want []es.Event
	for v := range versions {
		type result struct {
			seq  uint64
			err  error
			evts []es.Event
		}
		results := make([]result, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			// Half the writers append a batch, so single appends and batches
			// race against each other.
			evts := newEvents(key, v*100+w*10, 1+w%2)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				seq, err := s.Append(ctxFor(t), key, last, evts)
				results[w] = result{seq, err, evts}
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for _, r := range results {
			switch {
			case r.err == nil:
				winners++
				last = r.seq
				want = append(want, r.evts...)
			case errors.Is(r.err, es.ErrConcurrency):
			default:
				t.Fatalf("version %d: append failed with %v, want success or ErrConcurrency", v, r.err)
			}
		}
		if winners != 1 {
			t.Fatalf("version %d: %d of %d concurrent appends at the same sequence succeeded, want exactly 1", v, winners, writers)
		}
	}
	got, gotLast := mustLoad(t, s, key)
	checkSame(t, key, "", got, want)
	if gotLast != last {
		t.Fatalf("last sequence %d, want %d", gotLast, last)
	}
}

func testStaleExpected(t *testing.T, s es.Store) {
	key := newKey()
	first := newEvents(key, 0, 1)
	seq := mustAppend(t, s, key, 0, first)
	for _, expected := range []uint64{0, seq - 1, seq + 1, seq + 1000} {
		if expected == seq {
			continue
		}
		_, err := s.Append(ctxFor(t), key, expected, newEvents(key, 1, 1))
		if !errors.Is(err, es.ErrConcurrency) {
			t.Fatalf("append at %d when the aggregate is at %d: err %v, want ErrConcurrency", expected, seq, err)
		}
	}
	got, _ := mustLoad(t, s, key)
	checkSame(t, key, "", got, first)
}

func testRetrySingle(t *testing.T, s es.Store) {
	key := newKey()
	e := newEvents(key, 0, 1)
	seq := mustAppend(t, s, key, 0, e)
	// The ack was "lost": the caller retries the very same append.
	again, err := s.Append(ctxFor(t), key, 0, e)
	if err != nil || again != seq {
		t.Fatalf("retried append = %d, %v; want %d, nil (already stored)", again, err, seq)
	}
	// Still recognised after the aggregate has moved on.
	next := newEvents(key, 1, 1)
	mustAppend(t, s, key, seq, next)
	again, err = s.Append(ctxFor(t), key, 0, e)
	if err != nil || again != seq {
		t.Fatalf("retried append after a later write = %d, %v; want %d, nil", again, err, seq)
	}
	got, _ := mustLoad(t, s, key)
	checkSame(t, key, "", got, append(e, next...))
}

func testRetryBatch(t *testing.T, s es.Store) {
	key := newKey()
	first := newEvents(key, 0, 1)
	s1 := mustAppend(t, s, key, 0, first)
	batch := newEvents(key, 1, 3)
	s2 := mustAppend(t, s, key, s1, batch)
	for i := range 2 {
		again, err := s.Append(ctxFor(t), key, s1, batch)
		if err != nil || again != s2 {
			t.Fatalf("retry %d of a batch = %d, %v; want %d, nil (already stored)", i+1, again, err, s2)
		}
	}
	got, _ := mustLoad(t, s, key)
	checkSame(t, key, "", got, append(first, batch...))
}

func testStaleBatch(t *testing.T, s es.Store) {
	key := newKey()
	first := newEvents(key, 0, 2)
	seq := mustAppend(t, s, key, 0, first)
	for _, expected := range []uint64{0, seq + 7} {
		_, err := s.Append(ctxFor(t), key, expected, newEvents(key, 10, 4))
		if !errors.Is(err, es.ErrConcurrency) {
			t.Fatalf("batch at stale sequence %d: err %v, want ErrConcurrency", expected, err)
		}
	}
	got, last := mustLoad(t, s, key)
	checkSame(t, key, "", got, first)
	if last != seq {
		t.Fatalf("last sequence %d after refused batches, want %d", last, seq)
	}
}

func testBatchVisibility(t *testing.T, s es.Store) {
	const batches, size = 15, 5
	key := newKey()
	writerDone := make(chan error, 1)
	ctx := ctxFor(t)
	go func() {
		var last uint64
		for b := range batches {
			seq, err := s.Append(ctx, key, last, newEvents(key, b*size, size))
			if err != nil {
				writerDone <- err
				return
			}
			last = seq
		}
		writerDone <- nil
	}()
	loads := 0
	for done := false; !done; {
		select {
		case err := <-writerDone:
			if err != nil {
				t.Fatalf("writer: %v", err)
			}
			done = true
		default:
		}
		got, _ := mustLoad(t, s, key)
		loads++
		if len(got)%size != 0 {
			t.Fatalf("load %d saw %d events: part of a batch of %d was visible", loads, len(got), size)
		}
	}
	got, _ := mustLoad(t, s, key)
	if len(got) != batches*size {
		t.Fatalf("after the writer: %d events, want %d", len(got), batches*size)
	}
}

func testTenantIsolation(t *testing.T, s es.Store) {
	id := "tk_" + ulid.Make().String()
	a := es.Key{Tenant: "t_" + ulid.Make().String(), ID: id}
	b := es.Key{Tenant: "t_" + ulid.Make().String(), ID: id}
	ea := newEvents(a, 0, 2)
	mustAppend(t, s, a, 0, ea)
	// Tenant b's aggregate is new even though tenant a's with the same id
	// is not: its expected sequence is 0.
	eb := newEvents(b, 0, 1)
	mustAppend(t, s, b, 0, eb)
	gotA, _ := mustLoad(t, s, a)
	checkSame(t, a, "", gotA, ea)
	gotB, _ := mustLoad(t, s, b)
	checkSame(t, b, "", gotB, eb)
	// An event claiming another tenant is refused, not stored under either.
	wrong := newEvent(a, 9)
	if _, err := s.Append(ctxFor(t), b, gotB[0].Sequence, []es.Event{wrong}); err == nil {
		t.Fatalf("append of an event of tenant %s to tenant %s succeeded", a.Tenant, b.Tenant)
	}
	gotB, _ = mustLoad(t, s, b)
	checkSame(t, b, "", gotB, eb)
}

func testInvalidKeys(t *testing.T, s es.Store) {
	good := "t_" + ulid.Make().String()
	bad := []es.Key{
		{Tenant: "", ID: "tk_1"},
		{Tenant: good, ID: ""},
		{Tenant: "a.b", ID: "tk_1"},
		{Tenant: good, ID: "tk.1"},
		{Tenant: "*", ID: "tk_1"},
		{Tenant: good, ID: ">"},
		{Tenant: good, ID: "tk 1"},
		{Tenant: good, ID: strings.Repeat("x", 129)},
	}
	for _, key := range bad {
		evt := newEvent(key, 0)
		if _, err := s.Append(ctxFor(t), key, 0, []es.Event{evt}); !errors.Is(err, es.ErrInvalidKey) {
			t.Errorf("append with key %+v: err %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := s.Load(ctxFor(t), key); !errors.Is(err, es.ErrInvalidKey) {
			t.Errorf("load with key %+v: err %v, want ErrInvalidKey", key, err)
		}
	}
}

func testLargeAggregate(t *testing.T, s es.Store) {
	const total, per = 300, 50
	key := newKey()
	var want []es.Event
	var last uint64
	for len(want) < total {
		evts := newEvents(key, len(want), per)
		last = mustAppend(t, s, key, last, evts)
		want = append(want, evts...)
	}
	got, gotLast := mustLoad(t, s, key)
	checkSame(t, key, "", got, want)
	if gotLast != last {
		t.Fatalf("last sequence %d, want %d", gotLast, last)
	}
}

// RunMulti runs the suite of MultiAppender.AppendAll: all-or-nothing across
// aggregates, one winner among concurrent claims, idempotent retries.
func RunMulti(t *testing.T, newStore func(t *testing.T) es.MultiAppender) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s es.MultiAppender)
	}{
		{"AppendsToEveryAggregate", testMultiRoundTrip},
		{"OneStaleWriteStoresNothing", testMultiStale},
		{"ConcurrentClaimsOneWinner", testMultiClaims},
		{"RetriedMultiAppendStoredOnce", testMultiRetry},
		{"RejectsDuplicateKeysAndEmptyWrites", testMultiInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func testMultiRoundTrip(t *testing.T, s es.MultiAppender) {
	a, b := newKey(), es.Key{Tenant: "t_" + ulid.Make().String(), ID: "em_" + ulid.Make().String()}
	first := newEvents(a, 0, 1)
	seqA := mustAppend(t, s, a, 0, first)
	wa, wb := newEvents(a, 1, 2), newEvents(b, 0, 1)
	seqs, err := s.AppendAll(ctxFor(t), []es.Write{{Key: a, Expected: seqA, Events: wa}, {Key: b, Events: wb}})
	if err != nil || len(seqs) != 2 {
		t.Fatalf("AppendAll = %v, %v", seqs, err)
	}
	gotA, lastA := mustLoad(t, s, a)
	checkSame(t, a, "", gotA, append(first, wa...))
	gotB, lastB := mustLoad(t, s, b)
	checkSame(t, b, "", gotB, wb)
	if seqs[0] != lastA || seqs[1] != lastB {
		t.Fatalf("AppendAll returned %v, the aggregates end at %d and %d", seqs, lastA, lastB)
	}
}

func testMultiStale(t *testing.T, s es.MultiAppender) {
	a, b := newKey(), newKey()
	taken := newEvents(b, 0, 1)
	seqB := mustAppend(t, s, b, 0, taken)
	// b is written already: a write that expects it empty must fail, and
	// must take a's events down with it.
	_, err := s.AppendAll(ctxFor(t), []es.Write{{Key: a, Events: newEvents(a, 0, 2)}, {Key: b, Events: newEvents(b, 5, 1)}})
	if !errors.Is(err, es.ErrConcurrency) {
		t.Fatalf("AppendAll over a taken aggregate: %v, want ErrConcurrency", err)
	}
	if got, last := mustLoad(t, s, a); len(got) != 0 || last != 0 {
		t.Fatalf("a holds %d events after a refused AppendAll", len(got))
	}
	got, last := mustLoad(t, s, b)
	checkSame(t, b, "", got, taken)
	if last != seqB {
		t.Fatalf("b moved to %d", last)
	}
}

// testMultiClaims races writers that each create their own aggregate and
// claim the same shared one: exactly one may win, and the losers' own
// aggregates must stay empty.
func testMultiClaims(t *testing.T, s es.MultiAppender) {
	const writers = 8
	claim := es.Key{Tenant: "t_" + ulid.Make().String(), ID: "em_" + ulid.Make().String()}
	own := make([]es.Key, writers)
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		own[w] = es.Key{Tenant: claim.Tenant, ID: "u_" + ulid.Make().String()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[w] = s.AppendAll(ctxFor(t), []es.Write{
				{Key: own[w], Events: newEvents(own[w], 0, 1)},
				{Key: claim, Events: newEvents(claim, w, 1)},
			})
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for w, err := range errs {
		got, _ := mustLoad(t, s, own[w])
		switch {
		case err == nil:
			winners++
			if len(got) != 1 {
				t.Fatalf("winner %d: its aggregate holds %d events", w, len(got))
			}
		case errors.Is(err, es.ErrConcurrency):
			if len(got) != 0 {
				t.Fatalf("loser %d: its aggregate holds %d events", w, len(got))
			}
		default:
			t.Fatalf("writer %d: %v, want success or ErrConcurrency", w, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d of %d claims succeeded, want exactly 1", winners, writers)
	}
	if got, _ := mustLoad(t, s, claim); len(got) != 1 {
		t.Fatalf("the claim holds %d events, want 1", len(got))
	}
}

func testMultiRetry(t *testing.T, s es.MultiAppender) {
	a, b := newKey(), newKey()
	writes := []es.Write{{Key: a, Events: newEvents(a, 0, 2)}, {Key: b, Events: newEvents(b, 0, 1)}}
	seqs, err := s.AppendAll(ctxFor(t), writes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		again, err := s.AppendAll(ctxFor(t), writes)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(seqs) {
			t.Fatalf("retry %d = %v, %v; want %v, nil (already stored)", i+1, again, err, seqs)
		}
	}
	gotA, _ := mustLoad(t, s, a)
	checkSame(t, a, "", gotA, writes[0].Events)
	gotB, _ := mustLoad(t, s, b)
	checkSame(t, b, "", gotB, writes[1].Events)
}

func testMultiInvalid(t *testing.T, s es.MultiAppender) {
	a := newKey()
	if _, err := s.AppendAll(ctxFor(t), []es.Write{{Key: a, Events: newEvents(a, 0, 1)}, {Key: a, Events: newEvents(a, 1, 1)}}); err == nil {
		t.Fatal("AppendAll with one key twice succeeded")
	}
	if _, err := s.AppendAll(ctxFor(t), []es.Write{{Key: a, Events: newEvents(a, 0, 1)}, {Key: newKey()}}); err == nil {
		t.Fatal("AppendAll with an empty write succeeded")
	}
	if _, err := s.AppendAll(ctxFor(t), []es.Write{{Key: es.Key{Tenant: "a.b", ID: "x"}, Events: newEvents(a, 0, 1)}}); !errors.Is(err, es.ErrInvalidKey) {
		t.Fatalf("AppendAll with an invalid key: %v, want ErrInvalidKey", err)
	}
	if got, _ := mustLoad(t, s, a); len(got) != 0 {
		t.Fatalf("refused AppendAll left %d events", len(got))
	}
}
