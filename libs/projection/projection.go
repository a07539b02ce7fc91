// Package projection keeps Postgres read models up to date from JetStream.
//
// Each projection has one durable pull consumer. The runner fetches a batch,
// applies it and advances the projection's checkpoint (the last applied stream
// sequence) in one Postgres transaction, commits, and only then acks. Events
// at or below the checkpoint are skipped, so a redelivery never applies twice.
//
// The rest follows from keeping that checkpoint honest:
//   - An event is applied only when every earlier event of the stream has
//     been; otherwise the checkpoint would skip the earlier one for ever.
//     One that arrives ahead of an earlier one still held elsewhere is
//     handed back until the earlier one returns; if it has not within a few
//     seconds (lost in a NATS outage, or held by a replica that died), the
//     consumer is reset to deliver from the checkpoint again.
//   - Replicas of a projection serialise on the checkpoint row (SELECT ...
//     FOR UPDATE), and JetStream pins the consumer to one of them at a time,
//     so they do not split the stream between them.
//   - An event that cannot be decoded, or that Apply keeps failing on
//     (Options.MaxAttempts), goes to the DLQ stream and the checkpoint moves
//     past it. An unreachable Postgres or NATS is not the event's fault: it
//     is retried until it passes, and nothing is dead-lettered for it.
//   - Stopping (ctx cancelled) rolls the batch in flight back and hands its
//     events back at once.
//
// WaitFor gives read-your-writes: a command returns the stream sequence it
// appended, and a query waits until the projection has reached it.
package projection

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/opsdesk/opsdesk/libs/es"
)

// Projection is one read model. Apply runs inside the runner's transaction
// and must only write through tx.
type Projection interface {
	// Name is the durable consumer and checkpoint name, e.g. intake__tickets_v1.
	Name() string
	// Stream is the JetStream stream it follows, e.g. TICKETS.
	Stream() string
	// Apply folds one event into the read model.
	Apply(ctx context.Context, tx pgx.Tx, e es.Event) error
	// Reset empties the read model before a rebuild (e.g. TRUNCATE).
	Reset(ctx context.Context, tx pgx.Tx) error
}

// BatchProjection is a Projection that can also fold several events in one
// call, e.g. with one pgx.Batch or a multi-row upsert, which a replay needs
// to reach tens of thousands of events per second (one round trip per event
// caps it at a few thousand). The runner calls ApplyBatch for the events of
// a batch in stream order; with Options.SetTenant once per tenant, with the
// events of that tenant in stream order (events of different tenants cannot
// depend on each other under forced row-level security). Batches of one
// event, and every event of a batch whose ApplyBatch failed, go through
// Apply, which finds the poison one. ApplyBatch must have the same effect
// as Apply on each event in turn.
type BatchProjection interface {
	Projection
	ApplyBatch(ctx context.Context, tx pgx.Tx, events []es.Event) error
}
