// Package autoclose is the scheduled reaction that closes resolved tickets
// once their auto-close time has come. The due times live in the read
// model (intake.due_closures, projected from TicketResolved), so the timer
// survives restarts and is rebuilt with the read model; several replicas
// may sweep at once: the close is a command with optimistic concurrency,
// and a ticket that is not due (any more) is left alone.
package autoclose

import (
	"context"
	"log/slog"
	"time"

	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
)

// Config configures the sweeper.
type Config struct {
	// Interval between sweeps.
	Interval time.Duration
	// Batch is how many due tickets one sweep takes (100 when zero).
	Batch int
	// Now is the clock.
	Now func() time.Time
}

// Due lists tickets due to close.
type Due interface {
	DueClosures(ctx context.Context, now time.Time, limit int) ([]pgstore.DueClosure, error)
}

// Closer closes a ticket if it is due.
type Closer interface {
	AutoClose(ctx context.Context, tenant, id string) (command.Result, error)
}

// Run sweeps every Interval until ctx is done.
func Run(ctx context.Context, cfg Config, due Due, closer Closer, log *slog.Logger) {
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		Sweep(ctx, cfg, due, closer, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep closes what is due now, in batches until none is left or a batch
// closed nothing (the rest is not due yet in the store, e.g. reopened
// while the read model lags). It returns how many it closed.
func Sweep(ctx context.Context, cfg Config, due Due, closer Closer, log *slog.Logger) int {
	batch := cfg.Batch
	if batch <= 0 {
		batch = 100
	}
	closed := 0
	for ctx.Err() == nil {
		list, err := due.DueClosures(ctx, cfg.Now(), batch)
		if err != nil {
			log.WarnContext(ctx, "auto-close: list due tickets", "err", err)
			return closed
		}
		n := 0
		for _, d := range list {
			res, err := closer.AutoClose(ctx, d.Tenant, d.TicketID)
			if err != nil {
				log.WarnContext(ctx, "auto-close", "tenant", d.Tenant, "ticket", d.TicketID, "err", err)
				continue
			}
			if res.Appended {
				n++
			}
		}
		closed += n
		if n == 0 || len(list) < batch {
			return closed
		}
	}
	return closed
}
