// Package tickets is intake's tickets read model: the intake__tickets_v1
// projection that folds the TICKETS stream into intake.tickets and
// intake.ticket_events, and the tenant-scoped queries over those tables.
package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/intake/internal/codec"
)

// Name is the projection's durable consumer and checkpoint name.
const Name = "intake__tickets_v1"

// Projection folds ticket events into the read model. Every Apply is
// idempotent on its own (rows keyed by the stream sequence and guarded by
// last_seq), a second line of defence behind the runner's checkpoint.
type Projection struct{}

// Name implements projection.Projection.
func (Projection) Name() string { return Name }

// Stream implements projection.Projection.
func (Projection) Stream() string { return ticketv1.Stream }

// Reset empties the read model before a rebuild.
func (Projection) Reset(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `TRUNCATE intake.tickets, intake.ticket_events`); err != nil {
		return fmt.Errorf("reset tickets read model: %w", err)
	}
	return nil
}

// Apply folds one event. A TicketCreated that does not decode, or an event
// whose subject is not ticket.<tenant>.<id>, is an error: the runner retries
// it and then dead-letters it. Event types this version does not know are
// still recorded in the ticket's history.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, e es.Event) error {
	tenant, id, err := aggregate(e)
	if err != nil {
		return err
	}
	payload, err := codec.Decode(e)
	if err != nil && !errors.Is(err, codec.ErrUnknownType) {
		return err
	}
	switch p := payload.(type) {
	case ticketv1.TicketCreated:
		return applyCreated(ctx, tx, tenant, id, e, p)
	default:
		return applyOther(ctx, tx, tenant, id, e)
	}
}

// aggregate reads tenant and ticket id from the subject, which the store
// guarantees, rather than from headers a producer could get wrong.
func aggregate(e es.Event) (tenant, id string, err error) {
	parts := strings.Split(e.Subject, ".")
	if len(parts) != 3 || parts[0] != ticketv1.Context || !es.ValidToken(parts[1]) || !es.ValidToken(parts[2]) {
		return "", "", fmt.Errorf("event %s: subject %q is not %s.<tenant>.<id>", e.ID, e.Subject, ticketv1.Context)
	}
	return parts[1], parts[2], nil
}

func data(e es.Event) json.RawMessage {
	if len(e.Data) == 0 {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(e.Data)
}

// applyCreated inserts the ticket and its first history entry in one round
// trip. ON CONFLICT targets only the primary key: a duplicate number for a
// different ticket is a bug that must surface (and dead-letter), not vanish.
func applyCreated(ctx context.Context, tx pgx.Tx, tenant, id string, e es.Event, p ticketv1.TicketCreated) error {
	if p.TicketID != id {
		return fmt.Errorf("event %s: payload ticket_id %q does not match subject %q", e.ID, p.TicketID, e.Subject)
	}
	_, err := tx.Exec(ctx, `
WITH ticket AS (
    INSERT INTO intake.tickets (tenant_id, id, number, type, status, title, description, impact, urgency,
                                priority, requester, channel, created_at, updated_at, version, last_seq)
    VALUES ($1, $2, $3, $4, 'new', $5, $6, $7, $8, $9, $10, $11, $12, $12, 1, $13)
    ON CONFLICT (tenant_id, id) DO NOTHING
)
INSERT INTO intake.ticket_events (seq, tenant_id, ticket_id, version, event_id, type, time, actor, data, trace_id)
VALUES ($13, $1, $2, 1, $14, $15, $16, $17, $18, $19)
ON CONFLICT (seq) DO NOTHING`,
		tenant, id, p.Number, p.Type, p.Title, p.Description, p.Impact, p.Urgency,
		p.Priority, p.Requester, p.Channel, p.CreatedAt, int64(e.Sequence),
		e.ID, e.Type, e.Time, e.Actor, data(e), es.TraceID(e.TraceParent))
	if err != nil {
		return fmt.Errorf("apply %s seq %d to ticket %s: %w", e.Type, e.Sequence, id, err)
	}
	return nil
}

// applyOther records an event that does not change the ticket's fields (in
// this version: any type but created) and bumps the ticket's version. The
// last_seq guard makes a repeat a no-op.
func applyOther(ctx context.Context, tx pgx.Tx, tenant, id string, e es.Event) error {
	tag, err := tx.Exec(ctx, `
WITH ticket AS (
    UPDATE intake.tickets
       SET version = version + 1, last_seq = $3, updated_at = greatest(updated_at, $4)
     WHERE tenant_id = $1 AND id = $2 AND last_seq < $3
    RETURNING version
)
INSERT INTO intake.ticket_events (seq, tenant_id, ticket_id, version, event_id, type, time, actor, data, trace_id)
SELECT $3, $1, $2, ticket.version, $5, $6, $4, $7, $8, $9 FROM ticket
ON CONFLICT (seq) DO NOTHING`,
		tenant, id, int64(e.Sequence), e.Time, e.ID, e.Type, e.Actor, data(e), es.TraceID(e.TraceParent))
	if err != nil {
		return fmt.Errorf("apply %s seq %d to ticket %s: %w", e.Type, e.Sequence, id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing written: either already applied, or the ticket has no created
	// event in the read model, which means history arrived out of order.
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
