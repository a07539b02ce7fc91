package app

import (
	"context"
	"errors"
	"strings"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// MailActor is the ce-actor of users onboarded because they mailed the
// help desk.
const MailActor = "system:mail"

// OnboardRequester onboards email as a requester of tenant, without a
// password (they set one through a password reset), unless a user of the
// tenant has the address already: then it does nothing and reports false.
// It is what intake's mail channel asks for an unknown sender when the
// tenant's policy is create_requester.
func (a *App) OnboardRequester(ctx context.Context, tenant, email string) (bool, error) {
	name, _, _ := strings.Cut(email, "@")
	ctx = WithMeta(ctx, Meta{Actor: MailActor, CorrelationID: meta(ctx).CorrelationID})
	_, _, err := a.Onboard(ctx, auth.Principal{Kind: auth.KindUser, ID: MailActor, Tenant: tenant},
		NewUser{Email: email, Name: name, Roles: []string{identityv1.RoleRequester}})
	if errors.Is(err, domain.ErrAlreadyExists) {
		return false, nil
	}
	return err == nil, err
}
