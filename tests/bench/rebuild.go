package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/services/intake"
)

// RebuildResult compares replaying the TICKETS stream into an empty read
// model with writing the same rows straight into identical tables.
type RebuildResult struct {
	Events          int     `json:"events"`
	GenerateSeconds float64 `json:"generate_seconds"`
	// Seconds is from the rebuild command until the checkpoint reached the
	// last event; EventsPerSecond = Events / Seconds.
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	// Baselines: the rows the projection writes for each event (one
	// tickets row, one ticket_events row), written with COPY, and with
	// batched INSERTs in transactions of BatchSize events. Rows per second
	// count events (each is two table rows), to compare with the rebuild.
	Copy      Baseline `json:"copy"`
	Insert    Baseline `json:"insert"`
	BatchSize int      `json:"insert_batch_size"`
	// CopyNoSearch is Copy into tickets without the generated full-text
	// column and its GIN index: what that column costs a rebuild.
	CopyNoSearch Baseline `json:"copy_without_search"`
}

// Baseline is one raw write of the rebuild's rows.
type Baseline struct {
	Seconds       float64 `json:"seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
}

// eventRow is what the projection stores for one TicketCreated.
type eventRow struct {
	seq    int64
	tenant string
	e      es.Event
	t      ticketv1.TicketCreated
}

// rebuildPhase fills a TICKETS stream with n TicketCreated events published
// directly with intake's envelope, then runs intake's rebuild (reset the
// read model, replay from the first event) and times it until the
// checkpoint reaches the last event. Reading the stream does not depend on
// the durability mode, so it runs once, in the default mode.
func rebuildPhase(ctx context.Context, cfg Config, batch int) (RebuildResult, error) {
	res := RebuildResult{Events: cfg.RebuildEvents, BatchSize: batch}
	env, err := newIntake(ctx, cfg, durabilityDefault, false)
	if err != nil {
		return res, err
	}
	defer env.close()

	rows := make([]eventRow, cfg.RebuildEvents)
	js, err := jetstream.New(env.nc, jetstream.WithPublishAsyncMaxPending(2*publishWindow))
	if err != nil {
		return res, err
	}
	start := time.Now()
	err = publishEvents(ctx, js, cfg.RebuildEvents, func(i int, m *nats.Msg) {
		e, derr := es.DecodeHeaders(m.Subject, es.Header(m.Header), m.Data, uint64(i+1))
		var t ticketv1.TicketCreated
		if derr == nil {
			derr = json.Unmarshal(m.Data, &t)
		}
		if derr != nil {
			panic(fmt.Sprintf("bench: decode own event: %v", derr)) // a bug in this program
		}
		rows[i] = eventRow{seq: int64(i + 1), tenant: e.Tenant, e: e, t: t}
	})
	if err != nil {
		return res, err
	}
	res.GenerateSeconds = time.Since(start).Seconds()
	last, err := env.lastSeq(ctx)
	if err != nil {
		return res, err
	}
	if last != uint64(cfg.RebuildEvents) {
		return res, fmt.Errorf("rebuild: stream holds %d events, want %d", last, cfg.RebuildEvents)
	}

	// The rebuild: reset (new consumer from the first event, empty read
	// model, checkpoint 0), then the projection replays.
	start = time.Now()
	if err := intake.Rebuild(ctx, intake.Config{}, env.deps); err != nil {
		return res, err
	}
	env.startProjection()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := projection.WaitFor(wctx, env.db.pool, intake.Schema, intake.TicketsProjection, last); err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	elapsed := time.Since(start)
	res.Seconds = elapsed.Seconds()
	res.EventsPerSecond = float64(cfg.RebuildEvents) / elapsed.Seconds()

	conn, err := env.db.plainConn(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.Background())
	var count int // as the tables' owner: across every tenant
	if err := conn.QueryRow(ctx, "select count(*) from intake.tickets").Scan(&count); err != nil {
		return res, fmt.Errorf("rebuild: count tickets: %w", err)
	}
	if count != cfg.RebuildEvents {
		return res, fmt.Errorf("rebuild: read model holds %d tickets, want %d", count, cfg.RebuildEvents)
	}

	if res.Copy, err = copyBaseline(ctx, conn, rows); err != nil {
		return res, err
	}
	if res.Insert, err = insertBaseline(ctx, conn, rows, batch); err != nil {
		return res, err
	}
	if _, err := conn.Exec(ctx, `alter table bench_raw.tickets drop column search`); err != nil {
		return res, fmt.Errorf("drop search column: %w", err)
	}
	if res.CopyNoSearch, err = copyBaseline(ctx, conn, rows); err != nil {
		return res, err
	}
	return res, nil
}

// baselineTables creates (or empties) bench_raw.tickets and
// bench_raw.ticket_events, copies of intake's tables with the same
// columns, generated search column, constraints and indexes.
func baselineTables(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `
create schema if not exists bench_raw;
create table if not exists bench_raw.tickets (like intake.tickets including all);
create table if not exists bench_raw.ticket_events (like intake.ticket_events including all);
truncate bench_raw.tickets, bench_raw.ticket_events;`)
	if err != nil {
		return fmt.Errorf("baseline tables: %w", err)
	}
	return nil
}

var (
	ticketCols = []string{"tenant_id", "id", "number", "type", "status", "title", "description", "impact", "urgency",
		"priority", "requester", "channel", "created_at", "updated_at", "version", "last_seq"}
	eventCols = []string{"seq", "tenant_id", "ticket_id", "version", "event_id", "type", "time", "actor", "data", "trace_id"}
)

func ticketValues(r eventRow) []any {
	t := r.t
	return []any{r.tenant, t.TicketID, t.Number, t.Type, "new", t.Title, t.Description, t.Impact, t.Urgency,
		t.Priority, t.Requester, t.Channel, t.CreatedAt, t.CreatedAt, int64(1), r.seq}
}

func eventValues(r eventRow) []any {
	return []any{r.seq, r.tenant, r.t.TicketID, int64(1), r.e.ID, r.e.Type, r.e.Time, r.e.Actor,
		json.RawMessage(r.e.Data), es.TraceID(r.e.TraceParent)}
}

// copyBaseline writes every row with COPY, both tables in one transaction:
// the fastest way into Postgres.
func copyBaseline(ctx context.Context, conn *pgx.Conn, rows []eventRow) (Baseline, error) {
	if err := baselineTables(ctx, conn); err != nil {
		return Baseline{}, err
	}
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Baseline{}, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bench_raw", "tickets"}, ticketCols,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return ticketValues(rows[i]), nil })); err != nil {
		return Baseline{}, fmt.Errorf("copy tickets: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bench_raw", "ticket_events"}, eventCols,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return eventValues(rows[i]), nil })); err != nil {
		return Baseline{}, fmt.Errorf("copy ticket_events: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Baseline{}, fmt.Errorf("copy commit: %w", err)
	}
	el := time.Since(start)
	return Baseline{Seconds: el.Seconds(), RowsPerSecond: float64(len(rows)) / el.Seconds()}, nil
}

// insertBaseline writes the rows as plain INSERTs sent in pipelined
// batches (pgx.Batch), one transaction per batch events: the projection's
// work without the stream, the consumer, decoding and checkpointing.
func insertBaseline(ctx context.Context, conn *pgx.Conn, rows []eventRow, batch int) (Baseline, error) {
	if err := baselineTables(ctx, conn); err != nil {
		return Baseline{}, err
	}
	insTicket := `insert into bench_raw.tickets (` + strings.Join(ticketCols, ", ") + `) values (` + params(len(ticketCols)) + `)`
	insEvent := `insert into bench_raw.ticket_events (` + strings.Join(eventCols, ", ") + `) values (` + params(len(eventCols)) + `)`
	start := time.Now()
	for from := 0; from < len(rows); from += batch {
		b := &pgx.Batch{}
		b.Queue("begin")
		for _, r := range rows[from:min(from+batch, len(rows))] {
			b.Queue(insTicket, ticketValues(r)...)
			b.Queue(insEvent, eventValues(r)...)
		}
		b.Queue("commit")
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return Baseline{}, fmt.Errorf("insert batch at %d: %w", from, err)
		}
	}
	el := time.Since(start)
	return Baseline{Seconds: el.Seconds(), RowsPerSecond: float64(len(rows)) / el.Seconds()}, nil
}

func params(n int) string {
	out := ""
	for i := 1; i <= n; i++ {
		if i > 1 {
			out += ", "
		}
		out += fmt.Sprintf("$%d", i)
	}
	return out
}
