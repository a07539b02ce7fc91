package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Signer signs access tokens with one Ed25519 key, naming it in the kid
// header so verifiers pick the right public key during a rotation.
type Signer struct {
	KID string
	Key ed25519.PrivateKey
}

// Sign returns the compact JWT of c.
func (s Signer) Sign(c Claims) (string, error) {
	if s.KID == "" || len(s.Key) != ed25519.PrivateKeySize {
		return "", errors.New("auth: signer without a key")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = s.KID
	out, err := t.SignedString(s.Key)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return out, nil
}

// StaticKeys is a jwt.Keyfunc over a fixed set of public keys by kid, for
// tests and tools.
func StaticKeys(keys map[string]ed25519.PublicKey) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("auth: unknown kid %q", kid)
	}
}
