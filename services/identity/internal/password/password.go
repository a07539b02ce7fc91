// Package password hashes and checks passwords with argon2id, bounding how
// many hashes run at once: each takes tens of MiB, and a burst of sign-ins
// must queue rather than exhaust memory.
package password

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
)

// Params are argon2id's cost parameters.
type Params struct {
	// MemoryKiB per hash; Iterations over it.
	MemoryKiB  uint32
	Iterations uint32
}

// Default is OWASP's recommended minimum for argon2id (m=19 MiB, t=2,
// p=1): about 25 ms per hash on one core of the benchmark machine.
var Default = Params{MemoryKiB: 19 * 1024, Iterations: 2}

// Limits of a password, in characters. The maximum keeps hashing cheap to
// refuse; the minimum follows NIST SP 800-63B for passwords chosen without
// composition rules.
const (
	MinLength = 12
	MaxLength = 256
)

// ErrWeak is a password the policy refuses; its text says why.
var ErrWeak = errors.New("password")

// Check applies the password policy: length, and not the user's own e-mail
// address or name. It returns an error wrapping ErrWeak.
func Check(pw string, personal ...string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinLength:
		return fmt.Errorf("%w must be at least %d characters", ErrWeak, MinLength)
	case n > MaxLength:
		return fmt.Errorf("%w must be at most %d characters", ErrWeak, MaxLength)
	case strings.TrimSpace(pw) == "":
		return fmt.Errorf("%w must not be blank", ErrWeak)
	}
	for _, p := range personal {
		if p != "" && strings.EqualFold(strings.TrimSpace(pw), strings.TrimSpace(p)) {
			return fmt.Errorf("%w must not be your e-mail address or name", ErrWeak)
		}
	}
	return nil
}

// Hasher hashes and verifies passwords.
type Hasher struct {
	params *argon2id.Params
	slots  chan struct{}
	dummy  string
}

// New returns a Hasher with params, running at most max hashes at once
// (2 x GOMAXPROCS when max <= 0).
func New(p Params, max int) (*Hasher, error) {
	if max <= 0 {
		max = 2 * runtime.GOMAXPROCS(0)
	}
	h := &Hasher{
		params: &argon2id.Params{Memory: p.MemoryKiB, Iterations: p.Iterations, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		slots:  make(chan struct{}, max),
	}
	dummy, err := argon2id.CreateHash("opsdesk: no such user", h.params)
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns the PHC string of pw ($argon2id$v=19$m=...).
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	out, err := argon2id.CreateHash(pw, h.params)
	if err != nil {
		return "", fmt.Errorf("password: hash: %w", err)
	}
	return out, nil
}

// Verify reports whether pw matches hash. With an empty hash (no such user,
// or no password set) it checks against a dummy hash of the same cost, so
// that "unknown user" and "wrong password" take the same time.
func (h *Hasher) Verify(ctx context.Context, pw, hash string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	real := hash != ""
	if !real {
		hash = h.dummy
	}
	ok, err := argon2id.ComparePasswordAndHash(pw, hash)
	if err != nil {
		return false, fmt.Errorf("password: verify: %w", err)
	}
	return ok && real, nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }
