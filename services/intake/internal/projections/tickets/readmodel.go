package tickets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// ReadModel answers the read side's queries from intake.tickets and
// intake.ticket_events. Every statement filters on tenant_id first.
type ReadModel struct {
	pool *pgxpool.Pool
}

// NewReadModel returns the read model over pool.
func NewReadModel(pool *pgxpool.Pool) *ReadModel { return &ReadModel{pool: pool} }

var _ query.ReadModel = (*ReadModel)(nil)

const ticketColumns = `id, number, type, status, title, description, impact, urgency, priority,
       requester, channel, created_at, updated_at, version`

func scanTicket(row pgx.Row) (query.Ticket, error) {
	var t query.Ticket
	err := row.Scan(&t.ID, &t.Number, &t.Type, &t.Status, &t.Title, &t.Description, &t.Impact, &t.Urgency,
		&t.Priority, &t.Requester, &t.Channel, &t.CreatedAt, &t.UpdatedAt, &t.Version)
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

// Ticket finds a ticket by id or number within the tenant.
func (r *ReadModel) Ticket(ctx context.Context, tenant, ref string) (query.Ticket, error) {
	t, err := scanTicket(r.pool.QueryRow(ctx,
		`SELECT `+ticketColumns+` FROM intake.tickets WHERE tenant_id = $1 AND `+refColumn(ref)+` = $2`,
		tenant, ref))
	if errors.Is(err, pgx.ErrNoRows) {
		return query.Ticket{}, fmt.Errorf("%w: %s", query.ErrNotFound, ref)
	}
	if err != nil {
		return query.Ticket{}, fmt.Errorf("get ticket %s: %w", ref, err)
	}
	return t, nil
}

// List returns one page of the tenant's tickets, newest first, using the
// (tenant_id, created_at DESC, id DESC) index for keyset pagination.
func (r *ReadModel) List(ctx context.Context, tenant string, f query.Filter) (query.Page, error) {
	var (
		where = []string{"tenant_id = $1"}
		args  = []any{tenant}
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
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
	rows, err := r.pool.Query(ctx, sql, args...)
	if err != nil {
		return query.Page{}, fmt.Errorf("list tickets: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Ticket, error) { return scanTicket(row) })
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
func (r *ReadModel) Events(ctx context.Context, tenant, ref string) ([]query.Event, error) {
	id := "$2"
	if refColumn(ref) == "number" {
		id = "(SELECT id FROM intake.tickets WHERE tenant_id = $1 AND number = $2)"
	}
	rows, err := r.pool.Query(ctx, `
SELECT event_id, type, time, actor, seq, version, data, trace_id
  FROM intake.ticket_events
 WHERE tenant_id = $1 AND ticket_id = `+id+`
 ORDER BY seq`, tenant, ref)
	if err != nil {
		return nil, fmt.Errorf("ticket %s events: %w", ref, err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Event, error) {
		var e query.Event
		err := row.Scan(&e.ID, &e.Type, &e.Time, &e.Actor, &e.Sequence, &e.Version, &e.Data, &e.TraceID)
		e.Time = e.Time.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("ticket %s events: %w", ref, err)
	}
	if len(events) == 0 { // every ticket has at least its created event
		return nil, fmt.Errorf("%w: %s", query.ErrNotFound, ref)
	}
	return events, nil
}
