package app

import (
	"context"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// NewAPIToken is what a caller gives for a new API token.
type NewAPIToken struct {
	Name      string
	Scopes    []string
	ExpiresAt time.Time
}

// CreatedAPIToken is a new token with its secret form, shown once.
type CreatedAPIToken struct {
	Token  domain.APIToken
	Secret string
	At     time.Time
}

// CreateAPIToken creates an API token in p's tenant. Only its SHA-256 is
// stored (in the event, where every verifier reads it).
func (a *App) CreateAPIToken(ctx context.Context, p auth.Principal, req NewAPIToken) (CreatedAPIToken, Result, error) {
	id, secret := auth.NewAPIToken(ulid.Make().String())
	now := a.now()
	c := domain.CreateAPIToken{ID: id, Name: req.Name, CreatedBy: p.ID, SecretHash: auth.HashSecret(secret),
		Scopes: req.Scopes, ExpiresAt: req.ExpiresAt, At: now}
	var created []any
	res, err := a.execute(ctx, es.Key{Tenant: p.Tenant, ID: id}, nil, func(h []any) ([]any, error) {
		out, err := domain.DecideCreateAPIToken(domain.FoldAPIToken(h), c, auth.ValidScope)
		created = out
		return out, err
	})
	if err != nil {
		return CreatedAPIToken{}, Result{}, err
	}
	return CreatedAPIToken{Token: domain.FoldAPIToken(created), Secret: secret, At: now.UTC()}, res, nil
}

// RevokeAPIToken revokes a token of p's tenant.
func (a *App) RevokeAPIToken(ctx context.Context, p auth.Principal, id string) (Result, error) {
	if !strings.HasPrefix(id, "at_") {
		return Result{}, domain.ErrNotFound
	}
	return a.execute(ctx, es.Key{Tenant: p.Tenant, ID: id}, nil, func(h []any) ([]any, error) {
		return domain.DecideRevokeAPIToken(domain.FoldAPIToken(h), p.ID, a.now())
	})
}
