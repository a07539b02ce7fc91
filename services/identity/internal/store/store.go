// Package store keeps the identity state that must not be in the event
// stream: password hashes, refresh tokens, password-reset tokens, failed
// sign-ins, API token use and the signing keys. Tenant tables are read and
// written inside tenant transactions (row-level security); secrets are
// stored only as hashes (SHA-256 for random tokens, argon2id for
// passwords) or sealed.
package store

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// ErrInvalidToken is a refresh or reset token that is malformed, unknown,
// expired, spent or revoked. Callers answer all of them alike.
var ErrInvalidToken = errors.New("invalid or expired token")

// secretToken is "<prefix>.<tenant>.<id>.<secret>": the tenant comes first
// so the token can be looked up inside its tenant's transaction.
type secretToken struct{ Tenant, ID, Secret string }

func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (t secretToken) format(prefix string) string {
	return prefix + "." + t.Tenant + "." + t.ID + "." + t.Secret
}

func parseSecretToken(prefix, s string) (secretToken, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != prefix || len(s) > 512 ||
		!strings.HasPrefix(parts[1], identityv1.TenantIDPrefix) || parts[2] == "" || len(parts[3]) != 43 {
		return secretToken{}, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[3]); err != nil {
		return secretToken{}, false
	}
	return secretToken{Tenant: parts[1], ID: parts[2], Secret: parts[3]}, true
}
