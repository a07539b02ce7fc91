package password_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/services/identity/internal/password"
)

// cheap keeps the tests fast; the algorithm and code path are the same.
var cheap = password.Params{MemoryKiB: 1024, Iterations: 1}

func TestHashVerify(t *testing.T) {
	h, err := password.New(cheap, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil || !strings.HasPrefix(hash, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q, %v", hash, err)
	}
	if again, _ := h.Hash(ctx, "correct horse battery staple"); again == hash {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse battery staple": true, "correct horse battery stapl": false, "": false} {
		if ok, err := h.Verify(ctx, pw, hash); err != nil || ok != want {
			t.Errorf("Verify(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	// No hash (unknown user): never a match, not even for the dummy's text.
	if ok, err := h.Verify(ctx, "opsdesk: no such user", ""); err != nil || ok {
		t.Fatalf("Verify without a hash = %v, %v", ok, err)
	}
}

func TestVerifyWithoutHashCostsTheSame(t *testing.T) {
	h, err := password.New(password.Params{MemoryKiB: 8 * 1024, Iterations: 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, _ := h.Hash(ctx, "correct horse battery staple")
	timeOf := func(hash string) time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			_, _ = h.Verify(ctx, "wrong password here", hash)
			best = min(best, time.Since(start))
		}
		return best
	}
	real, dummy := timeOf(hash), timeOf("")
	// The same work is done; allow generous noise, but not an order of
	// magnitude (a missing dummy check takes microseconds).
	if dummy < real/3 {
		t.Fatalf("unknown user takes %v, wrong password %v: the difference tells them apart", dummy, real)
	}
}

func TestCheck(t *testing.T) {
	for pw, ok := range map[string]bool{
		"short":                   false,
		strings.Repeat("x", 12):   true,
		strings.Repeat("x", 257):  false,
		strings.Repeat(" ", 12):   false,
		"ada.lovelace@example.co": false,
		"Ada Lovelace Analytical": true,
	} {
		err := password.Check(pw, "ada.lovelace@example.co", "Ada Lovelace")
		if (err == nil) != ok || (err != nil && !errors.Is(err, password.ErrWeak)) {
			t.Errorf("Check(%q) = %v, want ok=%v", pw, err, ok)
		}
	}
}
