package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SetPassword stores the password hash of a user (tx is a tenant
// transaction of tenant).
func SetPassword(ctx context.Context, tx pgx.Tx, tenant, user, hash string) error {
	_, err := tx.Exec(ctx, `INSERT INTO identity.credentials (tenant_id, user_id, password_hash, updated_at)
		VALUES ($1, $2, $3, now()) ON CONFLICT (tenant_id, user_id) DO UPDATE SET password_hash = $3, updated_at = now()`,
		tenant, user, hash)
	if err != nil {
		return fmt.Errorf("store password of %s: %w", user, err)
	}
	return nil
}

// PasswordHash returns the user's hash, or "" if none is set.
func PasswordHash(ctx context.Context, tx pgx.Tx, tenant, user string) (string, error) {
	var hash string
	err := tx.QueryRow(ctx, `SELECT password_hash FROM identity.credentials WHERE tenant_id = $1 AND user_id = $2`,
		tenant, user).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("password of %s: %w", user, err)
	}
	return hash, nil
}

// DeletePassword removes the user's hash (offboarding).
func DeletePassword(ctx context.Context, tx pgx.Tx, tenant, user string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM identity.credentials WHERE tenant_id = $1 AND user_id = $2`, tenant, user); err != nil {
		return fmt.Errorf("delete password of %s: %w", user, err)
	}
	return nil
}
