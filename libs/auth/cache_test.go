package auth_test

import (
	"crypto/ed25519"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
)

// TestVerifiedTokensAreCachedNotTrustedBlindly: a token's signature is
// checked once per minute at most, but its expiry and the revocation state
// are checked on every request.
func TestVerifiedTokensAreCachedNotTrustedBlindly(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	var lookups atomic.Int32
	keys := auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public})
	now := time.Now()
	clock := func() time.Time { return now }
	a := auth.NewAuthenticator(auth.Config{
		Keys:  func(tok *jwt.Token) (any, error) { lookups.Add(1); return keys(tok) },
		State: iss.State,
		Now:   clock,
	})
	tenant, user, session := authtest.NewTenantID(), newUserID(), newSessionID()
	tok := iss.Token(t, authtest.User{ID: user, Tenant: tenant, SessionID: session, Roles: []string{auth.RoleAgent},
		IssuedAt: now, TTL: 3 * time.Minute})
	for range 3 {
		if _, err := authenticate(a, bearer(tok), ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := lookups.Load(); n != 1 {
		t.Fatalf("the signature was checked %d times for 3 requests within a minute, want once", n)
	}
	// Past the cache's minute the signature is checked again.
	now = now.Add(90 * time.Second)
	if _, err := authenticate(a, bearer(tok), ""); err != nil || lookups.Load() != 2 {
		t.Fatalf("after 90 s: %v, %d signature checks, want 2", err, lookups.Load())
	}
	// A revocation refuses the cached token at once.
	newFeed(t, iss.State).apply(tenant, user, identityv1.TypeSessionRevoked,
		identityv1.SessionRevoked{UserID: user, SessionID: session, Reason: "logout", At: now})
	if _, err := authenticate(a, bearer(tok), ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked session's cached token: %v, want refused", err)
	}
	// Expiry is checked on cached tokens too.
	other := iss.Token(t, authtest.User{Tenant: tenant, Roles: []string{auth.RoleAgent}, IssuedAt: now, TTL: time.Minute})
	if _, err := authenticate(a, bearer(other), ""); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute + auth.DefaultLeeway + time.Second)
	if _, err := authenticate(a, bearer(other), ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired cached token: %v, want refused", err)
	}
	// A tampered copy is another token: verified on its own, and refused.
	tampered := tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[tok[len(tok)-2:] != "AA"]
	if _, err := authenticate(a, bearer(tampered), ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("tampered token: %v, want refused", err)
	}
}
