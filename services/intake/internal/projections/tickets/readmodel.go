package tickets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsdesk/opsdesk/libs/pgdb"

	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// ReadModel answers the read side's queries from intake.tickets and
// intake.ticket_events. Every statement filters on tenant_id first, and runs
// in a transaction with the tenant set, so row-level security holds even if
// a filter were forgotten.
type ReadModel struct {
	pool *pgxpool.Pool
}

// NewReadModel returns the read model over pool.
func NewReadModel(pool *pgxpool.Pool) *ReadModel { return &ReadModel{pool: pool} }

var _ query.ReadModel = (*ReadModel)(nil)

const ticketColumns = `id, number, type, status, title, description, impact, urgency, priority,
       requester, coalesce(requester_id, ''), channel, created_at, updated_at, version`

func scanTicket(row pgx.Row) (query.Ticket, error) {
	var t query.Ticket
	err := row.Scan(&t.ID, &t.Number, &t.Type, &t.Status, &t.Title, &t.Description, &t.Impact, &t.Urgency,
		&t.Priority, &t.Requester, &t.RequesterID, &t.Channel, &t.CreatedAt, &t.UpdatedAt, &t.Version)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

// refColumn says which unique column a ticket reference names: ids start
// with tk_, anything else is taken as a number.
func refColumn(ref string) string {
	if strings.HasPrefix(ref, ticket.IDPrefix) {
		return "id"
	}
	return "number"
}

// Ticket finds a ticket by id or number within the scope.
func (r *ReadModel) Ticket(ctx context.Context, s query.Scope, ref string) (query.Ticket, error) {
	var t query.Ticket
	err := pgdb.InTenantTx(ctx, r.pool, s.Tenant, func(tx pgx.Tx) error {
		var err error
		t, err = scanTicket(tx.QueryRow(ctx,
			`SELECT `+ticketColumns+` FROM intake.tickets WHERE tenant_id = $1 AND `+refColumn(ref)+` = $2
			   AND ($3::text = '' OR requester_id = $3)`,
			s.Tenant, ref, s.Requester))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return query.Ticket{}, fmt.Errorf("%w: %s", query.ErrNotFound, ref)
	}
	if err != nil {
		return query.Ticket{}, fmt.Errorf("get ticket %s: %w", ref, err)
	}
	return t, nil
}

// List returns one page of the scope's tickets, newest first, using the
// (tenant_id, created_at DESC, id DESC) index for keyset pagination (and
// the requester's own index for a requester).
func (r *ReadModel) List(ctx context.Context, s query.Scope, f query.Filter) (query.Page, error) {
	var (
		where = []string{"tenant_id = $1"}
		args  = []any{s.Tenant}
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if s.Requester != "" {
		where = append(where, "requester_id = "+arg(s.Requester))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.Type != "" {
		where = append(where, "type = "+arg(f.Type))
	}
	if f.Query != "" {
		where = append(where, "search @@ websearch_to_tsquery('english', "+arg(f.Query)+")")
	}
	if f.CreatedAfter != nil {
		where = append(where, "created_at >= "+arg(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		where = append(where, "created_at < "+arg(*f.CreatedBefore))
	}
	if f.After != nil {
		where = append(where, "(created_at, id) < ("+arg(f.After.CreatedAt)+", "+arg(f.After.ID)+")")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = query.DefaultLimit
	}
	sql := `SELECT ` + ticketColumns + ` FROM intake.tickets WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, id DESC LIMIT ` + arg(limit+1) // one more tells whether a next page exists
	var items []query.Ticket
	err := pgdb.InTenantTx(ctx, r.pool, s.Tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Ticket, error) { return scanTicket(row) })
		return err
	})
	if err != nil {
		return query.Page{}, fmt.Errorf("list tickets: %w", err)
	}
	page := query.Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := page.Items[limit-1]
		page.Next = &query.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return page, nil
}

// Events returns the ticket's history, oldest first.
func (r *ReadModel) Events(ctx context.Context, s query.Scope, ref string) ([]query.Event, error) {
	var events []query.Event
	err := pgdb.InTenantTx(ctx, r.pool, s.Tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT e.event_id, e.type, e.time, e.actor, e.seq, e.version, e.data, e.trace_id
  FROM intake.ticket_events e
  JOIN intake.tickets t ON t.tenant_id = e.tenant_id AND t.id = e.ticket_id
 WHERE e.tenant_id = $1 AND t.`+refColumn(ref)+` = $2 AND ($3::text = '' OR t.requester_id = $3)
 ORDER BY e.seq`, s.Tenant, ref, s.Requester)
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Event, error) {
			var e query.Event
			err := row.Scan(&e.ID, &e.Type, &e.Time, &e.Actor, &e.Sequence, &e.Version, &e.Data, &e.TraceID)
			e.Time = e.Time.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ticket %s events: %w", ref, err)
	}
	if len(events) == 0 { // every ticket has at least its created event
		return nil, fmt.Errorf("%w: %s", query.ErrNotFound, ref)
	}
	return events, nil
}
