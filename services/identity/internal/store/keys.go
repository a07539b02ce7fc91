package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/secret"
)

// KeyRing holds the Ed25519 keys access tokens are signed with. The newest
// key signs; a key is retired when a newer one is made (every Rotation),
// and stays published in the JWKS for Retention after that, so tokens it
// signed keep verifying until they expire. Private keys are stored sealed.
type KeyRing struct {
	Pool *pgxpool.Pool
	// Seal is the subkey private keys are sealed with.
	Seal secret.Key
	// Rotation is how old the signing key may get before a new one is made.
	Rotation time.Duration
	// Retention is how long a retired key stays published: at least the
	// longest access-token lifetime plus clock skew.
	Retention time.Duration
	// ReplaceUnreadable retires keys that do not open with Seal and makes a
	// new one, instead of failing. Only for development, where the secret
	// key lives in a data directory that may be deleted while the database
	// is kept; in production a key that does not open means a replica has
	// the wrong OPSDESK_SECRET_KEY, which must stop it, not start a key war.
	ReplaceUnreadable bool

	mu      sync.Mutex
	current auth.Signer
	made    time.Time
	jwks    []byte
}

// Ensure loads the newest key, making one when there is none or it is older
// than Rotation (replicas take turns on an advisory lock, so only one
// makes it), and rebuilds the JWKS. Call it at start and periodically.
func (k *KeyRing) Ensure(ctx context.Context) error {
	return pgdb.InTx(ctx, k.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pgdb.LockKey("identity:signing-keys")); err != nil {
			return fmt.Errorf("signing keys: %w", err)
		}
		signer, made, err := k.newest(ctx, tx)
		if errors.Is(err, secret.ErrInvalid) && k.ReplaceUnreadable {
			slog.WarnContext(ctx, "the signing keys do not open with this secret key (a new data directory?): replacing them; everyone signs in again", "err", err)
			signer, err = auth.Signer{}, nil
		}
		if err != nil {
			return err
		}
		if signer.KID == "" || time.Since(made) >= k.Rotation {
			if signer, made, err = k.create(ctx, tx); err != nil {
				return err
			}
		}
		jwks, err := k.publish(ctx, tx)
		if err != nil {
			return err
		}
		k.mu.Lock()
		k.current, k.made, k.jwks = signer, made, jwks
		k.mu.Unlock()
		return nil
	})
}

// Signer is the key to sign with now.
func (k *KeyRing) Signer() (auth.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current.KID == "" {
		return auth.Signer{}, fmt.Errorf("signing keys not loaded")
	}
	return k.current, nil
}

// JWKS is the published key set (RFC 7517).
func (k *KeyRing) JWKS() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.jwks
}

func (k *KeyRing) aad(kid string) []byte { return []byte("identity signing key " + kid) }

func (k *KeyRing) newest(ctx context.Context, tx pgx.Tx) (auth.Signer, time.Time, error) {
	var (
		kid, sealed string
		made        time.Time
	)
	err := tx.QueryRow(ctx, `SELECT kid, sealed_private, created_at FROM identity.signing_keys
		WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1`).Scan(&kid, &sealed, &made)
	if err == pgx.ErrNoRows {
		return auth.Signer{}, time.Time{}, nil
	}
	if err != nil {
		return auth.Signer{}, time.Time{}, fmt.Errorf("signing keys: %w", err)
	}
	seed, err := k.Seal.Open(sealed, k.aad(kid))
	if err != nil || len(seed) != ed25519.SeedSize {
		return auth.Signer{}, time.Time{}, fmt.Errorf("signing key %s does not open with this OPSDESK_SECRET_KEY "+
			"(was the secret key changed? every replica must share it): %w", kid, secret.ErrInvalid)
	}
	return auth.Signer{KID: kid, Key: ed25519.NewKeyFromSeed(seed)}, made, nil
}

func (k *KeyRing) create(ctx context.Context, tx pgx.Tx) (auth.Signer, time.Time, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return auth.Signer{}, time.Time{}, fmt.Errorf("signing keys: %w", err)
	}
	kid := "k_" + ulid.Make().String()
	if _, err := tx.Exec(ctx, `UPDATE identity.signing_keys SET retired_at = now() WHERE retired_at IS NULL`); err != nil {
		return auth.Signer{}, time.Time{}, fmt.Errorf("signing keys: retire: %w", err)
	}
	var made time.Time
	err = tx.QueryRow(ctx, `INSERT INTO identity.signing_keys (kid, public_key, sealed_private, created_at)
		VALUES ($1, $2, $3, now()) RETURNING created_at`, kid, []byte(pub), k.Seal.Seal(priv.Seed(), k.aad(kid))).Scan(&made)
	if err != nil {
		return auth.Signer{}, time.Time{}, fmt.Errorf("signing keys: create: %w", err)
	}
	return auth.Signer{KID: kid, Key: priv}, made, nil
}

// publish builds the JWKS of the keys still to be published, and forgets
// keys retired long ago.
func (k *KeyRing) publish(ctx context.Context, tx pgx.Tx) ([]byte, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM identity.signing_keys WHERE retired_at < now() - $1::interval`,
		(k.Retention + 24*time.Hour).String()); err != nil {
		return nil, fmt.Errorf("signing keys: forget: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT kid, public_key FROM identity.signing_keys
		WHERE retired_at IS NULL OR retired_at > now() - $1::interval ORDER BY created_at DESC`, k.Retention.String())
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	type row struct {
		kid string
		pub []byte
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.kid, &x.pub)
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	set := jwkset.NewMemoryStorage()
	for _, key := range keys {
		jwk, err := jwkset.NewJWKFromKey(ed25519.PublicKey(key.pub), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: key.kid, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", key.kid, err)
		}
		if err := set.KeyWrite(ctx, jwk); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", key.kid, err)
		}
	}
	out, err := set.JSONPublic(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing keys: jwks: %w", err)
	}
	return out, nil
}
