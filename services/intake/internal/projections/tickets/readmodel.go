package tickets

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
       requester, coalesce(requester_id, ''), channel, created_at, updated_at, version,
       category, tags, config_items, watchers, custom_fields, coalesce(assignee_id, ''), pending_reason,
       resolution_code, resolution_note, resolved_at, auto_close_at, reopen_until, closed_at, first_response_at,
       merged_into, follow_up_of, satisfaction, comment_count, attachment_count`

func scanTicket(row pgx.Row) (query.Ticket, error) {
	var (
		t            query.Ticket
		satisfaction *int16
	)
	err := row.Scan(&t.ID, &t.Number, &t.Type, &t.Status, &t.Title, &t.Description, &t.Impact, &t.Urgency,
		&t.Priority, &t.Requester, &t.RequesterID, &t.Channel, &t.CreatedAt, &t.UpdatedAt, &t.Version,
		&t.Category, &t.Tags, &t.ConfigItems, &t.Watchers, &t.CustomFields, &t.AssigneeID, &t.PendingReason,
		&t.ResolutionCode, &t.ResolutionNote, &t.ResolvedAt, &t.AutoCloseAt, &t.ReopenUntil, &t.ClosedAt,
		&t.FirstResponseAt, &t.MergedInto, &t.FollowUpOf, &satisfaction, &t.Comments, &t.Attachments)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	for _, p := range []**time.Time{&t.ResolvedAt, &t.AutoCloseAt, &t.ReopenUntil, &t.ClosedAt, &t.FirstResponseAt} {
		if *p != nil {
			u := (*p).UTC()
			*p = &u
		}
	}
	if satisfaction != nil {
		v := int(*satisfaction)
		t.Satisfaction = &v
	}
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
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT kind, target_id, target_number, created_at FROM intake.ticket_links
			WHERE tenant_id = $1 AND ticket_id = $2 ORDER BY created_at, kind, target_id`, s.Tenant, t.ID)
		if err != nil {
			return err
		}
		t.Links, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Link, error) {
			var l query.Link
			err := row.Scan(&l.Kind, &l.TargetID, &l.TargetNumber, &l.CreatedAt)
			l.CreatedAt = l.CreatedAt.UTC()
			return l, err
		})
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
	if f.Priority != "" {
		where = append(where, "priority = "+arg(f.Priority))
	}
	if f.Requester != "" {
		p := arg(f.Requester)
		where = append(where, "(requester_id = "+p+" OR lower(requester) = lower("+p+"))")
	}
	if f.Assignee != "" {
		where = append(where, "assignee_id = "+arg(f.Assignee))
	}
	if len(f.Tags) > 0 {
		where = append(where, "tags @> "+arg(f.Tags)+"::text[]")
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
SELECT e.event_id, e.type, e.time, e.actor, e.seq, e.version, e.data, e.trace_id, e.internal
  FROM intake.ticket_events e
  JOIN intake.tickets t ON t.tenant_id = e.tenant_id AND t.id = e.ticket_id
 WHERE e.tenant_id = $1 AND t.`+refColumn(ref)+` = $2 AND ($3::text = '' OR (t.requester_id = $3 AND NOT e.internal))
 ORDER BY e.seq`, s.Tenant, ref, s.Requester)
		if err != nil {
			return err
		}
		events, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Event, error) {
			var e query.Event
			err := row.Scan(&e.ID, &e.Type, &e.Time, &e.Actor, &e.Sequence, &e.Version, &e.Data, &e.TraceID, &e.Internal)
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

// Counts returns the scope's tickets per status; every status is present.
func (r *ReadModel) Counts(ctx context.Context, s query.Scope) (query.Counts, error) {
	out := query.Counts{}
	for _, st := range []string{ticket.StatusNew, ticket.StatusOpen, ticket.StatusInProgress, ticket.StatusPending,
		ticket.StatusResolved, ticket.StatusClosed, ticket.StatusCancelled} {
		out[st] = 0
	}
	err := pgdb.InTenantTx(ctx, r.pool, s.Tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT status, count(*) FROM intake.tickets
			WHERE tenant_id = $1 AND ($2::text = '' OR requester_id = $2) GROUP BY status`, s.Tenant, s.Requester)
		if err != nil {
			return err
		}
		var st string
		var n int
		_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error { out[st] = n; return nil })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("count tickets: %w", err)
	}
	return out, nil
}

// inTicket runs fn for the ticket ref within the scope, with its id;
// ErrNotFound when the scope does not see it.
func (r *ReadModel) inTicket(ctx context.Context, s query.Scope, ref string, fn func(tx pgx.Tx, id string) error) error {
	err := pgdb.InTenantTx(ctx, r.pool, s.Tenant, func(tx pgx.Tx) error {
		var id string
		if err := tx.QueryRow(ctx, `SELECT id FROM intake.tickets WHERE tenant_id = $1 AND `+refColumn(ref)+` = $2
			AND ($3::text = '' OR requester_id = $3)`, s.Tenant, ref, s.Requester).Scan(&id); err != nil {
			return err
		}
		return fn(tx, id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", query.ErrNotFound, ref)
	}
	return err
}

// Comments returns a ticket's comments, oldest first; requesters see the
// public ones.
func (r *ReadModel) Comments(ctx context.Context, s query.Scope, ref string) ([]query.Comment, error) {
	var out []query.Comment
	err := r.inTicket(ctx, s, ref, func(tx pgx.Tx, id string) error {
		rows, err := tx.Query(ctx, `SELECT id, body, author_id, author, author_role, channel, internal, created_at
			FROM intake.ticket_comments WHERE tenant_id = $1 AND ticket_id = $2 AND ($3 OR NOT internal) ORDER BY seq`,
			s.Tenant, id, s.Requester == "")
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Comment, error) {
			var c query.Comment
			err := row.Scan(&c.ID, &c.Body, &c.AuthorID, &c.Author, &c.AuthorRole, &c.Channel, &c.Internal, &c.CreatedAt)
			c.CreatedAt = c.CreatedAt.UTC()
			return c, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ticket %s comments: %w", ref, err)
	}
	return out, nil
}

const attachmentColumns = `id, blob_id, filename, content_type, sha256, comment_id, size, internal, inline, created_at`

func scanAttachment(row pgx.Row) (query.Attachment, error) {
	var a query.Attachment
	err := row.Scan(&a.ID, &a.BlobID, &a.Filename, &a.ContentType, &a.SHA256, &a.CommentID, &a.Size, &a.Internal,
		&a.Inline, &a.CreatedAt)
	a.CreatedAt = a.CreatedAt.UTC()
	return a, err
}

// Attachments returns a ticket's attachments, oldest first; requesters see
// the public ones.
func (r *ReadModel) Attachments(ctx context.Context, s query.Scope, ref string) ([]query.Attachment, error) {
	var out []query.Attachment
	err := r.inTicket(ctx, s, ref, func(tx pgx.Tx, id string) error {
		rows, err := tx.Query(ctx, `SELECT `+attachmentColumns+` FROM intake.ticket_attachments
			WHERE tenant_id = $1 AND ticket_id = $2 AND ($3 OR NOT internal) ORDER BY seq`, s.Tenant, id, s.Requester == "")
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.Attachment, error) { return scanAttachment(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ticket %s attachments: %w", ref, err)
	}
	return out, nil
}

// Attachment returns one attachment of a ticket in scope.
func (r *ReadModel) Attachment(ctx context.Context, s query.Scope, ref, attachmentID string) (query.Attachment, error) {
	var a query.Attachment
	err := r.inTicket(ctx, s, ref, func(tx pgx.Tx, id string) error {
		var err error
		a, err = scanAttachment(tx.QueryRow(ctx, `SELECT `+attachmentColumns+` FROM intake.ticket_attachments
			WHERE tenant_id = $1 AND ticket_id = $2 AND id = $3 AND ($4 OR NOT internal)`, s.Tenant, id, attachmentID, s.Requester == ""))
		return err
	})
	if err != nil {
		if errors.Is(err, query.ErrNotFound) {
			return query.Attachment{}, err
		}
		return query.Attachment{}, fmt.Errorf("ticket %s attachment %s: %w", ref, attachmentID, err)
	}
	return a, nil
}

// TicketID resolves a ticket reference (id or number) of the tenant to its
// id, for the command side; ErrNotFound.
func (r *ReadModel) TicketID(ctx context.Context, tenant, ref string) (string, error) {
	if strings.HasPrefix(ref, ticket.IDPrefix) {
		return ref, nil
	}
	var id string
	err := r.inTicket(ctx, query.Scope{Tenant: tenant}, ref, func(_ pgx.Tx, got string) error { id = got; return nil })
	if errors.Is(err, query.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", ticket.ErrNotFound, ref)
	}
	return id, err
}

// TicketByMessageID returns the ticket that holds the first of ids (mail
// Message-IDs) it knows, or "" when none.
func (r *ReadModel) TicketByMessageID(ctx context.Context, tenant string, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	var id string
	err := pgdb.InTenantTx(ctx, r.pool, tenant, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT m.ticket_id FROM unnest($2::text[]) WITH ORDINALITY AS i(message_id, n)
			JOIN intake.message_ids m ON m.tenant_id = $1 AND m.message_id = i.message_id ORDER BY i.n LIMIT 1`,
			tenant, ids).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("thread lookup: %w", err)
	}
	return id, nil
}

// Unidentified returns up to 1000 tickets of tenant whose requester is the
// address email and no user yet.
func (r *ReadModel) Unidentified(ctx context.Context, tenant, email string) ([]string, error) {
	var ids []string
	err := pgdb.InTenantTx(ctx, r.pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM intake.tickets WHERE tenant_id = $1 AND requester_id IS NULL
			AND lower(requester) = lower($2) ORDER BY created_at LIMIT 1000`, tenant, email)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tickets of %s: %w", email, err)
	}
	return ids, nil
}
