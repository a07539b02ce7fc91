package main

import (
	"crypto/ed25519"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth"
)

// benchAuth stands in for identity: it signs the agents' access tokens the
// load generator sends, and intake verifies each one (signature, claims,
// revocation state) as in production.
var benchAuth = newBenchIssuer()

type benchIssuer struct {
	signer auth.Signer
	public ed25519.PublicKey

	mu     sync.Mutex
	tokens map[string]string
}

func newBenchIssuer() *benchIssuer {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	return &benchIssuer{signer: auth.Signer{KID: "bench", Key: priv}, public: pub, tokens: map[string]string{}}
}

func (b *benchIssuer) authenticator() *auth.Authenticator {
	return auth.NewAuthenticator(auth.Config{
		Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{b.signer.KID: b.public}),
		State: auth.NewState(),
	})
}

// token is an agent's access token of tenant, valid for the whole run.
func (b *benchIssuer) token(tenant string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.tokens[tenant]; ok {
		return t
	}
	now := time.Now()
	t, err := b.signer.Sign(auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: "u_" + ulid.Make().String(),
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(24 * time.Hour)), ID: ulid.Make().String(),
		},
		Tenant: tenant, SessionID: "s_" + ulid.Make().String(), Roles: []string{auth.RoleAgent}, Email: "bench@example.com",
	})
	if err != nil {
		panic(err)
	}
	b.tokens[tenant] = t
	return t
}
