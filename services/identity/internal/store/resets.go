package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
)

// resetPrefix starts every password-reset token.
const resetPrefix = "opr"

// IssueReset creates a single-use password-reset token for user, valid for
// ttl, and returns its id and secret form.
func IssueReset(ctx context.Context, tx pgx.Tx, tenant, user string, ttl time.Duration) (id, token string, err error) {
	t := secretToken{Tenant: tenant, ID: identityv1.ResetIDPrefix + ulid.Make().String(), Secret: newSecret()}
	_, err = tx.Exec(ctx, `INSERT INTO identity.password_resets (tenant_id, id, user_id, secret_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, now(), now() + $5::interval)`, tenant, t.ID, user, auth.HashSecret(t.Secret), ttl.String())
	if err != nil {
		return "", "", fmt.Errorf("issue reset token: %w", err)
	}
	return t.ID, t.format(resetPrefix), nil
}

// ResetTenant returns the tenant of a reset token; false if malformed.
func ResetTenant(token string) (string, bool) {
	t, ok := parseSecretToken(resetPrefix, token)
	return t.Tenant, ok
}

// ConsumeReset spends a reset token and returns its user. Unknown, spent
// and expired tokens are ErrInvalidToken.
func ConsumeReset(ctx context.Context, tx pgx.Tx, token string) (string, error) {
	t, ok := parseSecretToken(resetPrefix, token)
	if !ok {
		return "", ErrInvalidToken
	}
	var (
		hash, user string
		expires    time.Time
		used       *time.Time
	)
	err := tx.QueryRow(ctx, `SELECT secret_hash, user_id, expires_at, used_at FROM identity.password_resets
		WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, t.Tenant, t.ID).Scan(&hash, &user, &expires, &used)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", ErrInvalidToken
	case err != nil:
		return "", fmt.Errorf("reset token: %w", err)
	case !auth.SameHash(hash, auth.HashSecret(t.Secret)), used != nil, !time.Now().Before(expires):
		return "", ErrInvalidToken
	}
	// Spending it also voids the user's other open reset tokens.
	if _, err := tx.Exec(ctx, `UPDATE identity.password_resets SET used_at = now()
		WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL`, t.Tenant, user); err != nil {
		return "", fmt.Errorf("spend reset token: %w", err)
	}
	return user, nil
}
