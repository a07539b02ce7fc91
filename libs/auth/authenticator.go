package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// Config configures an Authenticator.
type Config struct {
	// Keys finds the public key of a token's kid (NewJWKS, or a static set
	// in tests). Required.
	Keys jwt.Keyfunc
	// State is the revocation state, kept up to date by a Follower.
	// Required.
	State *State
	// Ready, when set, must return nil before requests are judged
	// (Follower.Ready): until then they are answered 503.
	Ready func() error
	// Leeway is the clock skew tolerated (DefaultLeeway when zero).
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// OnAPITokenUse is called after an API token authenticated a request
	// (for its last-used time); it must not block.
	OnAPITokenUse func(tokenID, tenant string, at time.Time)
}

// Directory returns the state the authenticator follows: tenants by slug
// and users by e-mail for the services that need them (intake's mail).
func (a *Authenticator) Directory() *State { return a.cfg.State }

// Authenticator verifies the credential of a request.
type Authenticator struct {
	cfg    Config
	parser *jwt.Parser
	// verified remembers the claims of access tokens whose signature and
	// registered claims checked out, by the token's SHA-256, for at most
	// verifiedFor: a client sends the same token for many requests, and an
	// Ed25519 verification costs tens of microseconds. Expiry and the
	// revocation state are still checked on every request.
	verified *lru.Cache[[32]byte, verifiedToken]
}

// verifiedToken is a cache entry of Authenticator.verified.
type verifiedToken struct {
	claims Claims
	at     time.Time
}

const (
	verifiedSize = 10000
	// verifiedFor bounds how long a verification is trusted: a key
	// withdrawn from the JWKS (a compromise) stops admitting cached tokens
	// within it.
	verifiedFor = time.Minute
)

// NewAuthenticator returns an Authenticator; it panics on a missing Keys or
// State (a wiring bug).
func NewAuthenticator(cfg Config) *Authenticator {
	if cfg.Keys == nil || cfg.State == nil {
		panic("auth.NewAuthenticator: Keys and State are required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	verified, err := lru.New[[32]byte, verifiedToken](verifiedSize)
	if err != nil {
		panic(fmt.Sprintf("auth: %v", err)) // only for a size <= 0
	}
	return &Authenticator{
		cfg:      cfg,
		verified: verified,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{Algorithm}),
			jwt.WithIssuer(Issuer),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
			// One spelling per token: without it, a signature whose unused
			// trailing bits differ decodes to the same bytes and verifies,
			// so one token would have several accepted forms.
			jwt.WithStrictDecoding(),
		),
	}
}

// NewJWKS returns the keys published at url (identity's
// /.well-known/jwks.json), cached and refreshed every 10 minutes, and
// refetched (at most every 5 s) when a token names an unknown kid, which is
// what a key rotation looks like to a verifier. The first fetch happens
// when the first token is checked, not here: in the all-in-one binary url
// is this process's own listener, which serves only once every module has
// started. ctx ends the refreshing.
func NewJWKS(ctx context.Context, url string) (jwt.Keyfunc, error) {
	if url == "" {
		return nil, errors.New("auth: no JWKS URL")
	}
	var (
		once sync.Once
		kf   keyfunc.Keyfunc
		err  error
	)
	return func(t *jwt.Token) (any, error) {
		once.Do(func() { kf, err = newJWKS(ctx, url) })
		if err != nil {
			return nil, err
		}
		return kf.Keyfunc(t)
	}, nil
}

func newJWKS(ctx context.Context, url string) (keyfunc.Keyfunc, error) {
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:            &http.Client{Timeout: 5 * time.Second},
		HTTPTimeout:       5 * time.Second,
		RefreshInterval:   10 * time.Minute,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(5*time.Second), 1),
		RateLimitWaitMax:  2 * time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			// Without keys every token is refused: say why, at most once a
			// minute (refreshes retry every few seconds).
			var last atomic.Int64
			return func(ctx context.Context, err error) {
				if now := time.Now().Unix(); now-last.Load() >= 60 {
					last.Store(now)
					slog.WarnContext(ctx, "cannot fetch the signing keys; access tokens are refused until it works", "url", u, "err", err)
				}
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", url, err)
	}
	return kf, nil
}

// Authenticate verifies r's credential (Authorization: Bearer, either an
// access token or an API token) and X-Acting-Tenant, and returns the
// principal. Errors wrap ErrUnauthenticated, ErrNoSuchTenant or
// ErrUnavailable; their text is for logs, never for the client.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(); err != nil {
			return Principal{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	token, err := bearer(r.Header.Get("Authorization"))
	if err != nil {
		return Principal{}, err
	}
	acting := strings.TrimSpace(r.Header.Get(HeaderActingTenant))
	if strings.HasPrefix(token, APITokenPrefix) {
		return a.apiToken(token, acting)
	}
	return a.accessToken(token, acting)
}

// bearer extracts the token of an Authorization header.
func bearer(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("%w: no Authorization header", ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 8192 {
		return "", fmt.Errorf("%w: Authorization is not a Bearer token", ErrUnauthenticated)
	}
	return token, nil
}

func (a *Authenticator) accessToken(token, acting string) (Principal, error) {
	c, err := a.claims(token)
	if err != nil {
		return Principal{}, err
	}
	if !strings.HasPrefix(c.Subject, identityv1.UserIDPrefix) || !strings.HasPrefix(c.Tenant, identityv1.TenantIDPrefix) ||
		c.SessionID == "" || c.IssuedAt == nil {
		return Principal{}, fmt.Errorf("%w: token lacks sub, tid, sid or iat", ErrUnauthenticated)
	}
	if err := a.cfg.State.checkUser(c.Subject, c.Tenant, c.SessionID, c.IssuedAt.Time); err != nil {
		return Principal{}, err
	}
	p := Principal{
		Kind: KindUser, ID: c.Subject, HomeTenant: c.Tenant, Tenant: c.Tenant,
		Roles: slices.Clone(c.Roles), Email: c.Email, Name: c.Name, SessionID: c.SessionID, Operator: c.Operator,
	}
	if acting == "" {
		return p, nil
	}
	id, ok := a.cfg.State.resolveTenant(acting)
	if !ok {
		id = acting // maybe created a moment ago: only a grant in the token can admit it
	}
	if id == c.Tenant {
		return p, nil
	}
	role, granted := c.Grants[id]
	if !granted {
		return Principal{}, fmt.Errorf("%w: %s not granted", ErrNoSuchTenant, acting)
	}
	if t, known := a.cfg.State.tenantFacts(id); known && (t.suspended || (t.parent != "" && t.parent != c.Tenant)) {
		return Principal{}, fmt.Errorf("%w: %s suspended or not a client of %s", ErrNoSuchTenant, acting, c.Tenant)
	}
	p.Tenant, p.Acting, p.Roles, p.Operator = id, true, []string{role}, false
	return p, nil
}

// claims verifies an access token's signature and registered claims, or
// finds it verified within the last verifiedFor (then only expiry is
// checked again).
func (a *Authenticator) claims(token string) (Claims, error) {
	key := sha256.Sum256([]byte(token))
	now := a.cfg.Now()
	if v, ok := a.verified.Get(key); ok && now.Sub(v.at) < verifiedFor {
		if v.claims.ExpiresAt == nil || !now.Before(v.claims.ExpiresAt.Add(a.cfg.Leeway)) {
			a.verified.Remove(key)
			return Claims{}, fmt.Errorf("%w: token is expired", ErrUnauthenticated)
		}
		return v.claims, nil
	}
	var c Claims
	if _, err := a.parser.ParseWithClaims(token, &c, a.cfg.Keys); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	a.verified.Add(key, verifiedToken{claims: c, at: now})
	return c, nil
}

func (a *Authenticator) apiToken(token, acting string) (Principal, error) {
	id, ok := ParseAPIToken(token)
	if !ok {
		return Principal{}, fmt.Errorf("%w: malformed API token", ErrUnauthenticated)
	}
	t, known := a.cfg.State.apiToken(id)
	now := a.cfg.Now()
	switch {
	case !known:
		return Principal{}, fmt.Errorf("%w: unknown API token %s", ErrUnauthenticated, id)
	case !SameHash(HashSecret(token), t.hash):
		return Principal{}, fmt.Errorf("%w: API token %s does not match", ErrUnauthenticated, id)
	case t.revoked:
		return Principal{}, fmt.Errorf("%w: API token %s revoked", ErrUnauthenticated, id)
	case !t.expires.IsZero() && !now.Before(t.expires):
		return Principal{}, fmt.Errorf("%w: API token %s expired", ErrUnauthenticated, id)
	}
	if f, ok := a.cfg.State.tenantFacts(t.tenant); ok && f.suspended {
		return Principal{}, fmt.Errorf("%w: tenant of API token %s suspended", ErrUnauthenticated, id)
	}
	if acting != "" {
		if ref, _ := a.cfg.State.resolveTenant(acting); ref != t.tenant && acting != t.tenant {
			return Principal{}, fmt.Errorf("%w: API tokens act only in their own tenant", ErrNoSuchTenant)
		}
	}
	if a.cfg.OnAPITokenUse != nil {
		a.cfg.OnAPITokenUse(id, t.tenant, now)
	}
	return Principal{Kind: KindAPIToken, ID: id, HomeTenant: t.tenant, Tenant: t.tenant, Scopes: t.scopes}, nil
}

// IsUnavailable reports whether err means the verifier is not ready.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }
