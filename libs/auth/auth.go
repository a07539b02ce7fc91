// Package auth authenticates and authorizes every request of every OpsDesk
// service, locally: access tokens are EdDSA-signed JWTs checked against the
// identity service's published keys (JWKS, cached, refetched on an unknown
// kid), API tokens are checked against their SHA-256 as announced on the
// IDENTITY stream, and the same stream tells every process within seconds
// which sessions, users and tenants were revoked or suspended. No request
// waits on another service.
//
// A verified caller becomes a Principal in the request's context: who it is,
// the tenant the request acts in, and what it may do. Each route declares
// the permission it needs next to the route, in the service's OpenAPI
// document (x-permission on the operation); OperationMiddlewares turns those
// declarations into Echo middleware, and refuses a document with an
// undeclared operation.
//
// Tenant isolation: the tenant comes only from the verified credential. An
// MSP operator acts in a client tenant by naming it (X-Acting-Tenant), and
// only if granted; naming any other tenant is answered 404, as if it did not
// exist.
package auth

import (
	"context"
	"errors"
	"slices"
)

// Kind says what authenticated a principal.
type Kind string

// Kinds of principal.
const (
	KindUser     Kind = "user"      // a person, with an access token
	KindAPIToken Kind = "api_token" // an integration, with an API token
)

// Principal is a verified caller.
type Principal struct {
	Kind Kind
	// ID is the user id (u_...) or the API token id (at_...).
	ID string
	// HomeTenant is the tenant the user or token belongs to.
	HomeTenant string
	// Tenant is the tenant this request acts in: HomeTenant, or a client
	// tenant the user was granted and named in X-Acting-Tenant.
	Tenant string
	// Acting is true when Tenant is not HomeTenant.
	Acting bool
	// Roles are the user's roles in Tenant (the grant's role when acting).
	Roles []string
	// Scopes are an API token's permissions.
	Scopes []string
	// Email and Name describe a user (empty for API tokens).
	Email string
	Name  string
	// SessionID is the user's session (refresh-token family).
	SessionID string
	// Operator is true for users of the installation's operator tenant
	// (not when acting elsewhere).
	Operator bool
}

// Can reports whether the principal has permission p in its Tenant.
func (p Principal) Can(perm Permission) bool {
	switch perm {
	case PermPublic, PermAuthenticated:
		return p.ID != ""
	}
	if p.Kind == KindAPIToken {
		return slices.Contains(p.Scopes, string(perm))
	}
	if perm == PermPlatformOperate {
		return p.Operator && !p.Acting && slices.Contains(p.Roles, RoleAdmin)
	}
	for _, r := range p.Roles {
		if slices.Contains(rolePermissions[r], perm) {
			return true
		}
	}
	return false
}

// Actor is the principal as the ce-actor of the events it causes.
func (p Principal) Actor() string { return p.ID }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the auth middleware put into ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok && p.ID != ""
}

// Errors of Authenticate. The middleware answers them as problem+json.
var (
	// ErrUnauthenticated: no credential, or one that is malformed, expired,
	// tampered with, revoked, or of a suspended user or tenant (401).
	ErrUnauthenticated = errors.New("auth: not authenticated")
	// ErrNoSuchTenant: X-Acting-Tenant names a tenant the caller was not
	// granted (404, like any resource of another tenant).
	ErrNoSuchTenant = errors.New("auth: no such tenant")
	// ErrForbidden: authenticated, but without the route's permission (403).
	ErrForbidden = errors.New("auth: permission denied")
	// ErrUnavailable: the signing keys or the revocation state are not
	// known yet, e.g. right after start (503).
	ErrUnavailable = errors.New("auth: not ready")
)
