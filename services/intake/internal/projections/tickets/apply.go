package tickets

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// applyOther folds any event but a creation: it records the event in the
// history and bumps the ticket's version (guarded by last_seq, so a repeat
// is a no-op), then, only if that happened, applies what the event changes.
func applyOther(ctx context.Context, tx pgx.Tx, tenant, id string, e es.Event, payload any) error {
	internal := false
	switch p := payload.(type) {
	case ticketv1.TicketCommented:
		internal = p.Internal
	case ticketv1.TicketAttachmentAdded:
		internal = p.Internal
	}
	tag, err := tx.Exec(ctx, `
WITH ticket AS (
    UPDATE intake.tickets
       SET version = version + 1, last_seq = $3, updated_at = greatest(updated_at, $4)
     WHERE tenant_id = $1 AND id = $2 AND last_seq < $3
    RETURNING version
)
INSERT INTO intake.ticket_events (seq, tenant_id, ticket_id, version, event_id, type, time, actor, data, trace_id, internal)
SELECT $3, $1, $2, ticket.version, $5, $6, $4, $7, $8, $9, $10 FROM ticket
ON CONFLICT (seq) DO NOTHING`,
		tenant, id, int64(e.Sequence), e.Time, e.ID, e.Type, e.Actor, data(e), es.TraceID(e.TraceParent), internal)
	if err != nil {
		return fmt.Errorf("apply %s seq %d to ticket %s: %w", e.Type, e.Sequence, id, err)
	}
	if tag.RowsAffected() == 0 {
		// Nothing written: either already applied, or the ticket has no
		// created event in the read model, which means history arrived out
		// of order.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM intake.tickets WHERE tenant_id = $1 AND id = $2)`,
			tenant, id).Scan(&exists); err != nil {
			return fmt.Errorf("apply %s seq %d: check ticket %s: %w", e.Type, e.Sequence, id, err)
		}
		if !exists {
			return fmt.Errorf("apply %s seq %d: ticket %s has not been created", e.Type, e.Sequence, id)
		}
		return nil
	}
	if err := applyChange(ctx, tx, tenant, id, e, payload); err != nil {
		return fmt.Errorf("apply %s seq %d to ticket %s: %w", e.Type, e.Sequence, id, err)
	}
	return nil
}

// applyChange writes what one event changes beyond the history entry.
// Types that change nothing else (alerts, unknown types) fall through.
func applyChange(ctx context.Context, tx pgx.Tx, tenant, id string, e es.Event, payload any) error {
	exec := func(sql string, args ...any) error {
		_, err := tx.Exec(ctx, sql, append([]any{tenant, id}, args...)...)
		return err
	}
	at := e.Time
	switch p := payload.(type) {
	case ticketv1.TicketUpdated:
		var custom []byte
		if p.CustomFields != nil {
			custom = p.CustomFields
		}
		return exec(`UPDATE intake.tickets SET
    title = coalesce($3, title), description = coalesce($4, description), category = coalesce($5, category),
    impact = coalesce($6, impact), urgency = coalesce($7, urgency), priority = coalesce($8, priority),
    tags = coalesce($9, tags), config_items = coalesce($10, config_items), watchers = coalesce($11, watchers),
    custom_fields = coalesce($12::jsonb, custom_fields)
  WHERE tenant_id = $1 AND id = $2`,
			p.Title, p.Description, p.Category, p.Impact, p.Urgency, p.Priority,
			list(p.Tags), list(p.ConfigItems), list(p.Watchers), custom)
	case ticketv1.TicketOpened:
		return status(exec, ticketv1.StatusOpen, "")
	case ticketv1.TicketWorkStarted:
		return status(exec, ticketv1.StatusInProgress, "")
	case ticketv1.TicketPended:
		return status(exec, ticketv1.StatusPending, p.Reason)
	case ticketv1.TicketCancelled:
		if err := status(exec, ticketv1.StatusCancelled, ""); err != nil {
			return err
		}
		if err := forgetAlerts(exec); err != nil {
			return err
		}
		return exec(`UPDATE intake.tickets SET closed_at = $3 WHERE tenant_id = $1 AND id = $2`, at)
	case ticketv1.TicketResolved:
		if err := exec(`UPDATE intake.tickets SET status = 'resolved', pending_reason = '', resolution_code = $3,
    resolution_note = $4, resolved_at = $5, auto_close_at = $6, reopen_until = $7, resolutions = resolutions + 1
  WHERE tenant_id = $1 AND id = $2`, p.Code, p.Note, at, p.AutoCloseAt, p.ReopenUntil); err != nil {
			return err
		}
		if err := forgetAlerts(exec); err != nil {
			return err
		}
		return exec(`INSERT INTO intake.due_closures (tenant_id, ticket_id, due_at) VALUES ($1, $2, $3)
  ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET due_at = excluded.due_at`, p.AutoCloseAt)
	case ticketv1.TicketClosed:
		if err := exec(`UPDATE intake.tickets SET status = 'closed', closed_at = $3, auto_close_at = NULL
  WHERE tenant_id = $1 AND id = $2`, at); err != nil {
			return err
		}
		if err := forgetAlerts(exec); err != nil {
			return err
		}
		return exec(`DELETE FROM intake.due_closures WHERE tenant_id = $1 AND ticket_id = $2`)
	case ticketv1.TicketReopened:
		if err := exec(`UPDATE intake.tickets SET status = 'open', resolution_code = '', resolution_note = '',
    resolved_at = NULL, auto_close_at = NULL, reopen_until = NULL WHERE tenant_id = $1 AND id = $2`); err != nil {
			return err
		}
		return exec(`DELETE FROM intake.due_closures WHERE tenant_id = $1 AND ticket_id = $2`)
	case ticketv1.TicketCommented:
		if err := exec(`INSERT INTO intake.ticket_comments (tenant_id, ticket_id, id, seq, body, internal, author_id,
    author, author_role, channel, message_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
  ON CONFLICT DO NOTHING`, p.CommentID, int64(e.Sequence), p.Body, p.Internal, p.AuthorID, p.Author, p.AuthorRole,
			p.Channel, p.MessageID, at); err != nil {
			return err
		}
		if err := exec(`UPDATE intake.tickets SET comment_count = comment_count + 1 WHERE tenant_id = $1 AND id = $2`); err != nil {
			return err
		}
		if p.MessageID == "" {
			return nil
		}
		return exec(`INSERT INTO intake.message_ids (tenant_id, ticket_id, message_id) VALUES ($1, $2, $3)
  ON CONFLICT DO NOTHING`, p.MessageID)
	case ticketv1.TicketFirstResponded:
		return exec(`UPDATE intake.tickets SET first_response_at = $3 WHERE tenant_id = $1 AND id = $2`, p.At)
	case ticketv1.TicketAttachmentAdded:
		if err := exec(`INSERT INTO intake.ticket_attachments (tenant_id, ticket_id, id, seq, blob_id, filename,
    content_type, size, sha256, internal, inline, comment_id, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`,
			p.AttachmentID, int64(e.Sequence), p.BlobID, p.Filename, p.ContentType, p.Size, p.SHA256, p.Internal,
			p.Inline, p.CommentID, at); err != nil {
			return err
		}
		return exec(`UPDATE intake.tickets SET attachment_count = attachment_count + 1 WHERE tenant_id = $1 AND id = $2`)
	case ticketv1.TicketLinked:
		return exec(`INSERT INTO intake.ticket_links (tenant_id, ticket_id, kind, target_id, target_number, created_at)
  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, p.Kind, p.Target, p.TargetNumber, at)
	case ticketv1.TicketUnlinked:
		return exec(`DELETE FROM intake.ticket_links WHERE tenant_id = $1 AND ticket_id = $2 AND kind = $3 AND target_id = $4`,
			p.Kind, p.Target)
	case ticketv1.TicketMerged:
		return exec(`UPDATE intake.tickets SET merged_into = $3 WHERE tenant_id = $1 AND id = $2`, p.Into)
	case ticketv1.TicketSatisfactionRated:
		return exec(`UPDATE intake.tickets SET satisfaction = $3 WHERE tenant_id = $1 AND id = $2`, p.Rating)
	case ticketv1.TicketRequesterIdentified:
		return exec(`UPDATE intake.tickets SET requester_id = $3 WHERE tenant_id = $1 AND id = $2`, p.RequesterID)
	}
	return nil
}

// forgetAlerts drops an incident from the open-incident index of alerts
// once it takes no more (the channel re-checks the aggregate anyway; this
// keeps the index as small as the open incidents).
func forgetAlerts(exec func(string, ...any) error) error {
	return exec(`DELETE FROM intake.alert_incidents WHERE tenant_id = $1 AND ticket_id = $2`)
}

// status sets a ticket's status (and pending reason) for the transitions
// that change nothing else.
func status(exec func(string, ...any) error, s, reason string) error {
	return exec(`UPDATE intake.tickets SET status = $3, pending_reason = $4 WHERE tenant_id = $1 AND id = $2`, s, reason)
}

// list maps an optional list to a text[] parameter (NULL when absent).
func list(l *[]string) []string {
	if l == nil {
		return nil
	}
	if *l == nil {
		return []string{}
	}
	return *l
}
