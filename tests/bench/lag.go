package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/services/intake"
)

// E2EResult is the end-to-end phase: tickets created at a fixed rate, and
// for each acknowledged one how long after its 201 the read model had it.
type E2EResult struct {
	// Rate is the rate measured at, tickets/s. Sustainable is false when
	// intake could not keep up with RequestedRate (Unsustained holds that
	// attempt) and the figure was measured at half the peak instead.
	Rate          float64     `json:"rate"`
	RequestedRate float64     `json:"requested_rate"`
	Sustainable   bool        `json:"sustainable"`
	Unsustained   *Throughput `json:"unsustained_attempt,omitempty"`
	Load          Throughput  `json:"load"`
	Lag           Latency     `json:"lag"`
	VisibleBefore int         `json:"visible_before_response"` // committed before the client had its 201 (lag 0)
	// MaxLagBySecond is the worst lag of the tickets acknowledged in each
	// second of the phase, in ms: shows whether the tail is steady or spikes.
	MaxLagBySecond  []float64 `json:"max_lag_by_second_ms"`
	CheckpointMoves int       `json:"checkpoint_commits"` // projection transactions seen
}

// checkpointWatcher timestamps every commit of the projection's checkpoint.
// A trigger on the checkpoint table NOTIFYs the new sequence; Postgres
// delivers a notification when the transaction commits, so its arrival time
// is the commit as a client sees it (within the listener's wake-up time, far
// below a millisecond), with no polling.
type checkpointWatcher struct {
	conn   *pgx.Conn
	cancel context.CancelFunc
	done   chan error

	mu    sync.Mutex
	seqs  []uint64
	times []time.Time
}

const notifyChannel = "opsdesk_bench_checkpoint"

// installCheckpointTrigger adds the NOTIFY trigger to intake's checkpoint
// table (in the benchmark's throwaway database only). The projection must
// have run once, so the table exists.
func installCheckpointTrigger(ctx context.Context, conn *pgx.Conn) error {
	table := pgx.Identifier{intake.Schema, projection.CheckpointTable}.Sanitize()
	_, err := conn.Exec(ctx, `
create or replace function public.opsdesk_bench_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('`+notifyChannel+`', new.last_seq::text);
    return new;
end $$;
drop trigger if exists opsdesk_bench_notify on `+table+`;
create trigger opsdesk_bench_notify after update on `+table+`
    for each row execute function public.opsdesk_bench_notify();`)
	if err != nil {
		return fmt.Errorf("install checkpoint trigger: %w", err)
	}
	return nil
}

func startWatcher(ctx context.Context, db *database) (*checkpointWatcher, error) {
	conn, err := db.plainConn(ctx)
	if err != nil {
		return nil, err
	}
	if err := installCheckpointTrigger(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if _, err := conn.Exec(ctx, "listen "+notifyChannel); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("listen: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &checkpointWatcher{conn: conn, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- w.loop(wctx) }()
	return w, nil
}

func (w *checkpointWatcher) loop(ctx context.Context) error {
	for {
		n, err := w.conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		at := time.Now()
		seq, err := strconv.ParseUint(n.Payload, 10, 64)
		if err != nil {
			return fmt.Errorf("notification %q: %w", n.Payload, err)
		}
		w.mu.Lock()
		w.seqs = append(w.seqs, seq)
		w.times = append(w.times, at)
		w.mu.Unlock()
	}
}

// reached reports whether a commit covering seq has been seen.
func (w *checkpointWatcher) reached(seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seqs) > 0 && w.seqs[len(w.seqs)-1] >= seq
}

// visibleAt is when the first checkpoint commit covering seq was seen.
func (w *checkpointWatcher) visibleAt(seq uint64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Checkpoints only grow, and notifications arrive in commit order.
	i := sort.Search(len(w.seqs), func(i int) bool { return w.seqs[i] >= seq })
	if i == len(w.seqs) {
		return time.Time{}, false
	}
	return w.times[i], true
}

func (w *checkpointWatcher) close() error {
	w.cancel()
	err := <-w.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.conn.Close(ctx)
	return err
}

// e2ePhase creates tickets at rate for d (open loop) and measures, for each
// 201, the time from the client receiving it to the checkpoint covering its
// stream sequence committing: when a read with the consistency token would
// first succeed.
func e2ePhase(ctx context.Context, env *intakeEnv, rate float64, d time.Duration, maxConns int) (E2EResult, error) {
	res := E2EResult{Rate: rate}
	w, err := startWatcher(ctx, env.db)
	if err != nil {
		return res, err
	}
	defer w.close()

	var (
		mu   sync.Mutex
		acks []created
	)
	l := newHTTPLoad(env.baseURL, maxConns)
	defer l.close()
	l.onCreated = func(c created) {
		mu.Lock()
		acks = append(acks, c)
		mu.Unlock()
	}
	res.Load = l.openLoop(ctx, rate, d)
	if err := errIf(res.Load, "end to end"); err != nil {
		return res, err
	}
	var maxSeq uint64
	for _, a := range acks {
		maxSeq = max(maxSeq, a.seq)
	}
	// Wait for the projection to cover every acknowledged ticket.
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !w.reached(maxSeq) {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return res, errors.New("end to end: the projection did not reach the last acknowledged ticket within 2 minutes")
		}
	}
	lags := make([]time.Duration, 0, len(acks))
	var first time.Time
	for _, a := range acks {
		if first.IsZero() || a.at.Before(first) {
			first = a.at
		}
	}
	for _, a := range acks {
		vis, ok := w.visibleAt(a.seq)
		if !ok {
			return res, fmt.Errorf("end to end: no checkpoint commit covers seq %d", a.seq)
		}
		lag := vis.Sub(a.at)
		if lag < 0 {
			res.VisibleBefore++
			lag = 0
		}
		lags = append(lags, lag)
		sec := int(a.at.Sub(first) / time.Second)
		for len(res.MaxLagBySecond) <= sec {
			res.MaxLagBySecond = append(res.MaxLagBySecond, 0)
		}
		res.MaxLagBySecond[sec] = max(res.MaxLagBySecond[sec], ms(lag))
	}
	res.Lag = summarise(lags)
	w.mu.Lock()
	res.CheckpointMoves = len(w.seqs)
	w.mu.Unlock()
	return res, nil
}

// keptUp reports whether an open-loop phase was served at its rate: nearly
// every request done within the phase, and the median not queueing.
func keptUp(t Throughput) bool {
	return t.PerSecond >= 0.95*t.TargetRate && t.Latency.P50 < 100
}
