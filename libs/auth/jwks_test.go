package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
)

// jwksServer serves identity's /.well-known/jwks.json for a set of issuers
// that can change (a key rotation).
type jwksServer struct {
	*httptest.Server
	mu       sync.Mutex
	issuers  []*authtest.Issuer
	requests atomic.Int32
}

func newJWKSServer(t *testing.T, issuers ...*authtest.Issuer) *jwksServer {
	s := &jwksServer{issuers: issuers}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		var keys []map[string]string
		for _, iss := range s.issuers {
			keys = append(keys, map[string]string{
				"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": auth.Algorithm, "kid": iss.Signer.KID,
				"x": base64.RawURLEncoding.EncodeToString(iss.Public),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(issuers ...*authtest.Issuer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuers = issuers
}

func TestNewJWKS(t *testing.T) {
	t.Parallel()
	current, next := authtest.New(t), authtest.New(t)
	srv := newJWKSServer(t, current)
	keys, err := auth.NewJWKS(t.Context(), srv.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	a := auth.NewAuthenticator(auth.Config{Keys: keys, State: auth.NewState()})
	tenant := authtest.NewTenantID()

	if _, err := authenticate(a, bearer(current.Token(t, authtest.User{Tenant: tenant})), ""); err != nil {
		t.Fatalf("token of the published key: %v", err)
	}
	// A key of the same kid but other bytes is refused.
	impostor := authtest.New(t)
	impostor.Signer.KID = current.Signer.KID
	if _, err := authenticate(a, bearer(impostor.Token(t, authtest.User{Tenant: tenant})), ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("other key, same kid: err = %v", err)
	}

	// Rotation: identity publishes the next key and signs with it. The
	// unknown kid makes the verifier fetch the keys again at once.
	srv.publish(current, next)
	before := srv.requests.Load()
	if _, err := authenticate(a, bearer(next.Token(t, authtest.User{Tenant: tenant})), ""); err != nil {
		t.Fatalf("token of a key published after start: %v", err)
	}
	if srv.requests.Load() == before {
		t.Error("no refetch on an unknown kid")
	}
	if _, err := authenticate(a, bearer(current.Token(t, authtest.User{Tenant: tenant})), ""); err != nil {
		t.Fatalf("token of the previous key during the rotation: %v", err)
	}

	// Tokens naming kids nobody published are refused, and are refetched
	// for at most once per 5 s: they cannot make the verifier hammer
	// identity.
	before = srv.requests.Load()
	for range 5 {
		if _, err := authenticate(a, bearer(authtest.New(t).Token(t, authtest.User{Tenant: tenant})), ""); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("unknown kid: err = %v", err)
		}
	}
	if n := srv.requests.Load() - before; n > 1 {
		t.Errorf("%d refetches for 5 unknown kids within seconds, want at most 1", n)
	}
}
