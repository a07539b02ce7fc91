package domain_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

const secretHash = "80889fff47bdd205dab67ca381adac80e226c138fb7ac09efa61047a8fd5c19b"

// validScope is the caller's list of scopes an API token may have.
func validScope(s string) bool {
	return slices.Contains([]string{"tickets:read", "tickets:write", "assets:read"}, s)
}

func validCreateAPIToken() domain.CreateAPIToken {
	return domain.CreateAPIToken{
		ID: tokenID, Name: "Monitoring", CreatedBy: adminID, SecretHash: secretHash,
		Scopes:    []string{"tickets:write", "tickets:read"},
		ExpiresAt: now.Add(365 * 24 * time.Hour), At: now,
	}
}

func apiTokenCreated() identityv1.APITokenCreated {
	return identityv1.APITokenCreated{
		TokenID: tokenID, Name: "Monitoring", CreatedBy: adminID, SecretHash: secretHash,
		Scopes:    []string{"tickets:read", "tickets:write"},
		ExpiresAt: nowUTC.Add(365 * 24 * time.Hour), CreatedAt: nowUTC,
	}
}

var apiTokenRevoked = identityv1.APITokenRevoked{TokenID: tokenID, RevokedBy: adminID, At: nowUTC}

func TestDecideCreateAPIToken(t *testing.T) {
	tests := []struct {
		name  string
		given []any
		when  func(*domain.CreateAPIToken)
		then
	}{
		{
			name: "new token: scopes sorted, times in UTC to the microsecond",
			when: func(*domain.CreateAPIToken) {},
			then: then{events: []any{apiTokenCreated()}},
		},
		{
			name: "zero expiry: never expires",
			when: func(c *domain.CreateAPIToken) { c.ExpiresAt = time.Time{} },
			then: then{events: []any{func() identityv1.APITokenCreated {
				e := apiTokenCreated()
				e.ExpiresAt = time.Time{}
				return e
			}()}},
		},
		{
			name: "expiring a microsecond later",
			when: func(c *domain.CreateAPIToken) { c.ExpiresAt = now.Add(time.Microsecond) },
			then: then{events: []any{func() identityv1.APITokenCreated {
				e := apiTokenCreated()
				e.ExpiresAt = nowUTC.Add(time.Microsecond)
				return e
			}()}},
		},
		{name: "an existing token", given: []any{apiTokenCreated()}, when: func(*domain.CreateAPIToken) {}, then: then{err: domain.ErrAlreadyExists}},
		{name: "a revoked token", given: []any{apiTokenCreated(), apiTokenRevoked}, when: func(*domain.CreateAPIToken) {}, then: then{err: domain.ErrAlreadyExists}},
		{name: "no scopes", when: func(c *domain.CreateAPIToken) { c.Scopes = nil }, then: then{badFields: []string{"scopes"}}},
		{name: "empty scopes", when: func(c *domain.CreateAPIToken) { c.Scopes = []string{} }, then: then{badFields: []string{"scopes"}}},
		{
			name: "unknown scope by index",
			when: func(c *domain.CreateAPIToken) { c.Scopes = []string{"tickets:read", "users:admin"} },
			then: then{badFields: []string{"scopes.1"}},
		},
		{
			name: "duplicate scope by index",
			when: func(c *domain.CreateAPIToken) { c.Scopes = []string{"tickets:read", "assets:read", "tickets:read"} },
			then: then{badFields: []string{"scopes.2"}},
		},
		{name: "expires in the past", when: func(c *domain.CreateAPIToken) { c.ExpiresAt = now.Add(-time.Second) }, then: then{badFields: []string{"expires_at"}}},
		{name: "expires as it is created", when: func(c *domain.CreateAPIToken) { c.ExpiresAt = now }, then: then{badFields: []string{"expires_at"}}},
		{name: "blank name", when: func(c *domain.CreateAPIToken) { c.Name = "" }, then: then{badFields: []string{"name"}}},
		{name: "name too long", when: func(c *domain.CreateAPIToken) { c.Name = strings.Repeat("n", 201) }, then: then{badFields: []string{"name"}}},
		{
			name: "every field wrong, in order",
			when: func(c *domain.CreateAPIToken) {
				c.Name, c.Scopes, c.ExpiresAt = "a\nb", []string{"root", "tickets:read", "tickets:read"}, now.Add(-time.Hour)
			},
			then: then{badFields: []string{"name", "scopes.0", "scopes.2", "expires_at"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCreateAPIToken()
			tt.when(&c)
			got, err := domain.DecideCreateAPIToken(domain.FoldAPIToken(tt.given), c, validScope)
			tt.check(t, got, err)
		})
	}
}

func TestDecideCreateAPITokenAsksValidScope(t *testing.T) {
	var asked []string
	only := func(s string) bool { asked = append(asked, s); return s == "assets:read" }
	c := validCreateAPIToken()
	c.Scopes = []string{"assets:read", "tickets:read"}
	got, err := domain.DecideCreateAPIToken(domain.FoldAPIToken(nil), c, only)
	then{badFields: []string{"scopes.1"}}.check(t, got, err)
	if !reflect.DeepEqual(asked, c.Scopes) {
		t.Fatalf("validScope asked about %v, want %v", asked, c.Scopes)
	}
}

func TestDecideRevokeAPIToken(t *testing.T) {
	tests := []struct {
		name  string
		given []any
		then
	}{
		{name: "an active token", given: []any{apiTokenCreated()}, then: then{events: []any{apiTokenRevoked}}},
		{name: "revoked twice: no events", given: []any{apiTokenCreated(), apiTokenRevoked}},
		{name: "a missing token", then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideRevokeAPIToken(domain.FoldAPIToken(tt.given), adminID, now)
			tt.check(t, got, err)
		})
	}
}

func TestFoldAPIToken(t *testing.T) {
	base := domain.APIToken{
		ID: tokenID, Name: "Monitoring", CreatedBy: adminID,
		Scopes: []string{"tickets:read", "tickets:write"}, ExpiresAt: nowUTC.Add(365 * 24 * time.Hour), Version: 1,
	}
	revoked := base
	revoked.Revoked, revoked.Version = true, 2
	tests := []struct {
		name  string
		given []any
		want  domain.APIToken
	}{
		{name: "no events: no token"},
		{name: "created", given: []any{apiTokenCreated()}, want: base},
		{
			name: "scopes from the event are sorted",
			given: []any{func() identityv1.APITokenCreated {
				e := apiTokenCreated()
				e.Scopes = []string{"tickets:write", "tickets:read"}
				return e
			}()},
			want: base,
		},
		{name: "revoked", given: []any{apiTokenCreated(), apiTokenRevoked}, want: revoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := domain.FoldAPIToken(tt.given)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("FoldAPIToken = %+v\nwant          %+v", got, tt.want)
			}
			if got.Exists() != (tt.want.ID != "") {
				t.Fatalf("Exists = %v", got.Exists())
			}
		})
	}
}
