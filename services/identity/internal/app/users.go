package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
	"github.com/opsdesk/opsdesk/services/identity/internal/password"
	"github.com/opsdesk/opsdesk/services/identity/internal/store"
)

// NewUser is what a caller gives for a user to onboard. Password is
// optional: without one the user sets it through a password reset.
type NewUser struct {
	Email, Name, Locale, TimeZone, Password string
	Roles, Groups                           []string
}

func userKey(tenant, id string) es.Key { return es.Key{Tenant: tenant, ID: id} }

// Onboard onboards a user into p's tenant; the e-mail address is claimed in
// the same atomic write, so two onboardings of one address cannot both
// succeed (ErrAlreadyExists).
func (a *App) Onboard(ctx context.Context, p auth.Principal, req NewUser) (domain.User, Result, error) {
	tenant := p.Tenant
	if req.Locale == "" || req.TimeZone == "" {
		t, err := a.tenantFor(ctx, p, tenant)
		if err != nil {
			return domain.User{}, Result{}, err
		}
		req.Locale, req.TimeZone = cmpOr(req.Locale, t.Locale), cmpOr(req.TimeZone, t.TimeZone)
	}
	c := domain.Onboard{ID: newID(identityv1.UserIDPrefix), TenantID: tenant, Email: req.Email, Name: req.Name,
		Locale: req.Locale, TimeZone: req.TimeZone, Roles: req.Roles, Groups: req.Groups, At: a.now()}
	payloads, err := domain.DecideOnboard(domain.User{}, c)
	if err != nil {
		return domain.User{}, Result{}, err
	}
	if err := a.checkGroups(ctx, tenant, "groups", req.Groups); err != nil {
		return domain.User{}, Result{}, err
	}
	email := domain.NormalizeEmail(req.Email)
	if req.Password != "" {
		if err := a.setPassword(ctx, tenant, c.ID, req.Password, email, req.Name); err != nil {
			return domain.User{}, Result{}, err
		}
	}
	claim := es.Key{Tenant: tenant, ID: domain.EmailClaimID(email)}
	res, err := a.create(ctx, userKey(tenant, c.ID), payloads, claim, identityv1.EmailClaimed{Email: email, UserID: c.ID})
	if err != nil {
		return domain.User{}, Result{}, err
	}
	return domain.FoldUser(payloads), res, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// setPassword checks the policy and stores the hash. It runs before the
// event that announces it, so that a stored event never points at a
// missing credential; a hash whose event never made it is harmless.
func (a *App) setPassword(ctx context.Context, tenant, user, pw string, personal ...string) error {
	if err := password.Check(pw, personal...); err != nil {
		return &domain.ValidationError{Fields: []domain.FieldError{{Field: "password",
			Message: strings.TrimPrefix(err.Error(), password.ErrWeak.Error()+" ")}}}
	}
	hash, err := a.hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	return a.inTenant(ctx, tenant, func(tx pgx.Tx) error { return store.SetPassword(ctx, tx, tenant, user, hash) })
}

// checkGroups refuses group ids that are not groups of the tenant.
func (a *App) checkGroups(ctx context.Context, tenant, field string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var known []string
	err := a.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT id FROM identity.groups WHERE tenant_id = $1 AND id = ANY($2)`, tenant, ids)
		var err error
		known, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return err
	}
	var bad []domain.FieldError
	for i, id := range ids {
		if !slices.Contains(known, id) {
			bad = append(bad, domain.FieldError{Field: fmt.Sprintf("%s.%d", field, i), Message: "is not a group of this tenant"})
		}
	}
	if len(bad) > 0 {
		return &domain.ValidationError{Fields: bad}
	}
	return nil
}

// UpdateUser changes a user's profile, roles or groups.
func (a *App) UpdateUser(ctx context.Context, p auth.Principal, id string, ifMatch *uint64, c domain.UpdateUser) (Result, error) {
	if c.Groups != nil {
		if err := a.checkGroups(ctx, p.Tenant, "groups", *c.Groups); err != nil {
			return Result{}, err
		}
	}
	c.At = a.now()
	return a.execute(ctx, userKey(p.Tenant, id), ifMatch, func(h []any) ([]any, error) {
		return domain.DecideUpdateUser(domain.FoldUser(h), c)
	})
}

// User returns the current state of a user of p's tenant.
func (a *App) User(ctx context.Context, tenant, id string) (domain.User, error) {
	history, _, err := a.load(ctx, userKey(tenant, id))
	if err != nil {
		return domain.User{}, err
	}
	u := domain.FoldUser(history)
	if !u.Exists() {
		return domain.User{}, domain.ErrNotFound
	}
	return u, nil
}

func notSelf(p auth.Principal, id, what string) error {
	if p.ID == id {
		return &domain.ConflictError{Reason: "you cannot " + what + " yourself"}
	}
	return nil
}

// SuspendUser suspends a user: no sign-in, every token and session revoked.
func (a *App) SuspendUser(ctx context.Context, p auth.Principal, id, reason string) (Result, error) {
	if err := notSelf(p, id, "suspend"); err != nil {
		return Result{}, err
	}
	res, err := a.execute(ctx, userKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		return domain.DecideSuspendUser(domain.FoldUser(h), reason, a.now())
	})
	if err != nil {
		return Result{}, err
	}
	return res, a.inTenant(ctx, p.Tenant, func(tx pgx.Tx) error { return store.RevokeUserSessions(ctx, tx, p.Tenant, id) })
}

// ReactivateUser ends a suspension.
func (a *App) ReactivateUser(ctx context.Context, p auth.Principal, id string) (Result, error) {
	return a.execute(ctx, userKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		return domain.DecideReactivateUser(domain.FoldUser(h), a.now())
	})
}

// OffboardUser deactivates a user for good: the event (which every
// service's auth layer and, later, assets and intake react to) first, then
// every refresh token revoked and the password deleted.
func (a *App) OffboardUser(ctx context.Context, p auth.Principal, id, reason string) (Result, error) {
	if err := notSelf(p, id, "offboard"); err != nil {
		return Result{}, err
	}
	res, err := a.execute(ctx, userKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		return domain.DecideOffboard(domain.FoldUser(h), reason, a.now())
	})
	if err != nil {
		return Result{}, err
	}
	return res, a.inTenant(ctx, p.Tenant, func(tx pgx.Tx) error {
		if err := store.RevokeUserSessions(ctx, tx, p.Tenant, id); err != nil {
			return err
		}
		return store.DeletePassword(ctx, tx, p.Tenant, id)
	})
}

// SetUserPassword lets an admin set a user's password; every session of
// the user is revoked.
func (a *App) SetUserPassword(ctx context.Context, p auth.Principal, id, pw string) (Result, error) {
	u, err := a.User(ctx, p.Tenant, id)
	if err != nil {
		return Result{}, err
	}
	if u.Status == domain.StatusOffboarded {
		return Result{}, &domain.ConflictError{Reason: "user " + u.Email + " was offboarded"}
	}
	if err := a.setPassword(ctx, p.Tenant, id, pw, u.Email, u.Name); err != nil {
		return Result{}, err
	}
	return a.passwordChanged(ctx, p.Tenant, id, identityv1.PasswordReasonSet)
}

// passwordChanged records a new password and revokes the user's sessions.
func (a *App) passwordChanged(ctx context.Context, tenant, id, reason string) (Result, error) {
	if err := a.inTenant(ctx, tenant, func(tx pgx.Tx) error { return store.RevokeUserSessions(ctx, tx, tenant, id) }); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, userKey(tenant, id), nil, func(h []any) ([]any, error) {
		out, err := domain.DecidePasswordChanged(domain.FoldUser(h), reason, a.now())
		if err == nil && reason == identityv1.PasswordReasonSet {
			out = append(out, identityv1.SessionsRevoked{UserID: id, Reason: "password set by an admin", Before: out[0].(identityv1.PasswordChanged).At})
		}
		return out, err
	})
}

// GrantAccess lets a user of p's provider tenant act in one of its clients.
func (a *App) GrantAccess(ctx context.Context, p auth.Principal, id, client, role string) (Result, error) {
	// The tenant named must be a child of the tenant acted in, first: any
	// other tenant does not exist for the caller (404), whatever the kind
	// of the caller's tenant.
	if client == p.Tenant {
		return Result{}, domain.ErrNotFound
	}
	if _, err := a.tenantFor(ctx, p, client); err != nil {
		return Result{}, err
	}
	home, err := a.tenantFor(ctx, p, p.Tenant)
	if err != nil {
		return Result{}, err
	}
	if home.Kind != identityv1.KindProvider {
		return Result{}, &domain.ConflictError{Reason: "only users of a provider tenant can be granted access to client tenants"}
	}
	return a.execute(ctx, userKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		return domain.DecideGrant(domain.FoldUser(h), client, role, a.now())
	})
}

// RevokeAccess ends a grant.
func (a *App) RevokeAccess(ctx context.Context, p auth.Principal, id, client string) (Result, error) {
	return a.execute(ctx, userKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		return domain.DecideRevokeGrant(domain.FoldUser(h), client, a.now())
	})
}
