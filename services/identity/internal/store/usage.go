package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecordTokenUse moves an API token's last-used time forward (tx is a
// tenant transaction of tenant).
func RecordTokenUse(ctx context.Context, tx pgx.Tx, tenant, token string, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO identity.api_token_usage (tenant_id, token_id, last_used_at) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, token_id) DO UPDATE SET last_used_at = greatest(identity.api_token_usage.last_used_at, $3)`,
		tenant, token, at)
	if err != nil {
		return fmt.Errorf("record use of %s: %w", token, err)
	}
	return nil
}
