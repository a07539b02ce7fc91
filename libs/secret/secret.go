// Package secret holds the installation's secret key and what is built on
// it: purpose-bound subkeys (HKDF-SHA256) and authenticated encryption
// (AES-256-GCM) of small values such as private signing keys at rest or a
// password-reset token on its way to the notifications service.
//
// One 32-byte key per installation (OPSDESK_SECRET_KEY, base64) is shared
// by the services that need it; each use derives its own subkey, so a value
// sealed for one purpose cannot be opened as another.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Size is the length of a key in bytes.
const Size = 32

// Key is a 256-bit secret key. Its String and GoString hide it, so a key
// printed by mistake (a log line, a %v of a config struct) shows nothing.
type Key struct{ b [Size]byte }

// ErrInvalid is returned for a key that is not 32 bytes of base64, or a
// sealed value that does not open with the key.
var ErrInvalid = errors.New("secret: invalid")

// Generate returns a new random key.
func Generate() Key {
	var k Key
	_, _ = rand.Read(k.b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return k
}

// Parse reads a key from base64 (standard or URL alphabet, padded or not).
func Parse(s string) (Key, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == Size {
			var k Key
			copy(k.b[:], b)
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("%w: a key is %d bytes of base64 (e.g. openssl rand -base64 32)", ErrInvalid, Size)
}

// Encode returns the key as standard base64, the form Parse reads.
func (k Key) Encode() string { return base64.StdEncoding.EncodeToString(k.b[:]) }

// IsZero reports whether k is the zero key (never set).
func (k Key) IsZero() bool { return k == Key{} }

// String hides the key.
func (k Key) String() string { return "secret.Key(hidden)" }

// GoString hides the key.
func (k Key) GoString() string { return k.String() }

// Derive returns the subkey of k for purpose (HKDF-SHA256, purpose as the
// info), e.g. "identity/signing-keys" or "identity/password-reset".
func (k Key) Derive(purpose string) Key {
	b, err := hkdf.Key(sha256.New, k.b[:], nil, "opsdesk:"+purpose, Size)
	if err != nil { // only for an impossible length
		panic(fmt.Sprintf("secret: derive: %v", err))
	}
	var out Key
	copy(out.b[:], b)
	return out
}

// Seal encrypts and authenticates plaintext with k. aad is authenticated
// but not encrypted: bind the value to its context (a user id, a key id) so
// it cannot be moved to another. The result is URL-safe base64 of the nonce
// and the ciphertext.
func (k Key) Seal(plaintext, aad []byte) string {
	aead := k.aead()
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plaintext, aad))
}

// Open reverses Seal; a wrong key, wrong aad or any change to the sealed
// value is ErrInvalid.
func (k Key) Open(sealed string, aad []byte) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	aead := k.aead()
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrInvalid
	}
	out, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrInvalid
	}
	return out, nil
}

func (k Key) aead() cipher.AEAD {
	block, err := aes.NewCipher(k.b[:])
	if err != nil {
		panic(fmt.Sprintf("secret: %v", err)) // a 32-byte key always works
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("secret: %v", err))
	}
	return aead
}

// LoadOrCreate reads the key stored in file, or generates one and stores it
// there (mode 0600) when the file does not exist: the all-in-one binary's
// development default, so that `make run` needs no set-up and keeps its
// keys across restarts. created reports whether the key is new.
func LoadOrCreate(file string) (k Key, created bool, err error) {
	b, err := os.ReadFile(file)
	if err == nil {
		k, err := Parse(string(b))
		if err != nil {
			return Key{}, false, fmt.Errorf("secret key file %s: %w", file, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, false, fmt.Errorf("secret key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return Key{}, false, fmt.Errorf("secret key file: %w", err)
	}
	k = Generate()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // created by a concurrent start: use that one
		return LoadOrCreate(file)
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("secret key file: %w", err)
	}
	if _, err := f.WriteString(k.Encode() + "\n"); err != nil {
		f.Close()
		return Key{}, false, fmt.Errorf("secret key file %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return Key{}, false, fmt.Errorf("secret key file %s: %w", file, err)
	}
	return k, true, nil
}
