package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/pgdb"
)

// CheckpointTable is the table, in the service's schema, that holds each
// projection's checkpoint: the stream sequence of the last event applied.
const CheckpointTable = "projection_checkpoints"

const (
	// pollInterval is how often the cross-process WaitFor reads the
	// checkpoint.
	pollInterval = 20 * time.Millisecond
	// recheckInterval is how often Runner.WaitFor of the replica that is
	// applying events also reads the checkpoint table, in case another
	// replica took over; progress made here wakes it at once.
	recheckInterval = 500 * time.Millisecond
)

type queries struct {
	schema, table         string
	lock, save, insert    string
	position, createTab   string
	lockStream, setStream string
}

func newQueries(schema string) queries {
	t := pgx.Identifier{schema, CheckpointTable}.Sanitize()
	return queries{
		schema:   schema,
		table:    t,
		lock:     "select last_seq from " + t + " where projection = $1 for update",
		save:     "update " + t + " set last_seq = $2, updated_at = now() where projection = $1",
		insert:   "insert into " + t + " (projection, stream) values ($1, $2) on conflict (projection) do nothing",
		position: "select last_seq from " + t + " where projection = $1",
		// stream holds the stream's name and, once checked, its incarnation.
		lockStream: "select stream, last_seq from " + t + " where projection = $1 for update",
		setStream:  "update " + t + " set stream = $2 where projection = $1",
		createTab: "create table if not exists " + t + ` (
			projection text primary key,
			stream     text not null,
			last_seq   bigint not null default 0 check (last_seq >= 0),
			updated_at timestamptz not null default now()
		)`,
	}
}

// ensureStore creates the schema, the checkpoint table and this
// projection's row if missing, under an advisory lock so that replicas
// starting together do not trip over each other's CREATE.
func (r *Runner) ensureStore(ctx context.Context) error {
	r.mu.Lock()
	done := r.storeSet
	r.mu.Unlock()
	if done {
		return nil
	}
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", pgdb.LockKey("projection:"+r.sql.schema)); err != nil {
			return err
		}
		// Look before CREATE SCHEMA: it needs the CREATE privilege on the
		// database even when the schema exists.
		var exists bool
		if err := tx.QueryRow(ctx, "select exists (select 1 from pg_namespace where nspname = $1)", r.sql.schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, "create schema "+pgx.Identifier{r.sql.schema}.Sanitize()); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, r.sql.createTab); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, r.sql.insert, r.name, r.stream)
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint table %s: %w", r.sql.table, err)
	}
	r.mu.Lock()
	r.storeSet = true
	r.mu.Unlock()
	return nil
}

// checkStream makes sure the checkpoint belongs to this stream, not to an
// earlier stream of the same name. A stream deleted and created again (a
// development reset, a restore onto a new cluster) starts its sequences
// over, and a checkpoint from the old one would skip the new events for
// ever. The checkpoint row remembers the stream as <name>@<created>; when it
// names another incarnation, or is past the stream's end, the read model is
// reset and replayed from the start, as Rebuild would.
func (r *Runner) checkStream(ctx context.Context, str jetstream.Stream) error {
	info, err := str.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.stream, err)
	}
	incarnation := r.stream + "@" + info.Created.UTC().Format(time.RFC3339Nano)
	return pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		var stored string
		var last int64
		if err := tx.QueryRow(ctx, r.sql.lockStream, r.name).Scan(&stored, &last); err != nil {
			return fmt.Errorf("checkpoint of %s: %w", r.name, err)
		}
		switch {
		case stored == incarnation:
			return nil
		case (stored == r.stream || last == 0) && uint64(last) <= info.State.LastSeq:
			// First start, or a checkpoint from before incarnations were
			// recorded that is consistent with the stream: adopt it.
		default:
			r.log.WarnContext(ctx, "stream was recreated since the read model was built; rebuilding it",
				"checkpoint_stream", stored, "checkpoint", last, "stream", incarnation, "stream_last_seq", info.State.LastSeq)
			if err := r.p.Reset(ctx, tx); err != nil {
				return fmt.Errorf("reset read model: %w", err)
			}
			if err := r.saveCheckpoint(ctx, tx, 0); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, r.sql.setStream, r.name, incarnation)
		return err
	})
}

// lockCheckpoint reads the checkpoint and locks its row until tx ends, so
// replicas of one projection apply batches one after the other.
func (r *Runner) lockCheckpoint(ctx context.Context, tx pgx.Tx) (uint64, error) {
	var last int64
	err := tx.QueryRow(ctx, r.sql.lock, r.name).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) { // the row was deleted by hand
		if _, err := tx.Exec(ctx, r.sql.insert, r.name, r.stream); err != nil {
			return 0, fmt.Errorf("create checkpoint: %w", err)
		}
		err = tx.QueryRow(ctx, r.sql.lock, r.name).Scan(&last)
	}
	if err != nil {
		return 0, fmt.Errorf("lock checkpoint: %w", err)
	}
	return uint64(last), nil
}

func (r *Runner) saveCheckpoint(ctx context.Context, tx pgx.Tx, seq uint64) error {
	if _, err := tx.Exec(ctx, r.sql.save, r.name, int64(seq)); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// Position returns the projection's checkpoint: the stream sequence of the
// last event applied (0 before the first).
func (r *Runner) Position(ctx context.Context) (uint64, error) {
	pos, err := readPosition(ctx, r.pool, r.sql.position, r.name)
	if err != nil {
		return 0, fmt.Errorf("projection %s: position: %w", r.name, err)
	}
	return pos, nil
}

func readPosition(ctx context.Context, pool *pgxpool.Pool, query, name string) (uint64, error) {
	var last int64
	err := pool.QueryRow(ctx, query, name).Scan(&last)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"):
		return 0, nil // table or schema not created yet: the runner has not started
	case err != nil:
		return 0, err
	}
	return uint64(last), nil
}

// WaitFor returns nil once the projection has applied the event at stream
// sequence seq (its checkpoint is >= seq), or ctx's error when ctx ends
// first. It backs read-your-writes: a command returns the sequence it
// appended and a query waits for it, bounded by its context. On the replica
// that is applying events, a committed batch wakes the waiters at once; on
// the others (and when Run is not running) WaitFor polls the checkpoint
// table every 20 ms.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	readDB := true
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		pos, changed := r.prog.snapshot()
		if pos >= seq {
			return nil
		}
		// Only the replica JetStream delivers to (pinned) sees progress as
		// it happens; the others learn it from the table.
		active := r.running.Load() && r.pinned.Load()
		if readDB || !active {
			if pos, err := r.Position(ctx); err == nil && pos >= seq {
				return nil
			}
		}
		interval := recheckInterval
		if !active {
			interval = pollInterval // nothing here will wake us
		}
		if timer == nil {
			timer = time.NewTimer(interval)
		} else {
			timer.Reset(interval)
		}
		readDB = false
		select {
		case <-changed:
		case <-timer.C:
			readDB = true
		case <-ctx.Done():
			return fmt.Errorf("projection %s: waiting for seq %d (at %d): %w", r.name, seq, pos, ctx.Err())
		}
	}
}

// WaitFor is Runner.WaitFor for a process that does not run the projection
// (another replica or service does): it polls the checkpoint of projection
// in schema every 20 ms until it reaches seq or ctx ends.
func WaitFor(ctx context.Context, pool *pgxpool.Pool, schema, projection string, seq uint64) error {
	if !pgdb.ValidSchema(schema) {
		return fmt.Errorf("projection %s: invalid schema name %q", projection, schema)
	}
	query := newQueries(schema).position
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var (
		lastErr error
		at      uint64 // last position read
	)
	for {
		pos, err := readPosition(ctx, pool, query, projection)
		if err == nil && pos >= seq {
			return nil
		}
		switch {
		case err == nil:
			at, lastErr = pos, nil
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("projection %s: waiting for seq %d: %w (last error: %v)", projection, seq, ctx.Err(), lastErr)
			}
			return fmt.Errorf("projection %s: waiting for seq %d (at %d): %w", projection, seq, at, ctx.Err())
		}
	}
}

// progress is the checkpoint as this process last wrote or read it, with a
// broadcast to wake waiters when it changes.
type progress struct {
	mu      sync.Mutex
	pos     uint64
	changed chan struct{}
}

func newProgress() *progress { return &progress{changed: make(chan struct{})} }

func (p *progress) set(pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos == p.pos {
		return
	}
	p.pos = pos
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *progress) get() uint64 {
	pos, _ := p.snapshot()
	return pos
}

func (p *progress) snapshot() (uint64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos, p.changed
}
