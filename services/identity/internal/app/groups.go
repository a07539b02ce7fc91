package app

import (
	"context"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

func groupKey(tenant, id string) es.Key { return es.Key{Tenant: tenant, ID: id} }

// CreateGroup creates a support group in p's tenant.
func (a *App) CreateGroup(ctx context.Context, p auth.Principal, name string, tier int, skills []string) (domain.Group, Result, error) {
	id := newID(identityv1.GroupIDPrefix)
	var created []any
	res, err := a.execute(ctx, groupKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		out, err := domain.DecideCreateGroup(domain.FoldGroup(h), id, name, tier, skills, a.now())
		created = out
		return out, err
	})
	if err != nil {
		return domain.Group{}, Result{}, err
	}
	return domain.FoldGroup(created), res, nil
}

// UpdateGroup changes a group.
func (a *App) UpdateGroup(ctx context.Context, p auth.Principal, id string, ifMatch *uint64, c domain.UpdateGroup) (Result, error) {
	c.At = a.now()
	return a.execute(ctx, groupKey(p.Tenant, id), ifMatch, func(h []any) ([]any, error) {
		return domain.DecideUpdateGroup(domain.FoldGroup(h), c)
	})
}

// DeleteGroup removes a group.
func (a *App) DeleteGroup(ctx context.Context, p auth.Principal, id string) (Result, error) {
	return a.execute(ctx, groupKey(p.Tenant, id), nil, func(h []any) ([]any, error) {
		return domain.DecideDeleteGroup(domain.FoldGroup(h), a.now())
	})
}

// group loads a group of p's tenant that exists.
func (a *App) group(ctx context.Context, tenant, id string) (domain.Group, error) {
	history, _, err := a.load(ctx, groupKey(tenant, id))
	if err != nil {
		return domain.Group{}, err
	}
	g := domain.FoldGroup(history)
	if !g.Exists() {
		return domain.Group{}, domain.ErrNotFound
	}
	return g, nil
}

// AddMember adds a user to a group (membership is the user's).
func (a *App) AddMember(ctx context.Context, p auth.Principal, group, user string) (Result, error) {
	if _, err := a.group(ctx, p.Tenant, group); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, userKey(p.Tenant, user), nil, func(h []any) ([]any, error) {
		return domain.DecideJoinGroup(domain.FoldUser(h), group, a.now())
	})
}

// RemoveMember removes a user from a group.
func (a *App) RemoveMember(ctx context.Context, p auth.Principal, group, user string) (Result, error) {
	if _, err := a.group(ctx, p.Tenant, group); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, userKey(p.Tenant, user), nil, func(h []any) ([]any, error) {
		return domain.DecideLeaveGroup(domain.FoldUser(h), group, a.now())
	})
}
