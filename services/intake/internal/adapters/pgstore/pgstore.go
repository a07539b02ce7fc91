// Package pgstore holds intake's state tables in Postgres: what the command
// side keeps beside the event store because it is operational state, not
// history: Idempotency-Keys, the blob store of files and raw mail, open
// incidents by alert group, and the quarantine of input that could not be
// processed. Every table but due_closures is tenant-scoped and forces
// row-level security; each call runs in its tenant's transaction.
package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
)

// ErrNotFound: no such row in the tenant.
var ErrNotFound = command.ErrBlobNotFound

// Store is intake's state tables over pool.
type Store struct{ pool *pgxpool.Pool }

// New returns the state tables over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Claim implements command.Idempotency: INSERT ... ON CONFLICT makes two
// concurrent first requests agree on one holder. A key older than a day is
// taken over, and the tenant's expired keys are deleted on the way (an
// index range that is almost always empty).
func (s *Store) Claim(ctx context.Context, tenant, key, hash, ticketID string, now time.Time) (heldTicket, heldHash string, err error) {
	const ttl = 24 * time.Hour
	err = pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM intake.idempotency_keys WHERE tenant_id = $1 AND created_at < $2`,
			tenant, now.Add(-ttl)); err != nil {
			return err
		}
		var inserted bool
		err := tx.QueryRow(ctx, `
INSERT INTO intake.idempotency_keys AS k (tenant_id, key, request_hash, ticket_id, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, key) DO UPDATE
   SET request_hash = excluded.request_hash, ticket_id = excluded.ticket_id, created_at = excluded.created_at
 WHERE k.created_at < $5 - $6::interval
RETURNING true`, tenant, key, hash, ticketID, now, ttl.String()).Scan(&inserted)
		if err == nil {
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return tx.QueryRow(ctx, `SELECT ticket_id, request_hash FROM intake.idempotency_keys WHERE tenant_id = $1 AND key = $2`,
			tenant, key).Scan(&heldTicket, &heldHash)
	})
	if err != nil {
		return "", "", fmt.Errorf("claim idempotency key: %w", err)
	}
	return heldTicket, heldHash, nil
}

// PutBlob stores data for tenant and returns its id and SHA-256.
func (s *Store) PutBlob(ctx context.Context, tenant, contentType string, data []byte, now time.Time) (command.Blob, error) {
	sum := sha256.Sum256(data)
	b := command.Blob{ID: "bl_" + ulid.Make().String(), SHA256: hex.EncodeToString(sum[:]), ContentType: contentType, Size: int64(len(data))}
	err := pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO intake.blobs (tenant_id, id, sha256, size, content_type, data, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, tenant, b.ID, b.SHA256, b.Size, contentType, data, now)
		return err
	})
	if err != nil {
		return command.Blob{}, fmt.Errorf("store blob: %w", err)
	}
	return b, nil
}

// Blob returns a stored file of tenant; ErrNotFound.
func (s *Store) Blob(ctx context.Context, tenant, id string) (command.Blob, error) {
	b := command.Blob{ID: id}
	err := pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT sha256, size, content_type, data FROM intake.blobs WHERE tenant_id = $1 AND id = $2`,
			tenant, id).Scan(&b.SHA256, &b.Size, &b.ContentType, &b.Data)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return command.Blob{}, ErrNotFound
	}
	if err != nil {
		return command.Blob{}, fmt.Errorf("load blob %s: %w", id, err)
	}
	return b, nil
}

// DueClosure names a resolved ticket whose auto-close time has come.
type DueClosure struct{ Tenant, TicketID string }

// DueClosures returns up to limit tickets, across tenants, due to close at
// now, oldest first. The table holds ids and times only, so reading it
// across tenants shows nothing of a ticket.
func (s *Store) DueClosures(ctx context.Context, now time.Time, limit int) ([]DueClosure, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, ticket_id FROM intake.due_closures WHERE due_at <= $1
ORDER BY due_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("due closures: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DueClosure, error) {
		var d DueClosure
		return d, r.Scan(&d.Tenant, &d.TicketID)
	})
}

// QuarantineItem is one held inbound message or payload.
type QuarantineItem struct {
	ID, Kind, Reason, Sender, BlobID, Status, TicketID string
	ReceivedAt                                         time.Time
}

// Quarantine statuses.
const (
	QuarantineHeld        = "held"
	QuarantineReprocessed = "reprocessed"
)

// Quarantine keeps a reference to raw input (already in the blob store)
// that could not be processed, and returns its id.
func (s *Store) Quarantine(ctx context.Context, tenant, kind, reason, sender, blobID string, at time.Time) (string, error) {
	id := "q_" + ulid.Make().String()
	err := pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO intake.quarantine (tenant_id, id, kind, reason, sender, blob_id, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, tenant, id, kind, reason, sender, blobID, at)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("quarantine: %w", err)
	}
	return id, nil
}

const quarantineColumns = `id, kind, reason, sender, blob_id, status, ticket_id, received_at`

func scanQuarantine(row pgx.Row) (QuarantineItem, error) {
	var q QuarantineItem
	err := row.Scan(&q.ID, &q.Kind, &q.Reason, &q.Sender, &q.BlobID, &q.Status, &q.TicketID, &q.ReceivedAt)
	q.ReceivedAt = q.ReceivedAt.UTC()
	return q, err
}

// QuarantineList returns the tenant's quarantine, newest first, at most
// 500 items, optionally of one status.
func (s *Store) QuarantineList(ctx context.Context, tenant, status string) ([]QuarantineItem, error) {
	var out []QuarantineItem
	err := pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+quarantineColumns+` FROM intake.quarantine
WHERE tenant_id = $1 AND ($2 = '' OR status = $2) ORDER BY received_at DESC, id DESC LIMIT 500`, tenant, status)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (QuarantineItem, error) { return scanQuarantine(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}

// QuarantineGet returns one item; ErrNotFound.
func (s *Store) QuarantineGet(ctx context.Context, tenant, id string) (QuarantineItem, error) {
	var q QuarantineItem
	err := pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		var err error
		q, err = scanQuarantine(tx.QueryRow(ctx, `SELECT `+quarantineColumns+` FROM intake.quarantine
WHERE tenant_id = $1 AND id = $2`, tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return QuarantineItem{}, ErrNotFound
	}
	return q, err
}

// QuarantineResolve records what reprocessing an item did.
func (s *Store) QuarantineResolve(ctx context.Context, tenant, id, status, reason, ticketID string, at time.Time) error {
	return pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE intake.quarantine SET status = $3, reason = $4, ticket_id = $5, processed_at = $6
WHERE tenant_id = $1 AND id = $2`, tenant, id, status, reason, ticketID, at)
		return err
	})
}

// AlertIndex is the open-incident index of one tenant's alert keys, read
// and written under a lock on those keys.
type AlertIndex interface {
	// Lookup returns the incident recorded for key, or "".
	Lookup(key string) string
	// Record maps keys to the incident ticketID.
	Record(ticketID string, keys ...string)
}

type alertIndex struct {
	found  map[string]string
	record map[string]string
}

func (a *alertIndex) Lookup(key string) string { return a.found[key] }
func (a *alertIndex) Record(ticketID string, keys ...string) {
	for _, k := range keys {
		a.record[k] = ticketID
	}
}

// WithAlertKeys runs fn holding transaction-scoped advisory locks on the
// tenant's keys (taken in sorted order, so two webhooks with overlapping
// keys cannot deadlock), so that concurrent alerts of one group cannot both
// open an incident. fn appends to the event store while the locks are held;
// what it recorded is written when it returns nil.
func (s *Store) WithAlertKeys(ctx context.Context, tenant string, keys []string, at time.Time, fn func(AlertIndex) error) error {
	sorted := append([]string(nil), keys...)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	return pgdb.InTenantTx(ctx, s.pool, tenant, func(tx pgx.Tx) error {
		for _, k := range sorted {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgdb.LockKey("intake.alerts."+tenant+"."+k)); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT key, ticket_id FROM intake.alert_incidents WHERE tenant_id = $1 AND key = ANY($2)`,
			tenant, sorted)
		if err != nil {
			return err
		}
		idx := &alertIndex{found: map[string]string{}, record: map[string]string{}}
		var k, id string
		if _, err := pgx.ForEachRow(rows, []any{&k, &id}, func() error { idx.found[k] = id; return nil }); err != nil {
			return err
		}
		if err := fn(idx); err != nil {
			return err
		}
		for k, id := range idx.record {
			if _, err := tx.Exec(ctx, `INSERT INTO intake.alert_incidents (tenant_id, key, ticket_id, opened_at)
VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, key) DO UPDATE SET ticket_id = excluded.ticket_id, opened_at = excluded.opened_at`,
				tenant, k, id, at); err != nil {
				return err
			}
		}
		return nil
	})
}
