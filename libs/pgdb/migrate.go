package pgdb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// VersionTable is the goose version table each service keeps inside its own
// schema, so services never see (or refuse) each other's migrations.
const VersionTable = "goose_db_version"

// Migrate brings schema up to the newest of migrations: goose SQL files
// (NNNNN_name.sql with -- +goose Up / Down) at the root of the FS, or in a
// migrations/ directory inside it (the usual //go:embed migrations/*.sql).
//
// It creates the schema if needed and keeps the version table in it
// (<schema>.goose_db_version). Statements run with search_path set to
// "<schema>, public", so migrations create unqualified tables in the
// service's schema. Replicas starting together are safe: the first takes a
// per-schema advisory lock and migrates, the others wait for it and then
// find nothing left to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, migrations fs.FS) error {
	if !ValidSchema(schema) {
		return fmt.Errorf("pgdb: migrate: invalid schema name %q", schema)
	}
	migrations, err := migrationRoot(migrations)
	if err != nil {
		return fmt.Errorf("pgdb: migrate %s: %w", schema, err)
	}
	// A dedicated database/sql handle (goose speaks database/sql) with the
	// pool's settings and tracer plus the schema's search_path. It acts as
	// the login role, which owns what it creates, even when the pool's
	// connections act as AppRole.
	cc := pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["search_path"] = schema + ", public"
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	if err := ensureSchema(ctx, db, schema); err != nil {
		return err
	}

	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithTableName(schema+"."+VersionTable),
		goose.WithSessionLocker(advisoryLocker{key: LockKey("migrate:" + schema)}),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("pgdb: migrate %s: %w", schema, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("pgdb: migrate %s: %w", schema, err)
	}
	if err := grantApp(ctx, db, schema); err != nil {
		return err
	}
	if len(results) > 0 {
		last := results[len(results)-1].Source.Version
		slog.Default().InfoContext(ctx, "migrated schema", "schema", schema, "applied", len(results), "version", last)
	}
	return nil
}

// migrationRoot returns the directory of fsys that holds the .sql files.
func migrationRoot(fsys fs.FS) (fs.FS, error) {
	if fsys == nil {
		return nil, fmt.Errorf("no migrations given")
	}
	if files, _ := fs.Glob(fsys, "*.sql"); len(files) > 0 {
		return fsys, nil
	}
	if files, _ := fs.Glob(fsys, "migrations/*.sql"); len(files) > 0 {
		return fs.Sub(fsys, "migrations")
	}
	return nil, fmt.Errorf("no .sql migrations at the root or in migrations/")
}

// ensureSchema creates schema under a transaction-scoped advisory lock:
// CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent twin (both
// see "missing", one fails on the catalog's unique index).
func ensureSchema(ctx context.Context, db *sql.DB, schema string) error {
	err := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // no-op after commit
		if _, err := tx.ExecContext(ctx, "select pg_advisory_xact_lock($1)", LockKey("schema:"+schema)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "create schema if not exists "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("pgdb: create schema %s: %w", schema, err)
	}
	return nil
}

// advisoryLocker is a goose SessionLocker that waits on pg_advisory_lock
// (bounded by ctx). goose's own Postgres locker polls pg_try_advisory_lock
// every 5 s, which would delay every replica but the first by seconds.
type advisoryLocker struct{ key int64 }

var _ lock.SessionLocker = advisoryLocker{}

func (l advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "select pg_advisory_lock($1)", l.key); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	return nil
}

func (l advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "select pg_advisory_unlock($1)", l.key); err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	return nil
}

// grantApp lets AppRole use what the migrations created: read and write
// every table (row-level security decides which rows), TRUNCATE for
// read-model rebuilds, the sequences, and CREATE in the schema for the
// projection runner's checkpoint table. The tables stay owned by the
// migrating role, so their row-level security binds AppRole.
func grantApp(ctx context.Context, db *sql.DB, schema string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgdb: migrate %s: grants: %w", schema, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	// Concurrent GRANTs on one object fail ("tuple concurrently updated"):
	// replicas take turns, on the migration's lock.
	if _, err := tx.ExecContext(ctx, "select pg_advisory_xact_lock($1)", LockKey("migrate:"+schema)); err != nil {
		return fmt.Errorf("pgdb: migrate %s: grants: %w", schema, err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	for _, stmt := range []string{
		"grant usage, create on schema " + s + " to " + AppRole,
		"grant select, insert, update, delete, truncate on all tables in schema " + s + " to " + AppRole,
		"grant usage, select, update on all sequences in schema " + s + " to " + AppRole,
		"grant execute on all functions in schema " + s + " to " + AppRole,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("pgdb: migrate %s: %s: %w", schema, stmt, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgdb: migrate %s: grants: %w", schema, err)
	}
	return nil
}
