// Package tickets is intake's tickets read model: the intake__tickets_v1
// projection that folds the TICKETS stream into intake.tickets and
// intake.ticket_events, and the tenant-scoped queries over those tables.
package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/services/intake/internal/codec"
)

// Name is the projection's durable consumer and checkpoint name.
const Name = "intake__tickets_v1"

// Projection folds ticket events into the read model. Every Apply is
// idempotent on its own (rows keyed by the stream sequence and guarded by
// last_seq), a second line of defence behind the runner's checkpoint.
// ApplyBatch writes runs of created tickets with one multi-row statement,
// which is what a replay or a burst of new tickets consists of.
type Projection struct{}

var _ projection.BatchProjection = Projection{}

// Name implements projection.Projection.
func (Projection) Name() string { return Name }

// Stream implements projection.Projection.
func (Projection) Stream() string { return ticketv1.Stream }

// Reset empties the read model before a rebuild.
func (Projection) Reset(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `TRUNCATE intake.tickets, intake.ticket_events, intake.ticket_comments,
		intake.ticket_attachments, intake.ticket_links, intake.message_ids, intake.due_closures`); err != nil {
		return fmt.Errorf("reset tickets read model: %w", err)
	}
	return nil
}

// Apply folds one event. A TicketCreated that does not decode, or an event
// whose subject is not ticket.<tenant>.<id>, is an error: the runner retries
// it and then dead-letters it. Event types this version does not know are
// still recorded in the ticket's history.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, e es.Event) error {
	tenant, id, payload, err := decode(e)
	if err != nil {
		return err
	}
	if p, ok := payload.(ticketv1.TicketCreated); ok {
		return applyCreated(ctx, tx, tenant, id, e, p)
	}
	return applyOther(ctx, tx, tenant, id, e, payload)
}

// decode reads an event's aggregate from its subject and its typed payload
// (nil for a type this version does not know).
func decode(e es.Event) (tenant, id string, payload any, err error) {
	tenant, id, err = aggregate(e)
	if err != nil {
		return "", "", nil, err
	}
	payload, err = codec.Decode(e)
	if err != nil && !errors.Is(err, codec.ErrUnknownType) {
		return "", "", nil, err
	}
	return tenant, id, payload, nil
}

// ApplyBatch folds events in stream order with the effect of Apply on each
// in turn: consecutive TicketCreated events go into both tables with one
// INSERT over arrays (one round trip and one statement for up to a whole
// batch), anything else through Apply after the creations before it. Any
// error fails the whole call; the runner then applies the events one by one
// to find the culprit.
func (p Projection) ApplyBatch(ctx context.Context, tx pgx.Tx, events []es.Event) error {
	var run createdRows
	for _, e := range events {
		tenant, id, payload, err := decode(e)
		if err != nil {
			return err
		}
		if c, ok := payload.(ticketv1.TicketCreated); ok {
			if c.TicketID != id {
				return fmt.Errorf("event %s: payload ticket_id %q does not match subject %q", e.ID, c.TicketID, e.Subject)
			}
			run.add(tenant, e, c)
			continue
		}
		if err := run.flush(ctx, tx); err != nil {
			return err
		}
		if err := applyOther(ctx, tx, tenant, id, e, payload); err != nil {
			return err
		}
	}
	return run.flush(ctx, tx)
}

// createdRows holds a run of TicketCreated events column by column, the
// shape unnest() takes.
type createdRows struct {
	tenant, id, number, typ, title, description, impact, urgency, priority, requester, channel []string
	requesterID                                                                                []*string
	createdAt, eventTime                                                                       []time.Time
	seq                                                                                        []int64
	eventID, eventType, actor, data, traceID                                                   []string
	category, tags, items, watchers, custom, followUp, messageID                               []string
}

func (r *createdRows) add(tenant string, e es.Event, c ticketv1.TicketCreated) {
	r.tenant = append(r.tenant, tenant)
	r.id = append(r.id, c.TicketID)
	r.number = append(r.number, c.Number)
	r.typ = append(r.typ, c.Type)
	r.title = append(r.title, c.Title)
	r.description = append(r.description, c.Description)
	r.impact = append(r.impact, c.Impact)
	r.urgency = append(r.urgency, c.Urgency)
	r.priority = append(r.priority, c.Priority)
	r.requester = append(r.requester, c.Requester)
	r.requesterID = append(r.requesterID, nullable(c.RequesterID))
	r.channel = append(r.channel, c.Channel)
	r.createdAt = append(r.createdAt, c.CreatedAt)
	r.seq = append(r.seq, int64(e.Sequence))
	r.eventID = append(r.eventID, e.ID)
	r.eventType = append(r.eventType, e.Type)
	r.eventTime = append(r.eventTime, e.Time)
	r.actor = append(r.actor, e.Actor)
	r.data = append(r.data, string(data(e)))
	r.traceID = append(r.traceID, es.TraceID(e.TraceParent))
	r.category = append(r.category, c.Category)
	r.tags = append(r.tags, jsonList(c.Tags))
	r.items = append(r.items, jsonList(c.ConfigItems))
	r.watchers = append(r.watchers, jsonList(c.Watchers))
	r.custom = append(r.custom, string(customFields(c.CustomFields)))
	r.followUp = append(r.followUp, c.FollowUpOf)
	r.messageID = append(r.messageID, c.MessageID)
}

// jsonList encodes a list for a statement that takes lists as JSON, which
// unnest() can carry where text[][] cannot (it would flatten).
func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // cannot fail for strings
	return string(b)
}

func customFields(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(`{}`)
	}
	return raw
}

// insertCreated is applyCreated for many events at once, with the same
// conflict rules.
var insertCreated = `
WITH rows AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::bigint[],
                         $14::text[], $15::text[], $16::timestamptz[], $17::text[], $18::text[], $19::text[],
                         $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::text[],
                         $27::text[])
        AS r(tenant_id, id, number, type, title, description, impact, urgency, priority, requester, channel,
             created_at, seq, event_id, event_type, time, actor, data, trace_id, requester_id,
             category, tags, config_items, watchers, custom_fields, follow_up_of, message_id)
), ticket AS (
    INSERT INTO intake.tickets (tenant_id, id, number, type, status, title, description, impact, urgency,
                                priority, requester, requester_id, channel, created_at, updated_at, version, last_seq,
                                category, tags, config_items, watchers, custom_fields, follow_up_of)
    SELECT tenant_id, id, number, type, 'new', title, description, impact, urgency,
           priority, requester, requester_id, channel, created_at, created_at, 1, seq,
           category, ` + jsonArray("tags") + `, ` + jsonArray("config_items") + `, ` + jsonArray("watchers") + `,
           custom_fields::jsonb, follow_up_of FROM rows
    ON CONFLICT (tenant_id, id) DO NOTHING
), message AS (
    INSERT INTO intake.message_ids (tenant_id, message_id, ticket_id)
    SELECT tenant_id, message_id, id FROM rows WHERE message_id <> ''
    ON CONFLICT DO NOTHING
)
INSERT INTO intake.ticket_events (seq, tenant_id, ticket_id, version, event_id, type, time, actor, data, trace_id)
SELECT seq, tenant_id, id, 1, event_id, event_type, time, actor, data::jsonb, trace_id FROM rows
ON CONFLICT (seq) DO NOTHING`

// jsonArray turns the JSON list in column col into a text[].
func jsonArray(col string) string {
	return `coalesce(ARRAY(SELECT jsonb_array_elements_text(` + col + `::jsonb)), '{}')`
}

// flush writes the run, if any, and empties it.
func (r *createdRows) flush(ctx context.Context, tx pgx.Tx) error {
	n := len(r.seq)
	if n == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, insertCreated, r.tenant, r.id, r.number, r.typ, r.title, r.description, r.impact,
		r.urgency, r.priority, r.requester, r.channel, r.createdAt, r.seq,
		r.eventID, r.eventType, r.eventTime, r.actor, r.data, r.traceID, r.requesterID,
		r.category, r.tags, r.items, r.watchers, r.custom, r.followUp, r.messageID)
	if err != nil {
		return fmt.Errorf("apply %d ticket creations, seq %d-%d: %w", n, r.seq[0], r.seq[n-1], err)
	}
	*r = createdRows{}
	return nil
}

// aggregate reads tenant and ticket id from the subject.
func aggregate(e es.Event) (tenant, id string, err error) {
	k, err := e.KeyIn(ticketv1.Context)
	return k.Tenant, k.ID, err
}

// nullable maps "" to SQL NULL.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func data(e es.Event) json.RawMessage {
	if len(e.Data) == 0 {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(e.Data)
}

// applyCreated inserts the ticket and its first history entry in one round
// trip, as ApplyBatch does for a run of one. ON CONFLICT targets only the
// primary key: a duplicate number for a different ticket is a bug that must
// surface (and dead-letter), not vanish.
func applyCreated(ctx context.Context, tx pgx.Tx, tenant, id string, e es.Event, p ticketv1.TicketCreated) error {
	if p.TicketID != id {
		return fmt.Errorf("event %s: payload ticket_id %q does not match subject %q", e.ID, p.TicketID, e.Subject)
	}
	var run createdRows
	run.add(tenant, e, p)
	if err := run.flush(ctx, tx); err != nil {
		return fmt.Errorf("apply %s seq %d to ticket %s: %w", e.Type, e.Sequence, id, err)
	}
	return nil
}
