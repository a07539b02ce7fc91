package auth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/es"
)

// feed folds identity events into a State, numbering them like a stream.
type feed struct {
	t     testing.TB
	state *auth.State
	seq   uint64
}

func newFeed(t testing.TB, s *auth.State) *feed { return &feed{t: t, state: s} }

// apply folds one event of type typ on subject identity.<tenant>.<aggregate>.
func (f *feed) apply(tenant, aggregate, typ string, payload any) {
	f.t.Helper()
	f.seq++
	if err := f.state.Apply(identityEvent(f.t, tenant, aggregate, typ, payload, f.seq)); err != nil {
		f.t.Fatalf("apply %s: %v", typ, err)
	}
}

// identityEvent is an IDENTITY event as a Follower decodes it from the
// stream: payload as JSON, subject identity.<tenant>.<aggregate>.
func identityEvent(t testing.TB, tenant, aggregate, typ string, payload any, seq uint64) es.Event {
	t.Helper()
	data, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return es.Event{
		ID: ulid.Make().String(), Type: typ, Source: identityv1.Source,
		Tenant: tenant, AggregateID: aggregate, Time: time.Now().UTC(), Actor: "u_admin",
		Data: data, Subject: identityv1.Context + "." + tenant + "." + aggregate, Sequence: seq,
	}
}

// tenantCreated announces tenant id with slug and parent ("" for none).
func (f *feed) tenantCreated(id, slug, parent, kind string) {
	f.t.Helper()
	f.apply(id, id, identityv1.TypeTenantCreated, identityv1.TenantCreated{
		TenantID: id, Slug: slug, Name: slug, Kind: kind, ParentID: parent,
		TimeZone: "UTC", Locale: "en", CreatedAt: time.Now().UTC(),
	})
}

func (f *feed) tenantSuspended(id string, at time.Time) {
	f.t.Helper()
	f.apply(id, id, identityv1.TypeTenantSuspended, identityv1.TenantSuspended{TenantID: id, At: at})
}

func (f *feed) tenantReactivated(id string, at time.Time) {
	f.t.Helper()
	f.apply(id, id, identityv1.TypeTenantReactivated, identityv1.TenantReactivated{TenantID: id, At: at})
}

func (f *feed) userOnboarded(tenant, user string) {
	f.t.Helper()
	f.apply(tenant, user, identityv1.TypeUserOnboarded, identityv1.UserOnboarded{
		UserID: user, TenantID: tenant, Email: user + "@example.com", Roles: []string{auth.RoleAgent},
		OnboardedAt: time.Now().Add(-24 * time.Hour).UTC(),
	})
}

// apiTokenCreated announces an API token of tenant with the SHA-256 of
// its secret form.
func (f *feed) apiTokenCreated(tenant, id, token string, expires time.Time, scopes ...string) {
	f.t.Helper()
	f.apply(tenant, id, identityv1.TypeAPITokenCreated, identityv1.APITokenCreated{
		TokenID: id, Name: "integration", Scopes: scopes, CreatedBy: "u_admin",
		ExpiresAt: expires, SecretHash: auth.HashSecret(token), CreatedAt: time.Now().UTC(),
	})
}

// authenticate runs a.Authenticate on a request with the given
// Authorization and X-Acting-Tenant headers (none when empty).
func authenticate(a *auth.Authenticator, authorization, acting string) (auth.Principal, error) {
	r := httptest.NewRequest(http.MethodGet, "/v1/tickets", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if acting != "" {
		r.Header.Set(auth.HeaderActingTenant, acting)
	}
	return a.Authenticate(r)
}

func bearer(token string) string { return "Bearer " + token }

func newUserID() string       { return identityv1.UserIDPrefix + ulid.Make().String() }
func newSessionID() string    { return identityv1.SessionIDPrefix + ulid.Make().String() }
func newAPITokenULID() string { return ulid.Make().String() }

// claimsFor returns the claims authtest.Issuer.Token would sign for u, so
// tests can break one of them and sign the result themselves.
func claimsFor(u authtest.User) auth.Claims {
	if u.ID == "" {
		u.ID = newUserID()
	}
	if u.SessionID == "" {
		u.SessionID = newSessionID()
	}
	if u.IssuedAt.IsZero() {
		u.IssuedAt = time.Now()
	}
	if u.TTL == 0 {
		u.TTL = 15 * time.Minute
	}
	return auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: u.ID,
			IssuedAt: jwt.NewNumericDate(u.IssuedAt), NotBefore: jwt.NewNumericDate(u.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(u.IssuedAt.Add(u.TTL)), ID: ulid.Make().String(),
		},
		Tenant: u.Tenant, SessionID: u.SessionID, Roles: u.Roles, Grants: u.Grants,
		Operator: u.Operator, Email: u.Email, Name: u.Name,
	}
}

// sign signs c with the issuer's key, failing the test on error.
func sign(t testing.TB, iss *authtest.Issuer, c auth.Claims) string {
	t.Helper()
	tok, err := iss.Signer.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// zeroTime is an API token's ExpiresAt that never expires.
var zeroTime time.Time

// timeAgo is hours hours ago.
func timeAgo(hours int) time.Time { return time.Now().Add(-time.Duration(hours) * time.Hour) }
