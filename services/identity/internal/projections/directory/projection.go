// Package directory is identity's read model: the identity__directory_v1
// projection folding the IDENTITY stream into tenants, tenant_directory,
// users, user_grants, groups and api_tokens. It runs with the event's
// tenant set (row-level security), so a bug here cannot write across
// tenants either.
package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// Name is the projection's durable consumer and checkpoint name.
const Name = "identity__directory_v1"

// Codec decodes identity events.
var Codec = es.NewCodec(identityv1.EventTypes())

// Projection folds identity events into the read model. Each statement is
// guarded by last_seq, so a repeated event is a no-op.
type Projection struct{}

// Name implements projection.Projection.
func (Projection) Name() string { return Name }

// Stream implements projection.Projection.
func (Projection) Stream() string { return identityv1.Stream }

// Reset empties the read model (never the state tables) before a rebuild.
func (Projection) Reset(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `TRUNCATE identity.tenants, identity.tenant_directory, identity.users,
		identity.user_grants, identity.groups, identity.api_tokens`)
	if err != nil {
		return fmt.Errorf("reset identity read model: %w", err)
	}
	return nil
}

// Apply folds one event; claims and events that change nothing here are
// skipped.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, e es.Event) error {
	key, err := e.KeyIn(identityv1.Context)
	if err != nil {
		return err
	}
	tenant, id := key.Tenant, key.ID
	p, err := Codec.Decode(e)
	if errors.Is(err, es.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return err
	}
	seq := int64(e.Sequence)
	exec := func(sql string, args ...any) error {
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("apply %s seq %d: %w", e.Type, e.Sequence, err)
		}
		return nil
	}
	switch p := p.(type) {
	case identityv1.TenantCreated:
		if p.TenantID != tenant || id != tenant {
			return fmt.Errorf("event %s: tenant %s on subject %s", e.ID, p.TenantID, e.Subject)
		}
		var parent *string
		if p.ParentID != "" {
			parent = &p.ParentID
		}
		if err := exec(`INSERT INTO identity.tenants (id, slug, name, kind, parent_id, operator, time_zone, locale, status,
			created_at, updated_at, version, last_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9, 1, $10) ON CONFLICT (id) DO NOTHING`,
			p.TenantID, p.Slug, p.Name, p.Kind, parent, p.Operator, p.TimeZone, p.Locale, p.CreatedAt, seq); err != nil {
			return err
		}
		return exec(`INSERT INTO identity.tenant_directory (slug, tenant_id, status) VALUES ($1, $2, 'active')
			ON CONFLICT (slug) DO NOTHING`, p.Slug, p.TenantID)
	case identityv1.TenantUpdated:
		return exec(`UPDATE identity.tenants SET name = $2, time_zone = $3, locale = $4, updated_at = $5,
			version = version + 1, last_seq = $6 WHERE id = $1 AND last_seq < $6`,
			tenant, p.Name, p.TimeZone, p.Locale, p.At, seq)
	case identityv1.TenantSuspended, identityv1.TenantReactivated:
		status, at := "suspended", e.Time
		if _, ok := p.(identityv1.TenantReactivated); ok {
			status = "active"
		}
		if err := exec(`UPDATE identity.tenants SET status = $2, updated_at = $3, version = version + 1, last_seq = $4
			WHERE id = $1 AND last_seq < $4`, tenant, status, at, seq); err != nil {
			return err
		}
		return exec(`UPDATE identity.tenant_directory SET status = $2 WHERE tenant_id = $1`, tenant, status)

	case identityv1.UserOnboarded:
		return exec(`INSERT INTO identity.users (tenant_id, id, email, name, roles, groups, locale, time_zone, status,
			created_at, updated_at, version, last_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9, 1, $10) ON CONFLICT (tenant_id, id) DO NOTHING`,
			tenant, p.UserID, p.Email, p.Name, nonNil(p.Roles), nonNil(p.Groups), p.Locale, p.TimeZone, p.OnboardedAt, seq)
	case identityv1.UserUpdated:
		return updateUser(exec, tenant, id, seq, e, "name = $5, locale = $6, time_zone = $7", p.Name, p.Locale, p.TimeZone)
	case identityv1.UserRolesChanged:
		return updateUser(exec, tenant, id, seq, e, "roles = $5", nonNil(p.Roles))
	case identityv1.UserGroupsChanged:
		return updateUser(exec, tenant, id, seq, e, "groups = $5", nonNil(p.Groups))
	case identityv1.UserSuspended:
		return updateUser(exec, tenant, id, seq, e, "status = 'suspended'")
	case identityv1.UserReactivated:
		return updateUser(exec, tenant, id, seq, e, "status = 'active'")
	case identityv1.UserOffboarded:
		if err := exec(`DELETE FROM identity.user_grants WHERE tenant_id = $1 AND user_id = $2`, tenant, id); err != nil {
			return err
		}
		return updateUser(exec, tenant, id, seq, e, "status = 'offboarded'")
	case identityv1.UserAccessGranted:
		if err := exec(`INSERT INTO identity.user_grants (tenant_id, user_id, client_tenant_id, role, granted_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, user_id, client_tenant_id) DO UPDATE SET role = $4, granted_at = $5`,
			tenant, id, p.ClientTenantID, p.Role, p.At); err != nil {
			return err
		}
		return updateUser(exec, tenant, id, seq, e, "")
	case identityv1.UserAccessRevoked:
		if err := exec(`DELETE FROM identity.user_grants WHERE tenant_id = $1 AND user_id = $2 AND client_tenant_id = $3`,
			tenant, id, p.ClientTenantID); err != nil {
			return err
		}
		return updateUser(exec, tenant, id, seq, e, "")
	case identityv1.PasswordChanged, identityv1.SessionRevoked, identityv1.SessionsRevoked, identityv1.PasswordResetRequested:
		return updateUser(exec, tenant, id, seq, e, "")

	case identityv1.GroupCreated:
		return exec(`INSERT INTO identity.groups (tenant_id, id, name, tier, skills, created_at, updated_at, version, last_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $6, 1, $7) ON CONFLICT (tenant_id, id) DO NOTHING`,
			tenant, p.GroupID, p.Name, p.Tier, nonNil(p.Skills), p.CreatedAt, seq)
	case identityv1.GroupUpdated:
		return exec(`UPDATE identity.groups SET name = $3, tier = $4, skills = $5, updated_at = $6, version = version + 1,
			last_seq = $7 WHERE tenant_id = $1 AND id = $2 AND last_seq < $7`,
			tenant, id, p.Name, p.Tier, nonNil(p.Skills), p.At, seq)
	case identityv1.GroupDeleted:
		if err := exec(`DELETE FROM identity.groups WHERE tenant_id = $1 AND id = $2`, tenant, id); err != nil {
			return err
		}
		// Memberships of a deleted group go with it; the users' own events
		// keep the history.
		return exec(`UPDATE identity.users SET groups = array_remove(groups, $2) WHERE tenant_id = $1 AND $2 = ANY (groups)`,
			tenant, id)

	case identityv1.APITokenCreated:
		var expires any
		if !p.ExpiresAt.IsZero() {
			expires = p.ExpiresAt
		}
		return exec(`INSERT INTO identity.api_tokens (tenant_id, id, name, scopes, created_by, created_at, expires_at, last_seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, id) DO NOTHING`,
			tenant, p.TokenID, p.Name, nonNil(p.Scopes), p.CreatedBy, p.CreatedAt, expires, seq)
	case identityv1.APITokenRevoked:
		return exec(`UPDATE identity.api_tokens SET revoked_at = $3, last_seq = $4 WHERE tenant_id = $1 AND id = $2 AND last_seq < $4`,
			tenant, id, p.At, seq)
	}
	return nil // claims: nothing to show
}

// updateUser bumps the user's version (and applies set, if any) once per
// event: every event of the user is one version, the API's ETag.
func updateUser(exec func(string, ...any) error, tenant, id string, seq int64, e es.Event, set string, args ...any) error {
	if set != "" {
		set += ", "
	}
	return exec(`UPDATE identity.users SET `+set+`updated_at = greatest(updated_at, $4), version = version + 1, last_seq = $3
		WHERE tenant_id = $1 AND id = $2 AND last_seq < $3`, append([]any{tenant, id, seq, e.Time}, args...)...)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
