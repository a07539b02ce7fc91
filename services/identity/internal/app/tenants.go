package app

import (
	"context"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// NewTenant is what a caller gives for a new tenant.
type NewTenant struct{ Slug, Name, TimeZone, Locale string }

// CreateTenant creates a child of the tenant p acts in: a client of a
// provider, a department of an enterprise.
func (a *App) CreateTenant(ctx context.Context, p auth.Principal, req NewTenant) (domain.Tenant, Result, error) {
	history, _, err := a.load(ctx, tenantKey(p.Tenant))
	if err != nil {
		return domain.Tenant{}, Result{}, err
	}
	parent := domain.FoldTenant(history)
	if !parent.Exists() {
		return domain.Tenant{}, Result{}, domain.ErrNotFound
	}
	kind, ok := domain.ChildKind(parent.Kind)
	if !ok {
		return domain.Tenant{}, Result{}, &domain.ConflictError{Reason: "a " + parent.Kind + " tenant cannot have tenants of its own"}
	}
	return a.createTenant(ctx, domain.CreateTenant{ID: newID(identityv1.TenantIDPrefix), Slug: req.Slug, Name: req.Name,
		Kind: kind, ParentID: parent.ID, TimeZone: req.TimeZone, Locale: req.Locale, At: a.now()})
}

// createTenant appends a new tenant and the claim on its slug.
func (a *App) createTenant(ctx context.Context, c domain.CreateTenant) (domain.Tenant, Result, error) {
	payloads, err := domain.DecideCreateTenant(domain.Tenant{}, c)
	if err != nil {
		return domain.Tenant{}, Result{}, err
	}
	claim := es.Key{Tenant: identityv1.GlobalTenant, ID: domain.SlugClaimID(c.Slug)}
	res, err := a.create(ctx, tenantKey(c.ID), payloads, claim, identityv1.SlugClaimed{Slug: c.Slug, TenantID: c.ID})
	if err != nil {
		return domain.Tenant{}, Result{}, err
	}
	return domain.FoldTenant(payloads), res, nil
}

// tenantFor loads a tenant p may manage: its own, or one of its children.
func (a *App) tenantFor(ctx context.Context, p auth.Principal, id string) (domain.Tenant, error) {
	history, _, err := a.load(ctx, tenantKey(id))
	if err != nil {
		return domain.Tenant{}, err
	}
	t := domain.FoldTenant(history)
	if !t.Exists() || (t.ID != p.Tenant && t.ParentID != p.Tenant) {
		return domain.Tenant{}, domain.ErrNotFound
	}
	return t, nil
}

// UpdateTenant changes a tenant's display settings.
func (a *App) UpdateTenant(ctx context.Context, p auth.Principal, id string, ifMatch *uint64, c domain.UpdateTenant) (Result, error) {
	if _, err := a.tenantFor(ctx, p, id); err != nil {
		return Result{}, err
	}
	c.At = a.now()
	return a.execute(ctx, tenantKey(id), ifMatch, func(h []any) ([]any, error) {
		return domain.DecideUpdateTenant(domain.FoldTenant(h), c)
	})
}

// SuspendTenant suspends a child of p's tenant (never p's own).
func (a *App) SuspendTenant(ctx context.Context, p auth.Principal, id, reason string) (Result, error) {
	if id == p.Tenant {
		if _, err := a.tenantFor(ctx, p, id); err != nil {
			return Result{}, err
		}
		return Result{}, &domain.ConflictError{Reason: "a tenant cannot suspend itself; its parent can"}
	}
	if _, err := a.tenantFor(ctx, p, id); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, tenantKey(id), nil, func(h []any) ([]any, error) {
		return domain.DecideSuspendTenant(domain.FoldTenant(h), reason, a.now())
	})
}

// ReactivateTenant ends a child's suspension.
func (a *App) ReactivateTenant(ctx context.Context, p auth.Principal, id string) (Result, error) {
	if _, err := a.tenantFor(ctx, p, id); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, tenantKey(id), nil, func(h []any) ([]any, error) {
		return domain.DecideReactivateTenant(domain.FoldTenant(h), a.now())
	})
}

// Bootstrap is the first tenant and its admin, created on the first start.
type Bootstrap struct {
	Slug, Name, Kind, AdminEmail, AdminName, AdminPassword string
	TimeZone, Locale                                       string
}

// BootstrapResult says what Bootstrap did.
type BootstrapResult struct {
	TenantID, AdminID string
	Created           bool // false: the identity store was not empty
}

// Bootstrap creates the operator tenant and its first admin if no tenant
// exists yet. Replicas starting together are safe: the slug claim lets one
// win, and an admin already onboarded is kept.
func (a *App) Bootstrap(ctx context.Context, b Bootstrap) (BootstrapResult, error) {
	claim := es.Key{Tenant: identityv1.GlobalTenant, ID: domain.SlugClaimID(b.Slug)}
	history, _, err := a.load(ctx, claim)
	if err != nil {
		return BootstrapResult{}, err
	}
	tenantID := domain.FoldClaim(history).Holder
	created := false
	if tenantID == "" {
		t, _, err := a.createTenant(WithMeta(ctx, Meta{Actor: "bootstrap"}), domain.CreateTenant{
			ID: newID(identityv1.TenantIDPrefix), Slug: b.Slug, Name: b.Name, Kind: b.Kind, Operator: true,
			TimeZone: b.TimeZone, Locale: b.Locale, At: a.now()})
		switch {
		case err == nil:
			tenantID, created = t.ID, true
		case err == domain.ErrAlreadyExists: // a twin won the race
			if history, _, err = a.load(ctx, claim); err != nil {
				return BootstrapResult{}, err
			}
			tenantID = domain.FoldClaim(history).Holder
		default:
			return BootstrapResult{}, err
		}
	}
	admin := auth.Principal{Kind: auth.KindUser, ID: "bootstrap", Tenant: tenantID, HomeTenant: tenantID}
	u, _, err := a.Onboard(WithMeta(ctx, Meta{Actor: "bootstrap"}), admin, NewUser{
		Email: b.AdminEmail, Name: b.AdminName, Roles: []string{identityv1.RoleAdmin},
		Locale: b.Locale, TimeZone: b.TimeZone, Password: b.AdminPassword,
	})
	switch {
	case err == nil:
		return BootstrapResult{TenantID: tenantID, AdminID: u.ID, Created: true}, nil
	case err == domain.ErrAlreadyExists:
		return BootstrapResult{TenantID: tenantID, Created: created}, nil
	}
	return BootstrapResult{}, err
}
