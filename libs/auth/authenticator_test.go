package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
)

func TestAuthenticateAccessToken(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	tenant, user, sid := authtest.NewTenantID(), newUserID(), newSessionID()
	tok := iss.Token(t, authtest.User{
		ID: user, Tenant: tenant, Email: "ada@example.com", Name: "Ada Lovelace",
		Roles: []string{auth.RoleAgent, auth.RoleSupervisor}, SessionID: sid,
	})

	p, err := authenticate(a, bearer(tok), "")
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	want := auth.Principal{
		Kind: auth.KindUser, ID: user, HomeTenant: tenant, Tenant: tenant,
		Roles: []string{auth.RoleAgent, auth.RoleSupervisor}, Email: "ada@example.com", Name: "Ada Lovelace",
		SessionID: sid,
	}
	if !principalEqual(p, want) {
		t.Fatalf("principal = %+v, want %+v", p, want)
	}
	if p.Actor() != user {
		t.Errorf("Actor() = %q, want %q", p.Actor(), user)
	}

	// The scheme is case-insensitive and surrounding blanks are ignored.
	for _, h := range []string{"bearer " + tok, "BEARER " + tok, "Bearer   " + tok + "  "} {
		if _, err := authenticate(a, h, ""); err != nil {
			t.Errorf("Authorization %.12q...: %v", h, err)
		}
	}
}

func principalEqual(a, b auth.Principal) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.HomeTenant == b.HomeTenant && a.Tenant == b.Tenant &&
		a.Acting == b.Acting && slices.Equal(a.Roles, b.Roles) && slices.Equal(a.Scopes, b.Scopes) &&
		a.Email == b.Email && a.Name == b.Name && a.SessionID == b.SessionID && a.Operator == b.Operator
}

func TestPrincipalCanByRole(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	home := authtest.NewTenantID()

	type check struct {
		perm auth.Permission
		want bool
	}
	for _, tc := range []struct {
		name     string
		roles    []string
		operator bool
		checks   []check
	}{
		{"requester", []string{auth.RoleRequester}, false, []check{
			{auth.PermAuthenticated, true}, {auth.PermPublic, true},
			{auth.PermTicketsCreate, true}, {auth.PermTicketsRead, true}, {auth.PermTenantsRead, true},
			{auth.PermTicketsReadAll, false}, {auth.PermUsersRead, false}, {auth.PermUsersManage, false},
			{auth.PermGroupsManage, false}, {auth.PermTokensManage, false}, {auth.PermPlatformOperate, false},
		}},
		{"agent", []string{auth.RoleAgent}, false, []check{
			{auth.PermTicketsCreate, true}, {auth.PermTicketsRead, true},
			{auth.PermTicketsReadAll, true}, {auth.PermUsersRead, true}, {auth.PermGroupsRead, true},
			{auth.PermGroupsManage, false}, {auth.PermUsersManage, false}, {auth.PermTokensManage, false},
			{auth.PermTenantsManage, false}, {auth.PermPlatformOperate, false},
		}},
		{"supervisor", []string{auth.RoleSupervisor}, false, []check{
			{auth.PermTicketsReadAll, true}, {auth.PermGroupsManage, true},
			{auth.PermUsersManage, false}, {auth.PermTokensManage, false},
		}},
		{"admin", []string{auth.RoleAdmin}, false, []check{
			{auth.PermTicketsCreate, true}, {auth.PermTicketsReadAll, true}, {auth.PermGroupsManage, true},
			{auth.PermUsersManage, true}, {auth.PermTokensManage, true}, {auth.PermTenantsManage, true},
			{auth.PermPlatformOperate, false},
		}},
		{"operator admin", []string{auth.RoleAdmin}, true, []check{
			{auth.PermPlatformOperate, true}, {auth.PermUsersManage, true},
		}},
		{"operator agent", []string{auth.RoleAgent}, true, []check{
			{auth.PermPlatformOperate, false}, {auth.PermUsersManage, false},
		}},
		{"several roles", []string{auth.RoleRequester, auth.RoleAdmin}, false, []check{
			{auth.PermUsersManage, true}, {auth.PermTicketsCreate, true},
		}},
		{"unknown role", []string{"root"}, true, []check{
			{auth.PermAuthenticated, true}, {auth.PermTicketsRead, false}, {auth.PermPlatformOperate, false},
		}},
		{"no roles", nil, false, []check{
			{auth.PermAuthenticated, true}, {auth.PermTicketsRead, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := iss.Token(t, authtest.User{Tenant: home, Roles: tc.roles, Operator: tc.operator})
			p, err := authenticate(a, bearer(tok), "")
			if err != nil {
				t.Fatal(err)
			}
			if p.Operator != tc.operator {
				t.Errorf("Operator = %v, want %v", p.Operator, tc.operator)
			}
			for _, c := range tc.checks {
				if got := p.Can(c.perm); got != c.want {
					t.Errorf("roles %v: Can(%s) = %v, want %v", tc.roles, c.perm, got, c.want)
				}
			}
		})
	}

	t.Run("operator admin acting", func(t *testing.T) {
		t.Parallel()
		client := authtest.NewTenantID()
		tok := iss.Token(t, authtest.User{Tenant: home, Roles: []string{auth.RoleAdmin}, Operator: true,
			Grants: map[string]string{client: auth.RoleAdmin}})
		p, err := authenticate(a, bearer(tok), client)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Acting || p.Operator {
			t.Fatalf("Acting = %v, Operator = %v; want acting, not operator", p.Acting, p.Operator)
		}
		if p.Can(auth.PermPlatformOperate) {
			t.Error("an operator admin acting in a client tenant can platform:operate")
		}
		if !p.Can(auth.PermUsersManage) {
			t.Error("admin grant cannot users:manage in the client tenant")
		}
		// Even a Principal claiming both is refused platform:operate.
		forged := auth.Principal{ID: "u_x", Kind: auth.KindUser, Roles: []string{auth.RoleAdmin}, Operator: true, Acting: true}
		if forged.Can(auth.PermPlatformOperate) {
			t.Error("Acting principal with Operator set can platform:operate")
		}
	})
}

func TestPrincipalCanWithoutAuthentication(t *testing.T) {
	t.Parallel()
	var zero auth.Principal
	for _, perm := range auth.AllPermissions {
		if zero.Can(perm) {
			t.Errorf("zero Principal can %s", perm)
		}
	}
	tok := auth.Principal{Kind: auth.KindAPIToken, ID: "at_x", Roles: []string{auth.RoleAdmin}, Scopes: []string{"tickets:read"}}
	for perm, want := range map[auth.Permission]bool{
		auth.PermAuthenticated: true, auth.PermTicketsRead: true, auth.PermTicketsCreate: false,
		auth.PermUsersManage: false, auth.PermPlatformOperate: false,
	} {
		if got := tok.Can(perm); got != want {
			t.Errorf("API token (roles ignored): Can(%s) = %v, want %v", perm, got, want)
		}
	}
}

func TestAuthenticateMalformedAuthorization(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	valid := iss.Token(t, authtest.User{Tenant: authtest.NewTenantID(), Roles: []string{auth.RoleAgent}})
	parts := strings.Split(valid, ".")
	for _, tc := range []struct{ name, header string }{
		{"no header", ""},
		{"basic", "Basic x"},
		{"basic with credentials", "Basic dXNlcjpwYXNz"},
		{"bearer without token", "Bearer "},
		{"bearer blanks only", "Bearer    "},
		{"bearer alone", "Bearer"},
		{"token without scheme", valid},
		{"other scheme with valid token", "Token " + valid},
		{"garbage", "Bearer garbage"},
		{"two segments", "Bearer " + parts[0] + "." + parts[1]},
		{"four segments", "Bearer " + valid + ".x"},
		{"empty segments", "Bearer .."},
		{"oversized", "Bearer " + valid + strings.Repeat("A", 9000)},
		{"odk prefix only", "Bearer odk_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := authenticate(a, tc.header, "")
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if p.ID != "" {
				t.Errorf("principal %+v returned with an error", p)
			}
		})
	}
}

// flip replaces the character at i of s with another base64url character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// segment replaces segment n (0 header, 1 claims, 2 signature) of tok.
func segment(tok string, n int, f func(string) string) string {
	parts := strings.Split(tok, ".")
	parts[n] = f(parts[n])
	return strings.Join(parts, ".")
}

func TestAuthenticateRejectsInvalidTokens(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	tenant := authtest.NewTenantID()
	user := authtest.User{Tenant: tenant, Roles: []string{auth.RoleAdmin}}
	now := time.Now()

	for _, tc := range []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"expired", func(t *testing.T) string {
			u := user
			u.IssuedAt, u.TTL = now.Add(-time.Hour), 15*time.Minute
			return iss.Token(t, u)
		}},
		{"expired beyond leeway", func(t *testing.T) string {
			u := user
			u.IssuedAt, u.TTL = now.Add(-16*time.Minute), 15*time.Minute // exp 1m ago, leeway 30s
			return iss.Token(t, u)
		}},
		{"not yet valid beyond leeway", func(t *testing.T) string {
			u := user
			u.IssuedAt = now.Add(2 * time.Minute)
			return iss.Token(t, u)
		}},
		{"nbf in the future", func(t *testing.T) string {
			c := claimsFor(user)
			c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute))
			return sign(t, iss, c)
		}},
		{"wrong issuer", func(t *testing.T) string {
			c := claimsFor(user)
			c.Issuer = "evil"
			return sign(t, iss, c)
		}},
		{"no issuer", func(t *testing.T) string {
			c := claimsFor(user)
			c.Issuer = ""
			return sign(t, iss, c)
		}},
		{"wrong audience", func(t *testing.T) string {
			c := claimsFor(user)
			c.Audience = jwt.ClaimStrings{"other-service"}
			return sign(t, iss, c)
		}},
		{"no audience", func(t *testing.T) string {
			c := claimsFor(user)
			c.Audience = nil
			return sign(t, iss, c)
		}},
		{"no expiry", func(t *testing.T) string {
			c := claimsFor(user)
			c.ExpiresAt = nil
			return sign(t, iss, c)
		}},
		{"no iat", func(t *testing.T) string {
			c := claimsFor(user)
			c.IssuedAt = nil
			return sign(t, iss, c)
		}},
		{"no sid", func(t *testing.T) string {
			c := claimsFor(user)
			c.SessionID = ""
			return sign(t, iss, c)
		}},
		{"sub without u_", func(t *testing.T) string {
			u := user
			u.ID = "01K94FEN600NX9YM94KCH3DVV7"
			return iss.Token(t, u)
		}},
		{"sub of an API token", func(t *testing.T) string {
			u := user
			u.ID = "at_01K94FEN600NX9YM94KCH3DVV7"
			return iss.Token(t, u)
		}},
		{"no sub", func(t *testing.T) string {
			c := claimsFor(user)
			c.Subject = ""
			return sign(t, iss, c)
		}},
		{"tid without t_", func(t *testing.T) string {
			u := user
			u.Tenant = "acme"
			return iss.Token(t, u)
		}},
		{"no tid", func(t *testing.T) string {
			u := user
			u.Tenant = ""
			return iss.Token(t, u)
		}},
		{"tampered claims", func(t *testing.T) string {
			return segment(iss.Token(t, user), 1, func(s string) string { return flip(s, len(s)/2) })
		}},
		{"claims replaced", func(t *testing.T) string {
			// The claims of an admin token, the signature of a requester's.
			admin := iss.Token(t, user)
			u := user
			u.Roles = []string{auth.RoleRequester}
			req := iss.Token(t, u)
			return strings.Split(admin, ".")[0] + "." + strings.Split(admin, ".")[1] + "." + strings.Split(req, ".")[2]
		}},
		{"tampered header", func(t *testing.T) string {
			return segment(iss.Token(t, user), 0, func(s string) string { return flip(s, len(s)/2) })
		}},
		{"tampered signature", func(t *testing.T) string {
			return segment(iss.Token(t, user), 2, func(s string) string { return flip(s, len(s)/2) })
		}},
		{"signature first character", func(t *testing.T) string {
			return segment(iss.Token(t, user), 2, func(s string) string { return flip(s, 0) })
		}},
		{"signature truncated", func(t *testing.T) string {
			return segment(iss.Token(t, user), 2, func(s string) string { return s[:len(s)-4] })
		}},
		{"signature removed", func(t *testing.T) string {
			return segment(iss.Token(t, user), 2, func(string) string { return "" })
		}},
		{"signature padded", func(t *testing.T) string {
			return segment(iss.Token(t, user), 2, func(s string) string { return s + "==" })
		}},
		{"other key, same kid", func(t *testing.T) string {
			other := authtest.New(t)
			other.Signer.KID = iss.Signer.KID
			return other.Token(t, user)
		}},
		{"unknown kid", func(t *testing.T) string {
			return authtest.New(t).Token(t, user)
		}},
		{"no kid", func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claimsFor(user))
			s, err := tok.SignedString(iss.Signer.Key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"alg none", func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor(user))
			tok.Header["kid"] = iss.Signer.KID
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"HS256 keyed with the public key", func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor(user))
			tok.Header["kid"] = iss.Signer.KID
			s, err := tok.SignedString([]byte(iss.Public))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"RS256", func(t *testing.T) string {
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsFor(user))
			tok.Header["kid"] = iss.Signer.KID
			s, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := tc.token(t)
			p, err := authenticate(a, bearer(tok), "")
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if p.ID != "" {
				t.Errorf("principal %+v returned with an error", p)
			}
		})
	}
}

// TestAuthenticateSignatureEncodingIsStrict pins the parser's strict
// base64url decoding: a signature whose unused trailing bits differ
// decodes to the same bytes, and was accepted as a second spelling of the
// same token.
func TestAuthenticateSignatureEncodingIsStrict(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	tok := iss.Token(t, authtest.User{Tenant: authtest.NewTenantID(), Roles: []string{auth.RoleAgent}})
	if _, err := authenticate(a, bearer(tok), ""); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := strings.Split(tok, ".")[2]
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	// 64 signature bytes are 86 characters; the last carries 2 bits of
	// data and 4 unused ones.
	for spare := 1; spare < 16; spare++ {
		mutated := segment(tok, 2, func(s string) string { return s[:len(s)-1] + string(alphabet[last^spare]) })
		if _, err := authenticate(a, bearer(mutated), ""); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("signature with other unused bits: err = %v, want ErrUnauthenticated", err)
		}
	}
}

func TestAuthenticateLeeway(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	now := time.Now()
	for _, tc := range []struct {
		name     string
		issuedAt time.Time
		ttl      time.Duration
	}{
		{"expired within leeway", now.Add(-15*time.Minute - 10*time.Second), 15 * time.Minute},
		{"issued slightly in the future", now.Add(10 * time.Second), 15 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := iss.Token(t, authtest.User{Tenant: authtest.NewTenantID(), IssuedAt: tc.issuedAt, TTL: tc.ttl})
			if _, err := authenticate(a, bearer(tok), ""); err != nil {
				t.Fatalf("err = %v, want accepted within DefaultLeeway", err)
			}
		})
	}

	t.Run("configured clock and leeway", func(t *testing.T) {
		t.Parallel()
		issued := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		tok := iss.Token(t, authtest.User{Tenant: authtest.NewTenantID(), IssuedAt: issued, TTL: time.Minute})
		for _, c := range []struct {
			at     time.Time
			leeway time.Duration
			ok     bool
		}{
			{issued.Add(30 * time.Second), time.Second, true},
			{issued.Add(61 * time.Second), 5 * time.Second, true},
			{issued.Add(67 * time.Second), 5 * time.Second, false},
			{issued.Add(-3 * time.Second), 5 * time.Second, true},
			{issued.Add(-10 * time.Second), 5 * time.Second, false},
			{time.Now(), 0, false}, // years before iat
		} {
			at := c.at
			a := auth.NewAuthenticator(auth.Config{
				Keys:   auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public}),
				State:  auth.NewState(),
				Leeway: c.leeway,
				Now:    func() time.Time { return at },
			})
			_, err := authenticate(a, bearer(tok), "")
			if c.ok && err != nil || !c.ok && !errors.Is(err, auth.ErrUnauthenticated) {
				t.Errorf("at iat%+v, leeway %v: err = %v, want ok=%v", c.at.Sub(issued), c.leeway, err, c.ok)
			}
		}
	})
}

func TestAuthenticateStateFacts(t *testing.T) {
	t.Parallel()
	// T is when the fact happened; it has a fraction of a second, like
	// identity's clock, while a token's iat has whole seconds.
	T := time.Now().Add(-5 * time.Minute).Truncate(time.Second).Add(400 * time.Millisecond)
	before, after, later := T.Add(-time.Minute), T.Add(time.Second), T.Add(2*time.Minute)

	type ids struct{ tenant, user, session, otherSession, otherTenant, otherUser string }
	type token struct {
		name         string
		iat          time.Time
		otherSession bool
		ok           bool
	}
	for _, tc := range []struct {
		name   string
		facts  func(f *feed, id ids)
		tokens []token
	}{
		{"unknown user", nil, []token{{"any", before, false, true}}},
		{"onboarded user", func(f *feed, id ids) { f.userOnboarded(id.tenant, id.user) },
			[]token{{"any", before, false, true}}},
		{"offboarded", func(f *feed, id ids) {
			f.userOnboarded(id.tenant, id.user)
			f.apply(id.tenant, id.user, identityv1.TypeUserOffboarded, identityv1.UserOffboarded{UserID: id.user, At: T})
		}, []token{{"issued before", before, false, false}, {"issued after", after, false, false}}},
		{"suspended", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeUserSuspended, identityv1.UserSuspended{UserID: id.user, At: T})
		}, []token{{"issued before", before, false, false}, {"issued after", after, false, false}}},
		{"reactivated", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeUserSuspended, identityv1.UserSuspended{UserID: id.user, At: T})
			f.apply(id.tenant, id.user, identityv1.TypeUserReactivated, identityv1.UserReactivated{UserID: id.user, At: T.Add(time.Minute)})
		}, []token{
			{"issued before the suspension", before, false, false},
			{"issued 1s after the suspension", after, false, true},
			{"issued after the reactivation", later, false, true},
		}},
		{"roles changed", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeUserRolesChanged, identityv1.UserRolesChanged{
				UserID: id.user, Roles: []string{auth.RoleRequester}, At: T})
		}, []token{
			{"issued before", before, false, false},
			{"issued 1s before", T.Add(-time.Second), false, false},
			{"issued 1s after", after, false, true},
			{"issued in another session after", after, true, true},
		}},
		{"roles changed twice", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeUserRolesChanged, identityv1.UserRolesChanged{UserID: id.user, At: T})
			// A late event with an older time moves nothing back.
			f.apply(id.tenant, id.user, identityv1.TypeUserRolesChanged, identityv1.UserRolesChanged{UserID: id.user, At: T.Add(-time.Hour)})
		}, []token{{"issued before", before, false, false}, {"issued after", after, false, true}}},
		{"grant revoked", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeUserAccessRevoked, identityv1.UserAccessRevoked{
				UserID: id.user, ClientTenantID: id.otherTenant, At: T})
		}, []token{{"issued before", before, false, false}, {"issued after", after, false, true}}},
		{"sessions revoked", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeSessionsRevoked, identityv1.SessionsRevoked{
				UserID: id.user, Reason: "password_reset", Before: T})
		}, []token{
			{"issued before", before, false, false},
			{"other session issued before", before, true, false},
			{"issued after", after, false, true},
		}},
		{"session revoked", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeSessionRevoked, identityv1.SessionRevoked{
				UserID: id.user, SessionID: id.session, Reason: "logout", At: T})
		}, []token{
			{"that session, issued before", before, false, false},
			{"that session, issued after", after, false, false},
			{"another session", before, true, true},
		}},
		{"tenant suspended", func(f *feed, id ids) {
			f.tenantCreated(id.tenant, "acme", "", identityv1.KindEnterprise)
			f.tenantSuspended(id.tenant, T)
		}, []token{{"issued before", before, false, false}, {"issued after", after, false, false}}},
		{"tenant suspended unseen creation", func(f *feed, id ids) { f.tenantSuspended(id.tenant, T) },
			[]token{{"any", before, false, false}}},
		{"tenant reactivated", func(f *feed, id ids) {
			f.tenantSuspended(id.tenant, T)
			f.tenantReactivated(id.tenant, T.Add(time.Minute))
		}, []token{{"issued before", before, false, true}, {"issued after", later, false, true}}},
		{"another tenant suspended", func(f *feed, id ids) { f.tenantSuspended(id.otherTenant, T) },
			[]token{{"any", before, false, true}}},
		{"another user offboarded", func(f *feed, id ids) {
			f.apply(id.tenant, id.otherUser, identityv1.TypeUserOffboarded, identityv1.UserOffboarded{UserID: id.otherUser, At: T})
			f.apply(id.tenant, id.otherUser, identityv1.TypeSessionsRevoked, identityv1.SessionsRevoked{UserID: id.otherUser, Before: T})
		}, []token{{"any", before, false, true}}},
		{"user of another tenant", func(f *feed, id ids) { f.userOnboarded(id.otherTenant, id.user) },
			[]token{{"any", before, false, false}}},
		{"events the state does not need", func(f *feed, id ids) {
			f.apply(id.tenant, id.user, identityv1.TypeUserUpdated, identityv1.UserUpdated{UserID: id.user, Name: "x", At: T})
			f.apply(id.tenant, id.user, identityv1.TypePasswordChanged, identityv1.PasswordChanged{UserID: id.user, At: T})
			f.apply(id.tenant, "g_1", identityv1.TypeGroupCreated, identityv1.GroupCreated{GroupID: "g_1", Name: "x"})
			f.apply(id.tenant, id.user, "opsdesk.identity.something_new.v9", map[string]any{"user_id": id.user})
		}, []token{{"any", before, false, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iss := authtest.New(t)
			a := iss.Authenticator()
			id := ids{authtest.NewTenantID(), newUserID(), newSessionID(), newSessionID(), authtest.NewTenantID(), newUserID()}
			f := newFeed(t, iss.State)
			if tc.facts != nil {
				tc.facts(f, id)
			}
			if got := iss.State.LastSequence(); got != f.seq {
				t.Errorf("LastSequence = %d, want %d", got, f.seq)
			}
			for _, tk := range tc.tokens {
				sid := id.session
				if tk.otherSession {
					sid = id.otherSession
				}
				tok := iss.Token(t, authtest.User{ID: id.user, Tenant: id.tenant, Roles: []string{auth.RoleAgent}, SessionID: sid, IssuedAt: tk.iat})
				_, err := authenticate(a, bearer(tok), "")
				switch {
				case tk.ok && err != nil:
					t.Errorf("%s: err = %v, want accepted", tk.name, err)
				case !tk.ok && !errors.Is(err, auth.ErrUnauthenticated):
					t.Errorf("%s: err = %v, want ErrUnauthenticated", tk.name, err)
				}
			}
		})
	}
}

func TestApplyUndecodablePayload(t *testing.T) {
	t.Parallel()
	s := auth.NewState()
	for _, typ := range []string{
		identityv1.TypeTenantCreated, identityv1.TypeTenantSuspended, identityv1.TypeTenantReactivated,
		identityv1.TypeUserOnboarded, identityv1.TypeUserRolesChanged, identityv1.TypeUserAccessRevoked,
		identityv1.TypeUserSuspended, identityv1.TypeUserReactivated, identityv1.TypeUserOffboarded,
		identityv1.TypeSessionsRevoked, identityv1.TypeSessionRevoked,
		identityv1.TypeAPITokenCreated, identityv1.TypeAPITokenRevoked,
	} {
		e := identityEvent(t, "t_1", "u_1", typ, nil, 7)
		e.Data = []byte(`{"user_id": 42`)
		if err := s.Apply(e); err == nil {
			t.Errorf("%s with broken JSON: no error", typ)
		}
	}
	// Skipped, but counted: the follower resumes after it.
	if got := s.LastSequence(); got != 7 {
		t.Errorf("LastSequence = %d, want 7", got)
	}
}

func TestAuthenticateActingTenant(t *testing.T) {
	t.Parallel()
	type want struct {
		err    error
		tenant string // "home" or "client"
		acting bool
	}
	for _, tc := range []struct {
		name   string
		facts  func(f *feed, home, client, other string)
		acting func(home, client, other string) string
		grants func(client string) map[string]string
		want   want
	}{
		{"client by id", nil,
			func(_, client, _ string) string { return client }, nil,
			want{tenant: "client", acting: true}},
		{"client by id with blanks", nil,
			func(_, client, _ string) string { return "  " + client + " " }, nil,
			want{tenant: "client", acting: true}},
		{"client by slug", func(f *feed, home, client, _ string) {
			f.tenantCreated(home, "msp", "", identityv1.KindProvider)
			f.tenantCreated(client, "contoso", home, identityv1.KindClient)
		}, func(_, _, _ string) string { return "contoso" }, nil,
			want{tenant: "client", acting: true}},
		{"unknown slug", nil,
			func(_, _, _ string) string { return "contoso" }, nil,
			want{err: auth.ErrNoSuchTenant}},
		{"tenant not granted", nil,
			func(_, _, other string) string { return other }, nil,
			want{err: auth.ErrNoSuchTenant}},
		{"slug of a tenant not granted", func(f *feed, _, _, other string) {
			f.tenantCreated(other, "fabrikam", authtest.NewTenantID(), identityv1.KindClient)
		}, func(_, _, _ string) string { return "fabrikam" }, nil,
			want{err: auth.ErrNoSuchTenant}},
		{"no grants at all", nil,
			func(_, client, _ string) string { return client },
			func(string) map[string]string { return nil },
			want{err: auth.ErrNoSuchTenant}},
		{"home tenant by id", nil,
			func(home, _, _ string) string { return home }, nil,
			want{tenant: "home"}},
		{"home tenant by slug", func(f *feed, home, _, _ string) {
			f.tenantCreated(home, "msp", "", identityv1.KindProvider)
		}, func(_, _, _ string) string { return "msp" }, nil,
			want{tenant: "home"}},
		{"client suspended", func(f *feed, home, client, _ string) {
			f.tenantCreated(client, "contoso", home, identityv1.KindClient)
			f.tenantSuspended(client, time.Now())
		}, func(_, client, _ string) string { return client }, nil,
			want{err: auth.ErrNoSuchTenant}},
		{"client suspended, named by slug", func(f *feed, home, client, _ string) {
			f.tenantCreated(client, "contoso", home, identityv1.KindClient)
			f.tenantSuspended(client, time.Now())
		}, func(_, _, _ string) string { return "contoso" }, nil,
			want{err: auth.ErrNoSuchTenant}},
		{"client reactivated", func(f *feed, home, client, _ string) {
			f.tenantCreated(client, "contoso", home, identityv1.KindClient)
			f.tenantSuspended(client, time.Now())
			f.tenantReactivated(client, time.Now())
		}, func(_, client, _ string) string { return client }, nil,
			want{tenant: "client", acting: true}},
		{"client of another provider", func(f *feed, _, client, other string) {
			f.tenantCreated(client, "contoso", other, identityv1.KindClient)
		}, func(_, client, _ string) string { return client }, nil,
			want{err: auth.ErrNoSuchTenant}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iss := authtest.New(t)
			a := iss.Authenticator()
			home, client, other := authtest.NewTenantID(), authtest.NewTenantID(), authtest.NewTenantID()
			if tc.facts != nil {
				tc.facts(newFeed(t, iss.State), home, client, other)
			}
			grants := map[string]string{client: auth.RoleAgent}
			if tc.grants != nil {
				grants = tc.grants(client)
			}
			tok := iss.Token(t, authtest.User{Tenant: home, Roles: []string{auth.RoleAdmin}, Operator: true, Grants: grants})
			p, err := authenticate(a, bearer(tok), tc.acting(home, client, other))
			if tc.want.err != nil {
				if !errors.Is(err, tc.want.err) {
					t.Fatalf("err = %v, want %v", err, tc.want.err)
				}
				if p.ID != "" {
					t.Errorf("principal %+v returned with an error", p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.HomeTenant != home {
				t.Errorf("HomeTenant = %s, want %s", p.HomeTenant, home)
			}
			switch tc.want.tenant {
			case "client":
				if p.Tenant != client || !p.Acting || !slices.Equal(p.Roles, []string{auth.RoleAgent}) || p.Operator {
					t.Errorf("principal %+v, want acting in %s as agent, not operator", p, client)
				}
				if !p.Can(auth.PermTicketsReadAll) || p.Can(auth.PermUsersManage) || p.Can(auth.PermPlatformOperate) {
					t.Errorf("acting agent permissions wrong: %+v", p)
				}
			case "home":
				if p.Tenant != home || p.Acting || !slices.Equal(p.Roles, []string{auth.RoleAdmin}) || !p.Operator {
					t.Errorf("principal %+v, want not acting, admin and operator of %s", p, home)
				}
			}
		})
	}
}

func TestAuthenticateAPIToken(t *testing.T) {
	t.Parallel()
	scopes := []string{string(auth.PermTicketsCreate), string(auth.PermTicketsRead)}
	type env struct {
		f           *feed
		tenant, id  string
		token       string
		ulid        string
		otherTenant string
	}
	for _, tc := range []struct {
		name    string
		setup   func(e *env) (authorization, acting string) // after the token was announced
		expires time.Duration                               // from now; zero: never
		wantErr error
	}{
		{"valid", func(e *env) (string, string) { return bearer(e.token), "" }, 0, nil},
		{"valid, not yet expired", func(e *env) (string, string) { return bearer(e.token), "" }, time.Hour, nil},
		{"acting in its own tenant", func(e *env) (string, string) { return bearer(e.token), e.tenant }, 0, nil},
		{"acting in its own tenant by slug", func(e *env) (string, string) {
			e.f.tenantCreated(e.tenant, "acme", "", identityv1.KindEnterprise)
			return bearer(e.token), "acme"
		}, 0, nil},
		{"wrong secret", func(e *env) (string, string) {
			_, other := auth.NewAPIToken(e.ulid) // same id, another secret
			return bearer(other), ""
		}, 0, auth.ErrUnauthenticated},
		{"its secret under another id", func(e *env) (string, string) {
			return bearer(strings.Replace(e.token, e.ulid, newAPITokenULID(), 1)), ""
		}, 0, auth.ErrUnauthenticated},
		{"revoked", func(e *env) (string, string) {
			e.f.apply(e.tenant, e.id, identityv1.TypeAPITokenRevoked, identityv1.APITokenRevoked{TokenID: e.id, RevokedBy: "u_admin", At: time.Now()})
			return bearer(e.token), ""
		}, 0, auth.ErrUnauthenticated},
		{"expired", func(e *env) (string, string) { return bearer(e.token), "" }, -time.Minute, auth.ErrUnauthenticated},
		{"unknown id", func(e *env) (string, string) {
			_, tok := auth.NewAPIToken(newAPITokenULID())
			return bearer(tok), ""
		}, 0, auth.ErrUnauthenticated},
		{"malformed: short secret", func(e *env) (string, string) { return bearer(e.token[:len(e.token)-1]), "" }, 0, auth.ErrUnauthenticated},
		{"malformed: long secret", func(e *env) (string, string) { return bearer(e.token + "A"), "" }, 0, auth.ErrUnauthenticated},
		{"malformed: lower-case ulid", func(e *env) (string, string) {
			return bearer(auth.APITokenPrefix + strings.ToLower(e.ulid) + e.token[len(auth.APITokenPrefix)+26:]), ""
		}, 0, auth.ErrUnauthenticated},
		{"malformed: no separator", func(e *env) (string, string) {
			return bearer(strings.Replace(e.token, e.ulid+"_", e.ulid+"-", 1)), ""
		}, 0, auth.ErrUnauthenticated},
		{"malformed: prefix only", func(e *env) (string, string) { return bearer("odk_"), "" }, 0, auth.ErrUnauthenticated},
		{"malformed: id form", func(e *env) (string, string) { return bearer(e.id), "" }, 0, auth.ErrUnauthenticated},
		{"tenant suspended", func(e *env) (string, string) {
			e.f.tenantSuspended(e.tenant, time.Now())
			return bearer(e.token), ""
		}, 0, auth.ErrUnauthenticated},
		{"tenant reactivated", func(e *env) (string, string) {
			e.f.tenantSuspended(e.tenant, time.Now())
			e.f.tenantReactivated(e.tenant, time.Now())
			return bearer(e.token), ""
		}, 0, nil},
		{"acting in another tenant", func(e *env) (string, string) { return bearer(e.token), e.otherTenant }, 0, auth.ErrNoSuchTenant},
		{"acting in another tenant by slug", func(e *env) (string, string) {
			e.f.tenantCreated(e.otherTenant, "fabrikam", e.tenant, identityv1.KindClient)
			return bearer(e.token), "fabrikam"
		}, 0, auth.ErrNoSuchTenant},
		{"acting in an unknown slug", func(e *env) (string, string) { return bearer(e.token), "nobody" }, 0, auth.ErrNoSuchTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iss := authtest.New(t)
			type use struct{ id, tenant string }
			var mu sync.Mutex
			var uses []use
			at := time.Now()
			a := auth.NewAuthenticator(auth.Config{
				Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public}),
				State: iss.State,
				Now:   func() time.Time { return at },
				OnAPITokenUse: func(id, tenant string, when time.Time) {
					mu.Lock()
					defer mu.Unlock()
					if !when.Equal(at) {
						t.Errorf("OnAPITokenUse at %v, want %v", when, at)
					}
					uses = append(uses, use{id, tenant})
				},
			})
			e := &env{f: newFeed(t, iss.State), tenant: authtest.NewTenantID(), ulid: newAPITokenULID(), otherTenant: authtest.NewTenantID()}
			e.id, e.token = auth.NewAPIToken(e.ulid)
			var expires time.Time
			if tc.expires != 0 {
				expires = at.Add(tc.expires)
			}
			e.f.apiTokenCreated(e.tenant, e.id, e.token, expires, scopes...)
			authorization, acting := tc.setup(e)

			p, err := authenticate(a, authorization, acting)
			mu.Lock()
			defer mu.Unlock()
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if p.ID != "" {
					t.Errorf("principal %+v returned with an error", p)
				}
				if len(uses) != 0 {
					t.Errorf("OnAPITokenUse called for a refused token: %v", uses)
				}
				if strings.Contains(err.Error(), e.token[len(auth.APITokenPrefix)+27:]) {
					t.Errorf("error text holds the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := auth.Principal{Kind: auth.KindAPIToken, ID: e.id, HomeTenant: e.tenant, Tenant: e.tenant, Scopes: scopes}
			if !principalEqual(p, want) {
				t.Fatalf("principal = %+v, want %+v", p, want)
			}
			for _, perm := range auth.AllPermissions {
				want := perm == auth.PermPublic || perm == auth.PermAuthenticated || slices.Contains(scopes, string(perm))
				if got := p.Can(perm); got != want {
					t.Errorf("Can(%s) = %v, want %v", perm, got, want)
				}
			}
			if !slices.Equal(uses, []use{{e.id, e.tenant}}) {
				t.Errorf("OnAPITokenUse calls = %v, want one for %s in %s", uses, e.id, e.tenant)
			}
		})
	}
}

func TestAuthenticateAPITokenExpiryBoundary(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	tenant := authtest.NewTenantID()
	id, tok := auth.NewAPIToken(newAPITokenULID())
	expires := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	newFeed(t, iss.State).apiTokenCreated(tenant, id, tok, expires, "tickets:read")
	for _, c := range []struct {
		at time.Time
		ok bool
	}{
		{expires.Add(-time.Nanosecond), true},
		{expires, false},
		{expires.Add(time.Second), false},
	} {
		at := c.at
		a := auth.NewAuthenticator(auth.Config{Keys: auth.StaticKeys(nil), State: iss.State, Now: func() time.Time { return at }})
		_, err := authenticate(a, bearer(tok), "")
		if c.ok && err != nil || !c.ok && !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("at expiry%+v: err = %v, want ok=%v", c.at.Sub(expires), err, c.ok)
		}
	}
}

func TestAuthenticateNotReady(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	loading := errors.New("still loading")
	ready := loading
	var mu sync.Mutex
	a := auth.NewAuthenticator(auth.Config{
		Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public}),
		State: iss.State,
		Ready: func() error { mu.Lock(); defer mu.Unlock(); return ready },
	})
	tok := iss.Token(t, authtest.User{Tenant: authtest.NewTenantID()})
	for _, h := range []string{bearer(tok), "", "Basic x"} {
		_, err := authenticate(a, h, "")
		if !errors.Is(err, auth.ErrUnavailable) || !auth.IsUnavailable(err) || !errors.Is(err, loading) {
			t.Errorf("Authorization %.10q: err = %v, want ErrUnavailable wrapping the Ready error", h, err)
		}
		if errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("not ready answered as unauthenticated: %v", err)
		}
	}
	mu.Lock()
	ready = nil
	mu.Unlock()
	if _, err := authenticate(a, bearer(tok), ""); err != nil {
		t.Errorf("once ready: %v", err)
	}
	if auth.IsUnavailable(auth.ErrUnauthenticated) {
		t.Error("IsUnavailable(ErrUnauthenticated)")
	}
}

func TestNewAuthenticatorPanicsWithoutKeysOrState(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]auth.Config{
		"no keys":  {State: auth.NewState()},
		"no state": {Keys: auth.StaticKeys(nil)},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			auth.NewAuthenticator(cfg)
		})
	}
}

func TestSignerAndStaticKeys(t *testing.T) {
	t.Parallel()
	if _, err := (auth.Signer{}).Sign(auth.Claims{}); err == nil {
		t.Error("Sign without a key: no error")
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	if _, err := (auth.Signer{Key: priv}).Sign(auth.Claims{}); err == nil {
		t.Error("Sign without a kid: no error")
	}
	if _, err := (auth.Signer{KID: "k", Key: priv[:10]}).Sign(auth.Claims{}); err == nil {
		t.Error("Sign with a short key: no error")
	}
	tok, err := (auth.Signer{KID: "k1", Key: priv}).Sign(auth.Claims{Tenant: "t_1"})
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, &auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["kid"] != "k1" || parsed.Header["alg"] != auth.Algorithm {
		t.Errorf("header = %v, want kid k1 and alg %s", parsed.Header, auth.Algorithm)
	}
	keys := auth.StaticKeys(map[string]ed25519.PublicKey{"k1": priv.Public().(ed25519.PublicKey)})
	if k, err := keys(parsed); err != nil || !priv.Public().(ed25519.PublicKey).Equal(k) {
		t.Errorf("StaticKeys(k1) = %v, %v", k, err)
	}
	for _, h := range []map[string]any{{"kid": "k2"}, {}, {"kid": 7}} {
		if _, err := keys(&jwt.Token{Header: h}); err == nil {
			t.Errorf("StaticKeys(%v): no error", h)
		}
	}
}

// TestRevokedSessionOutlivesItsTokens shows pruning through Authenticate:
// with MaxTokenAge equal to the tokens' TTL, a revoked session's last token
// is refused until its exp plus the leeway has passed, though a later
// revocation pruned the State in between; once the session is forgotten, a
// token naming it (which identity would never mint) is no longer refused.
func TestRevokedSessionOutlivesItsTokens(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	iss.State.MaxTokenAge = time.Minute
	f := newFeed(t, iss.State)
	tenant, user, sid := authtest.NewTenantID(), newUserID(), newSessionID()
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *auth.Authenticator {
		return auth.NewAuthenticator(auth.Config{
			Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public}),
			State: iss.State,
			Now:   func() time.Time { return t0.Add(d) },
		})
	}
	revoke := func(user, sid string, d time.Duration) {
		f.apply(tenant, user, identityv1.TypeSessionRevoked, identityv1.SessionRevoked{UserID: user, SessionID: sid, Reason: "logout", At: t0.Add(d)})
	}
	last := iss.Token(t, authtest.User{ID: user, Tenant: tenant, SessionID: sid, IssuedAt: t0, TTL: time.Minute})
	revoke(user, sid, 0)

	// 80s after: exp passed 20s ago, within the 30s leeway. Another
	// session's revocation, more than MaxTokenAge after the first, prunes.
	revoke(newUserID(), newSessionID(), 80*time.Second)
	if _, err := authenticate(at(80*time.Second), bearer(last), ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked session's token within the leeway after a prune: err = %v, want ErrUnauthenticated", err)
	}

	// An hour later the session is forgotten.
	revoke(newUserID(), newSessionID(), time.Hour)
	forged := iss.Token(t, authtest.User{ID: user, Tenant: tenant, SessionID: sid, IssuedAt: t0.Add(time.Hour), TTL: time.Minute})
	if _, err := authenticate(at(time.Hour), bearer(forged), ""); err != nil {
		t.Fatalf("after the session was forgotten: err = %v, want accepted", err)
	}
	if _, err := authenticate(at(time.Hour), bearer(last), ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("the session's last token an hour later: err = %v, want expired", err)
	}
}
