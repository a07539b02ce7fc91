package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// Token facts shared by the issuer (identity) and every verifier.
const (
	// Issuer is the iss of every access token; Audience its aud.
	Issuer   = "opsdesk"
	Audience = "opsdesk"
	// Algorithm is the only signing algorithm accepted: EdDSA (Ed25519).
	Algorithm = "EdDSA"
	// APITokenPrefix starts every API token, so secret scanners (and
	// people) recognise one: odk_<ULID>_<secret>.
	APITokenPrefix = "odk_"
	// HeaderActingTenant names the client tenant an MSP operator acts in.
	HeaderActingTenant = "X-Acting-Tenant"
)

// TimePrecision is the precision of an access token's iat, nbf and exp:
// microseconds, as a fractional NumericDate (RFC 7519 section 2). Whole
// seconds cannot order a token against a revocation of the same second (a
// role change, a password reset): the revocation either spared the tokens
// issued just before it, for their whole lifetime, or refused the ones
// issued just after. It is golang-jwt's precision for serializing and
// parsing, process-wide; every issuer and verifier imports this package.
const TimePrecision = time.Microsecond

func init() { jwt.TimePrecision = TimePrecision }

// Claims are the claims of an access token: sub is the user id.
type Claims struct {
	jwt.RegisteredClaims
	// Tenant is the user's home tenant.
	Tenant string `json:"tid"`
	// SessionID is the refresh-token family the token was issued in.
	SessionID string `json:"sid"`
	// Roles are the user's roles in the home tenant.
	Roles []string `json:"roles"`
	// Grants maps the client tenants the user may act in to the role there.
	Grants map[string]string `json:"grants,omitempty"`
	// Operator marks a user of the operator tenant.
	Operator bool   `json:"opr,omitempty"`
	Email    string `json:"email,omitempty"`
	Name     string `json:"name,omitempty"`
}

// NewAPIToken returns a new API token's id (at_<ULID>) and its secret form
// (shown to its creator once), given a fresh ULID string.
func NewAPIToken(ulid string) (id, token string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return identityv1.APITokenIDPrefix + ulid, APITokenPrefix + ulid + "_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseAPIToken returns the id of an API token in its secret form, or false
// if s is not shaped like one.
func ParseAPIToken(s string) (id string, ok bool) {
	rest, found := strings.CutPrefix(s, APITokenPrefix)
	if !found || len(rest) != 26+1+43 || rest[26] != '_' {
		return "", false
	}
	for _, c := range rest[:26] {
		if !strings.ContainsRune("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c) {
			return "", false
		}
	}
	if _, err := base64.RawURLEncoding.DecodeString(rest[27:]); err != nil {
		return "", false
	}
	return identityv1.APITokenIDPrefix + rest[:26], true
}

// HashSecret is the hex SHA-256 a secret token is stored and compared as.
// The tokens hashed this way carry 256 random bits, so a fast hash is
// enough: nothing can be guessed from it.
func HashSecret(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// SameHash compares two hashes in constant time.
func SameHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
