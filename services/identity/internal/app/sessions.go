package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
	"github.com/opsdesk/opsdesk/services/identity/internal/password"
	"github.com/opsdesk/opsdesk/services/identity/internal/store"
)

// Tokens is a successful grant.
type Tokens struct {
	Access, Refresh string
	ExpiresIn       time.Duration
}

// ResetPurpose is the subkey a password-reset token is sealed with for
// the notifications service: secret.Key.Derive(ResetPurpose).
const ResetPurpose = "identity/password-reset"

// account is what sign-in needs of a user, read from the event store (not
// the read model, so a user can sign in the moment it is onboarded).
type account struct {
	tenant domain.Tenant
	user   domain.User
}

// nobody stands in for a tenant or user that was not found, so that sign-in
// does the same work (the same loads and queries) whether or not it finds
// them: answer times must not tell which.
const nobody = "u_00000000000000000000000000"
const noTenant = "t_00000000000000000000000000"

// lookup finds a user by tenant slug and e-mail through the claims. A
// missing tenant or user is not an error: the zero account.
func (a *App) lookup(ctx context.Context, slug, email string) (account, error) {
	claim := domain.SlugClaimID(slug)
	if !domain.ValidSlug(slug) {
		claim = domain.SlugClaimID("-")
	}
	history, _, err := a.load(ctx, es.Key{Tenant: identityv1.GlobalTenant, ID: claim})
	if err != nil {
		return account{}, err
	}
	tenantID := cmpOr(domain.FoldClaim(history).Holder, noTenant)
	if history, _, err = a.load(ctx, tenantKey(tenantID)); err != nil {
		return account{}, err
	}
	acct := account{tenant: domain.FoldTenant(history)}
	if history, _, err = a.load(ctx, es.Key{Tenant: tenantID, ID: domain.EmailClaimID(email)}); err != nil {
		return account{}, err
	}
	userID := cmpOr(domain.FoldClaim(history).Holder, nobody)
	if history, _, err = a.load(ctx, userKey(tenantID, userID)); err != nil {
		return account{}, err
	}
	acct.user = domain.FoldUser(history)
	return acct, nil
}

func (acct account) active() bool {
	return acct.tenant.Exists() && !acct.tenant.Suspended && acct.user.Exists() && acct.user.Status == domain.StatusActive
}

// PasswordGrant signs a user in. Wrong password, unknown user, unknown
// tenant, or a user or tenant that may not sign in: all ErrInvalidGrant,
// after the same password check, so neither the answer nor its time tells
// them apart. Failures count per account and per client address; past the
// thresholds the caller gets *LockedError.
func (a *App) PasswordGrant(ctx context.Context, slug, email, pw, addr string) (Tokens, error) {
	email = domain.NormalizeEmail(email)
	acctKey, addrKey := store.AccountKey(slug, email), store.AddressKey(addr)
	if wait, err := a.throttle.Locked(ctx, acctKey, addrKey); err != nil {
		return Tokens{}, err
	} else if wait > 0 {
		return Tokens{}, &LockedError{RetryAfter: wait}
	}
	acct, err := a.lookup(ctx, slug, email)
	if err != nil {
		return Tokens{}, err
	}
	var hash string
	tenantID, userID := cmpOr(acct.tenant.ID, noTenant), cmpOr(acct.user.ID, nobody)
	err = a.inTenant(ctx, tenantID, func(tx pgx.Tx) error {
		var err error
		hash, err = store.PasswordHash(ctx, tx, tenantID, userID)
		return err
	})
	if err != nil {
		return Tokens{}, err
	}
	ok, err := a.hasher.Verify(ctx, pw, hash)
	if err != nil {
		return Tokens{}, err
	}
	if !ok || !acct.active() {
		if _, err := a.throttle.Fail(ctx,
			store.Limit{Key: acctKey, Threshold: a.cfg.AccountThreshold},
			store.Limit{Key: addrKey, Threshold: a.cfg.AddressThreshold}); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, ErrInvalidGrant
	}
	if err := a.throttle.Succeed(ctx, acctKey); err != nil {
		return Tokens{}, err
	}
	session := newID(identityv1.SessionIDPrefix)
	var refresh string
	err = a.inTenant(ctx, acct.tenant.ID, func(tx pgx.Tx) error {
		var err error
		refresh, err = store.IssueRefresh(ctx, tx, acct.tenant.ID, acct.user.ID, session, a.cfg.RefreshTTL)
		return err
	})
	if err != nil {
		return Tokens{}, err
	}
	return a.sign(acct, session, refresh)
}

// RefreshGrant exchanges a refresh token for a new access token and a new
// refresh token (rotation). Presenting a spent one revokes the whole
// session, and the access tokens issued in it stop working everywhere
// (SessionRevoked). Anything wrong is ErrInvalidGrant.
func (a *App) RefreshGrant(ctx context.Context, token string) (Tokens, error) {
	tenant, ok := store.RefreshTenant(token)
	if !ok {
		return Tokens{}, ErrInvalidGrant
	}
	var (
		res  store.Refresh
		acct account
	)
	err := a.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var err error
		if res, err = store.RotateRefresh(ctx, tx, token, a.cfg.RefreshTTL); err != nil || res.Reused {
			return err // commit the revocation of a reused family
		}
		if acct, err = a.account(ctx, tenant, res.User); err != nil {
			return err
		}
		if !acct.active() {
			return ErrInvalidGrant // roll back: nothing issued
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrInvalidToken), errors.Is(err, ErrInvalidGrant):
		return Tokens{}, ErrInvalidGrant
	case err != nil:
		return Tokens{}, err
	case res.Reused:
		a.log.WarnContext(ctx, "spent refresh token presented again; session revoked", "tenant", tenant, "user", res.User, "session", res.Session)
		if _, err := a.revokeSession(ctx, tenant, res.User, res.Session, "refresh token reused"); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, ErrInvalidGrant
	}
	return a.sign(acct, res.Session, res.Token)
}

// account loads a user and its tenant by id.
func (a *App) account(ctx context.Context, tenant, user string) (account, error) {
	history, _, err := a.load(ctx, tenantKey(tenant))
	if err != nil {
		return account{}, err
	}
	acct := account{tenant: domain.FoldTenant(history)}
	if history, _, err = a.load(ctx, userKey(tenant, user)); err != nil {
		return account{}, err
	}
	acct.user = domain.FoldUser(history)
	return acct, nil
}

// sign issues the access token of a session.
func (a *App) sign(acct account, session, refresh string) (Tokens, error) {
	signer, err := a.keys.Signer()
	if err != nil {
		return Tokens{}, err
	}
	now := a.now()
	grants := acct.user.GrantsCopy()
	if len(grants) == 0 {
		grants = nil
	}
	access, err := signer.Sign(auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: acct.user.ID,
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(a.cfg.AccessTTL)), ID: ulid.Make().String(),
		},
		Tenant: acct.tenant.ID, SessionID: session, Roles: slices.Clone(acct.user.Roles), Grants: grants,
		Operator: acct.tenant.Operator, Email: acct.user.Email, Name: acct.user.Name,
	})
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{Access: access, Refresh: refresh, ExpiresIn: a.cfg.AccessTTL}, nil
}

// revokeSession revokes a session's refresh tokens and announces it, so the
// access tokens carrying its sid stop working in every service.
func (a *App) revokeSession(ctx context.Context, tenant, user, session, reason string) (Result, error) {
	if err := a.inTenant(ctx, tenant, func(tx pgx.Tx) error { return store.RevokeSession(ctx, tx, tenant, session) }); err != nil {
		return Result{}, err
	}
	return a.execute(ctx, userKey(tenant, user), nil, func(h []any) ([]any, error) {
		return domain.DecideRevokeSession(domain.FoldUser(h), session, reason, a.now())
	})
}

// Logout ends the caller's session.
func (a *App) Logout(ctx context.Context, p auth.Principal) (Result, error) {
	if p.Kind != auth.KindUser {
		return Result{}, fmt.Errorf("%w: API tokens have no session; revoke the token instead", auth.ErrForbidden)
	}
	return a.revokeSession(ctx, p.HomeTenant, p.ID, p.SessionID, "logout")
}

// RequestPasswordReset starts a password reset. It always succeeds (so it
// tells nobody whether the address is known) unless the caller is
// throttled; the work happens after the answer, so its time tells nothing
// either. An active user gets a single-use token, announced sealed to the
// notifications service in PasswordResetRequested.
func (a *App) RequestPasswordReset(ctx context.Context, slug, email, addr string) error {
	email = domain.NormalizeEmail(email)
	acctKey, addrKey := "reset:"+store.AccountKey(slug, email), "reset:"+store.AddressKey(addr)
	if wait, err := a.throttle.Locked(ctx, acctKey, addrKey); err != nil {
		return err
	} else if wait > 0 {
		return &LockedError{RetryAfter: wait}
	}
	// Every request counts, found or not: 5 an hour per account, 20 per
	// address, before backoff.
	if _, err := a.throttle.Fail(ctx,
		store.Limit{Key: acctKey, Threshold: 5}, store.Limit{Key: addrKey, Threshold: 20}); err != nil {
		return err
	}
	m := meta(ctx)
	go func() {
		ctx, cancel := context.WithTimeout(WithMeta(context.WithoutCancel(ctx), m), 30*time.Second)
		defer cancel()
		if err := a.requestReset(ctx, slug, email); err != nil {
			a.log.ErrorContext(ctx, "password reset request failed", "err", err)
		}
	}()
	return nil
}

func (a *App) requestReset(ctx context.Context, slug, email string) error {
	acct, err := a.lookup(ctx, slug, email)
	if err != nil || !acct.active() {
		return err
	}
	var id, token string
	err = a.inTenant(ctx, acct.tenant.ID, func(tx pgx.Tx) error {
		var err error
		id, token, err = store.IssueReset(ctx, tx, acct.tenant.ID, acct.user.ID, a.cfg.ResetTTL)
		return err
	})
	if err != nil {
		return err
	}
	sealed := a.cfg.Secret.Derive(ResetPurpose).Seal([]byte(token), []byte(id))
	expires := a.now().Add(a.cfg.ResetTTL)
	_, err = a.execute(ctx, userKey(acct.tenant.ID, acct.user.ID), nil, func(h []any) ([]any, error) {
		return domain.DecideRequestPasswordReset(domain.FoldUser(h), id, sealed, expires)
	})
	return err
}

// CompletePasswordReset sets a new password with a reset token and revokes
// every session of the user. A weak password is refused before the token is
// spent. A bad token is a *domain.ValidationError on "token".
func (a *App) CompletePasswordReset(ctx context.Context, token, pw string) error {
	badToken := &domain.ValidationError{Fields: []domain.FieldError{{Field: "token", Message: "is invalid, spent or expired"}}}
	tenant, ok := store.ResetTenant(token)
	if !ok {
		return badToken
	}
	var user string
	err := a.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		var err error
		if user, err = store.ConsumeReset(ctx, tx, token); err != nil {
			return err
		}
		acct, err := a.account(ctx, tenant, user)
		if err != nil {
			return err
		}
		if !acct.active() {
			return store.ErrInvalidToken
		}
		if err := password.Check(pw, acct.user.Email, acct.user.Name); err != nil {
			return &domain.ValidationError{Fields: []domain.FieldError{{Field: "password",
				Message: strings.TrimPrefix(err.Error(), password.ErrWeak.Error()+" ")}}}
		}
		hash, err := a.hasher.Hash(ctx, pw)
		if err != nil {
			return err
		}
		return store.SetPassword(ctx, tx, tenant, user, hash)
	})
	if errors.Is(err, store.ErrInvalidToken) {
		return badToken
	}
	if err != nil {
		return err
	}
	_, err = a.passwordChanged(WithMeta(ctx, Meta{Actor: user, CorrelationID: meta(ctx).CorrelationID}), tenant, user, identityv1.PasswordReasonReset)
	return err
}

// RecordTokenUse stores an API token's last use (from auth.UsageSubject).
func (a *App) RecordTokenUse(ctx context.Context, u auth.Usage) error {
	if !strings.HasPrefix(u.Tenant, identityv1.TenantIDPrefix) || !strings.HasPrefix(u.TokenID, identityv1.APITokenIDPrefix) {
		return fmt.Errorf("usage report for %q in %q: not a token", u.TokenID, u.Tenant)
	}
	return a.inTenant(ctx, u.Tenant, func(tx pgx.Tx) error { return store.RecordTokenUse(ctx, tx, u.Tenant, u.TokenID, u.At) })
}

// JWKS is the published key set.
func (a *App) JWKS() []byte { return a.keys.JWKS() }
