package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsdesk/opsdesk/libs/pgdb"
)

// Throttle counts failed sign-ins per key (an account, a client address)
// in Postgres, so every replica of identity sees the same counts, and locks
// a key out with exponential backoff once it reaches its threshold.
type Throttle struct {
	Pool *pgxpool.Pool
	// Window: failures older than this are forgotten (default 15 min).
	Window time.Duration
	// MaxLock caps one lockout (default 15 min).
	MaxLock time.Duration
}

// Limit is one key and how many failures it may have within the window.
type Limit struct {
	Key       string
	Threshold int
}

// AccountKey and AddressKey name the counters of an account and a client
// address. Keys are hashed before they are stored.
func AccountKey(tenant, email string) string { return "account:" + tenant + ":" + email }
func AddressKey(ip string) string            { return "address:" + ip }

func hashKey(k string) string {
	s := sha256.Sum256([]byte(k))
	return hex.EncodeToString(s[:])
}

func (t Throttle) window() time.Duration {
	if t.Window <= 0 {
		return 15 * time.Minute
	}
	return t.Window
}

func (t Throttle) maxLock() time.Duration {
	if t.MaxLock <= 0 {
		return 15 * time.Minute
	}
	return t.MaxLock
}

// Locked returns how long the longest lockout among keys still lasts
// (0: none is locked).
func (t Throttle) Locked(ctx context.Context, keys ...string) (time.Duration, error) {
	hashed := make([]string, len(keys))
	for i, k := range keys {
		hashed[i] = hashKey(k)
	}
	var until *time.Time
	err := t.Pool.QueryRow(ctx, `SELECT max(locked_until) FROM identity.login_attempts
		WHERE key = ANY($1) AND locked_until > now()`, hashed).Scan(&until)
	if err != nil {
		return 0, fmt.Errorf("sign-in throttle: %w", err)
	}
	if until == nil {
		return 0, nil
	}
	return time.Until(*until), nil
}

// Fail records a failure for each limit and returns the longest lockout
// it caused (0: none). At the threshold a key is locked 1 s, then 2 s,
// 4 s ... per further failure, up to MaxLock.
func (t Throttle) Fail(ctx context.Context, limits ...Limit) (time.Duration, error) {
	var longest time.Duration
	err := pgdb.InTx(ctx, t.Pool, func(tx pgx.Tx) error {
		for _, l := range limits {
			lock, err := t.fail(ctx, tx, l)
			if err != nil {
				return err
			}
			longest = max(longest, lock)
		}
		return nil
	})
	return longest, err
}

func (t Throttle) fail(ctx context.Context, tx pgx.Tx, l Limit) (time.Duration, error) {
	key := hashKey(l.Key)
	var (
		failures int
		first    time.Time
	)
	err := tx.QueryRow(ctx, `SELECT failures, first_failure FROM identity.login_attempts WHERE key = $1 FOR UPDATE`, key).
		Scan(&failures, &first)
	now := time.Now()
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && now.Sub(first) > t.window()):
		failures, first = 0, now
	case err != nil:
		return 0, fmt.Errorf("sign-in throttle: %w", err)
	}
	failures++
	var lock time.Duration
	var until *time.Time
	if over := failures - l.Threshold; over >= 0 {
		lock = time.Duration(math.Min(math.Pow(2, float64(min(over, 30))), t.maxLock().Seconds())) * time.Second
		u := now.Add(lock)
		until = &u
	}
	_, err = tx.Exec(ctx, `INSERT INTO identity.login_attempts (key, failures, first_failure, locked_until) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET failures = $2, first_failure = $3, locked_until = $4`, key, failures, first, until)
	if err != nil {
		return 0, fmt.Errorf("sign-in throttle: %w", err)
	}
	return lock, nil
}

// Succeed forgets the failures of keys (a successful sign-in clears its
// account; addresses keep counting, or one valid account would let an
// attacker reset the address counter).
func (t Throttle) Succeed(ctx context.Context, keys ...string) error {
	hashed := make([]string, len(keys))
	for i, k := range keys {
		hashed[i] = hashKey(k)
	}
	if _, err := t.Pool.Exec(ctx, `DELETE FROM identity.login_attempts WHERE key = ANY($1)`, hashed); err != nil {
		return fmt.Errorf("sign-in throttle: %w", err)
	}
	return nil
}
