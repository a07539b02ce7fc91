package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/secret"
	"github.com/opsdesk/opsdesk/services/identity/internal/store"
	"github.com/opsdesk/opsdesk/services/identity/migrations"
)

// TestKeyRing: a key is made once and reused by a second replica; rotation
// makes a new one and keeps the old published; a secret key that cannot
// open the stored keys stops the start, unless ReplaceUnreadable (dev).
func TestKeyRing(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)
	if err := pgdb.Migrate(ctx, pool, "identity", migrations.FS); err != nil {
		t.Fatal(err)
	}
	seal := secret.Generate()
	ring := func(k secret.Key, rotation time.Duration, replace bool) *store.KeyRing {
		return &store.KeyRing{Pool: pool, Seal: k, Rotation: rotation, Retention: time.Hour, ReplaceUnreadable: replace}
	}
	a := ring(seal, time.Hour, false)
	if err := a.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := a.Signer()
	b := ring(seal, time.Hour, false)
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.Signer(); s.KID != first.KID {
		t.Fatalf("a second replica made its own key %s instead of using %s", s.KID, first.KID)
	}
	// Rotation due: a new key signs, the old one stays published.
	rotated := ring(seal, time.Nanosecond, false)
	if err := rotated.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := rotated.Signer()
	jwks := string(rotated.JWKS())
	if second.KID == first.KID || !strings.Contains(jwks, first.KID) || !strings.Contains(jwks, second.KID) {
		t.Fatalf("after rotation: signer %s, JWKS %s", second.KID, jwks)
	}
	// Another secret key: refused, or in dev replaced.
	other := secret.Generate()
	if err := ring(other, time.Hour, false).Ensure(ctx); !errors.Is(err, secret.ErrInvalid) {
		t.Fatalf("keys sealed with another secret: %v, want ErrInvalid", err)
	}
	dev := ring(other, time.Hour, true)
	if err := dev.Ensure(ctx); err != nil {
		t.Fatalf("dev replacement: %v", err)
	}
	if s, _ := dev.Signer(); s.KID == second.KID || s.KID == "" {
		t.Fatalf("dev replacement signs with %q", s.KID)
	}
	if err := ring(other, time.Hour, false).Ensure(ctx); err != nil {
		t.Fatalf("after the replacement the new secret opens the keys: %v", err)
	}
}
