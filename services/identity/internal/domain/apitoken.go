package domain

import (
	"fmt"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// APIToken is the state of an API token aggregate.
type APIToken struct {
	ID, Name, CreatedBy string
	Scopes              []string
	ExpiresAt           time.Time
	Revoked             bool
	Version             uint64
}

// Exists reports whether the token was created.
func (t APIToken) Exists() bool { return t.ID != "" }

// FoldAPIToken rebuilds a token from its events' payloads.
func FoldAPIToken(events []any) APIToken {
	var t APIToken
	for _, e := range events {
		switch p := e.(type) {
		case identityv1.APITokenCreated:
			t = APIToken{ID: p.TokenID, Name: p.Name, CreatedBy: p.CreatedBy, Scopes: sorted(p.Scopes), ExpiresAt: p.ExpiresAt}
		case identityv1.APITokenRevoked:
			t.Revoked = true
		}
		t.Version++
	}
	return t
}

// CreateAPIToken creates a token. validScope says which scopes exist.
type CreateAPIToken struct {
	ID, Name, CreatedBy, SecretHash string
	Scopes                          []string
	ExpiresAt, At                   time.Time
}

// DecideCreateAPIToken returns APITokenCreated.
func DecideCreateAPIToken(t APIToken, c CreateAPIToken, validScope func(string) bool) ([]any, error) {
	if t.Exists() {
		return nil, ErrAlreadyExists
	}
	var f fields
	checkName(&f, "name", c.Name)
	if len(c.Scopes) == 0 {
		f.bad("scopes", "must name at least one scope")
	}
	seen := map[string]bool{}
	for i, s := range c.Scopes {
		switch {
		case !validScope(s):
			f.bad(fmt.Sprintf("scopes.%d", i), "is not a scope an API token may have")
		case seen[s]:
			f.bad(fmt.Sprintf("scopes.%d", i), "is listed twice")
		}
		seen[s] = true
	}
	if !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(c.At) {
		f.bad("expires_at", "must be in the future")
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	var expires time.Time
	if !c.ExpiresAt.IsZero() {
		expires = at(c.ExpiresAt)
	}
	return []any{identityv1.APITokenCreated{
		TokenID: c.ID, Name: c.Name, Scopes: sorted(c.Scopes), CreatedBy: c.CreatedBy,
		ExpiresAt: expires, SecretHash: c.SecretHash, CreatedAt: at(c.At),
	}}, nil
}

// DecideRevokeAPIToken revokes a token (no event if already revoked).
func DecideRevokeAPIToken(t APIToken, by string, now time.Time) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	if t.Revoked {
		return nil, nil
	}
	return []any{identityv1.APITokenRevoked{TokenID: t.ID, RevokedBy: by, At: at(now)}}, nil
}
