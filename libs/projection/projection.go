// Package projection keeps Postgres read models up to date from JetStream.
//
// Each projection has one durable pull consumer. The runner fetches a batch,
// applies it and advances the projection's checkpoint (the last applied stream
// sequence) in one Postgres transaction, commits, and only then acks. Events
// at or below the checkpoint are skipped, so a redelivery never applies twice.
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
