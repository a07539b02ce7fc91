package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth"
)

// refreshPrefix starts every refresh token.
const refreshPrefix = "ort"

// Refresh is the outcome of presenting a refresh token.
type Refresh struct {
	Tenant, User, Session string
	// Token is the new refresh token that replaces the one presented.
	Token string
	// Reused is true when the presented token was already spent: the
	// whole session has been revoked and the caller must refuse.
	Reused bool
}

// IssueRefresh creates the first refresh token of a session (or the next
// one) valid for ttl and returns it in its secret form.
func IssueRefresh(ctx context.Context, tx pgx.Tx, tenant, user, session string, ttl time.Duration) (string, error) {
	t := secretToken{Tenant: tenant, ID: "rt_" + ulid.Make().String(), Secret: newSecret()}
	_, err := tx.Exec(ctx, `INSERT INTO identity.refresh_tokens (tenant_id, id, family_id, user_id, secret_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, now(), now() + $6::interval)`,
		tenant, t.ID, session, user, auth.HashSecret(t.Secret), ttl.String())
	if err != nil {
		return "", fmt.Errorf("issue refresh token: %w", err)
	}
	return t.format(refreshPrefix), nil
}

// RefreshTenant returns the tenant a refresh token belongs to, so the
// caller can open its tenant transaction; false for a malformed token.
func RefreshTenant(token string) (string, bool) {
	t, ok := parseSecretToken(refreshPrefix, token)
	return t.Tenant, ok
}

// RotateRefresh spends a refresh token and issues its successor in the same
// session (tx is a tenant transaction of the token's tenant). A token that
// was spent already is reuse, the sign of a stolen token: the session is
// revoked (Reused in the result; commit tx to keep the revocation). Unknown,
// expired or revoked tokens are ErrInvalidToken.
func RotateRefresh(ctx context.Context, tx pgx.Tx, token string, ttl time.Duration) (Refresh, error) {
	t, ok := parseSecretToken(refreshPrefix, token)
	if !ok {
		return Refresh{}, ErrInvalidToken
	}
	var (
		hash, family, user string
		expires            time.Time
		used, revoked      *time.Time
	)
	err := tx.QueryRow(ctx, `SELECT secret_hash, family_id, user_id, expires_at, used_at, revoked_at
		FROM identity.refresh_tokens WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, t.Tenant, t.ID).
		Scan(&hash, &family, &user, &expires, &used, &revoked)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !auth.SameHash(hash, auth.HashSecret(t.Secret))) {
		return Refresh{}, ErrInvalidToken
	}
	if err != nil {
		return Refresh{}, fmt.Errorf("refresh token: %w", err)
	}
	res := Refresh{Tenant: t.Tenant, User: user, Session: family}
	switch {
	case revoked != nil:
		return Refresh{}, ErrInvalidToken
	case used != nil:
		if err := RevokeSession(ctx, tx, t.Tenant, family); err != nil {
			return Refresh{}, err
		}
		res.Reused = true
		return res, nil
	case !time.Now().Before(expires):
		return Refresh{}, ErrInvalidToken
	}
	if _, err := tx.Exec(ctx, `UPDATE identity.refresh_tokens SET used_at = now() WHERE tenant_id = $1 AND id = $2`,
		t.Tenant, t.ID); err != nil {
		return Refresh{}, fmt.Errorf("spend refresh token: %w", err)
	}
	if res.Token, err = IssueRefresh(ctx, tx, t.Tenant, user, family, ttl); err != nil {
		return Refresh{}, err
	}
	return res, nil
}

// RevokeSession revokes every refresh token of a session.
func RevokeSession(ctx context.Context, tx pgx.Tx, tenant, session string) error {
	_, err := tx.Exec(ctx, `UPDATE identity.refresh_tokens SET revoked_at = now()
		WHERE tenant_id = $1 AND family_id = $2 AND revoked_at IS NULL`, tenant, session)
	if err != nil {
		return fmt.Errorf("revoke session %s: %w", session, err)
	}
	return nil
}

// RevokeUserSessions revokes every refresh token of a user.
func RevokeUserSessions(ctx context.Context, tx pgx.Tx, tenant, user string) error {
	_, err := tx.Exec(ctx, `UPDATE identity.refresh_tokens SET revoked_at = now()
		WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL`, tenant, user)
	if err != nil {
		return fmt.Errorf("revoke sessions of %s: %w", user, err)
	}
	return nil
}
