// Package authtest mints credentials for tests of services behind
// libs/auth: a signing key, access tokens for any tenant and role, and an
// Authenticator that trusts that key, with a State tests can feed events.
package authtest

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth"
)

// Issuer signs access tokens with a key of its own.
type Issuer struct {
	Signer auth.Signer
	Public ed25519.PublicKey
	State  *auth.State
}

// New returns an Issuer with a fresh key and an empty State.
func New(t testing.TB) *Issuer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{Signer: auth.Signer{KID: "test-" + ulid.Make().String(), Key: priv}, Public: pub, State: auth.NewState()}
}

// Authenticator trusts the Issuer's key and consults its State.
func (i *Issuer) Authenticator() *auth.Authenticator {
	return auth.NewAuthenticator(auth.Config{
		Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{i.Signer.KID: i.Public}),
		State: i.State,
	})
}

// User describes the subject of a minted token.
type User struct {
	ID, Tenant, Email, Name string
	Roles                   []string
	Grants                  map[string]string
	Operator                bool
	SessionID               string
	// IssuedAt and TTL default to now and 15 minutes.
	IssuedAt time.Time
	TTL      time.Duration
}

// Token returns a signed access token for u. Empty ids are generated.
func (i *Issuer) Token(t testing.TB, u User) string {
	t.Helper()
	if u.ID == "" {
		u.ID = "u_" + ulid.Make().String()
	}
	if u.SessionID == "" {
		u.SessionID = "s_" + ulid.Make().String()
	}
	if u.IssuedAt.IsZero() {
		u.IssuedAt = time.Now()
	}
	if u.TTL == 0 {
		u.TTL = 15 * time.Minute
	}
	tok, err := i.Signer.Sign(auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: u.ID,
			IssuedAt: jwt.NewNumericDate(u.IssuedAt), NotBefore: jwt.NewNumericDate(u.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(u.IssuedAt.Add(u.TTL)), ID: ulid.Make().String(),
		},
		Tenant: u.Tenant, SessionID: u.SessionID, Roles: u.Roles, Grants: u.Grants,
		Operator: u.Operator, Email: u.Email, Name: u.Name,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// JWKS returns the Issuer's public key as a JWK Set (RFC 7517), to serve
// where an Authenticator built with auth.NewJWKS fetches it.
func (i *Issuer) JWKS(t testing.TB) []byte {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(i.Public, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: i.Signer.KID, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	set := jwkset.NewMemoryStorage()
	if err := set.KeyWrite(context.Background(), jwk); err != nil {
		t.Fatal(err)
	}
	b, err := set.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// NewTenantID returns a fresh tenant id (t_<ULID>).
func NewTenantID() string { return "t_" + ulid.Make().String() }
