// Package pgdb holds the Postgres mechanics shared by every service: the
// traced connection pool, per-service schemas with embedded migrations, and
// the tenant-scoped transaction helper that row-level security builds on.
package pgdb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TenantSetting is the run-time setting InTenantTx sets for the length of a
// transaction. Row-level security policies compare tenant_id with
// current_setting('app.tenant_id', true).
const TenantSetting = "app.tenant_id"

// Pool defaults, used when the URL does not set them (pool_max_conns=...,
// connect_timeout=...). One pool serves every module of a process, so it is
// larger than pgxpool's default of max(4, NumCPU).
const (
	defaultMaxConns       = 20
	defaultConnectTimeout = 5 * time.Second
	pingTimeout           = 10 * time.Second
	rollbackTimeout       = 5 * time.Second
)

// AppRole is the role every connection of a Connect pool acts as (SET
// ROLE). It owns no table and is not a superuser, so the row-level security
// policies of the tenant tables hold for every query the services run; the
// login role of the URL owns the tables and runs the migrations.
const AppRole = "opsdesk_app"

// Connect opens a connection pool to url whose connections act as AppRole,
// creating the role if needed, and pings it, so a wrong URL or a server
// that is down fails at start with a clear error instead of at the first
// query. Every SQL statement becomes an OpenTelemetry span (through the
// global tracer provider) carrying the statement text but never its
// argument values, which can hold personal data; pool statistics are
// exported through the global meter provider.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return connect(ctx, url, true)
}

// ConnectOwner is Connect without AppRole: its connections act as the login
// role, which owns the tables and so is not held back by row-level security
// unless it is forced. For operator tools and tests that look across
// tenants; services use Connect.
func ConnectOwner(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return connect(ctx, url, false)
}

func connect(ctx context.Context, url string, asApp bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("pgdb: parse database URL: %w", err)
	}
	if !hasParam(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	// Spread reconnects so a pool does not replace all its connections at once.
	cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 10
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "opsdesk"
	}
	// otelpgx records the statement text (db.query.text) and, by default,
	// never the arguments: do not add WithIncludeQueryParameters. Acquire
	// spans are left out: pool waits show in the pool metrics instead, and a
	// span per acquire would double the spans of every transaction.
	cc.Tracer = otelpgx.NewTracer(otelpgx.WithDisableAcquireTracer())
	if asApp {
		if err := ensureAppRole(ctx, cc); err != nil {
			return nil, err
		}
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "set role "+AppRole)
			return err
		}
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgdb: open pool for %s: %w", describe(cc), err)
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgdb: cannot reach Postgres at %s: %w", describe(cc), err)
	}
	if err := otelpgx.RecordStats(pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgdb: pool metrics: %w", err)
	}
	return pool, nil
}

// ensureAppRole creates AppRole (NOLOGIN) if it does not exist and makes the
// login role a member, so that it may SET ROLE to it. Roles are global to
// the cluster, so databases created side by side (tests) race on it: a
// duplicate is fine.
func ensureAppRole(ctx context.Context, cc *pgx.ConnConfig) error {
	cc = cc.Copy()
	cc.Tracer = nil
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("pgdb: cannot reach Postgres at %s: %w", describe(cc), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists, member bool
	err = conn.QueryRow(ctx, `select exists (select 1 from pg_roles where rolname = $1),
	       pg_has_role(current_user, oid, 'MEMBER') from (select coalesce((select oid from pg_roles where rolname = $1), 0) oid) r`,
		AppRole).Scan(&exists, &member)
	if err != nil && exists {
		return fmt.Errorf("pgdb: role %s: %w", AppRole, err)
	}
	if exists && member {
		return nil
	}
	hint := fmt.Sprintf("as a superuser: CREATE ROLE %s NOLOGIN; GRANT %s TO %s;", AppRole, AppRole, cc.User)
	if !exists {
		_, err := conn.Exec(ctx, "create role "+AppRole+" nologin")
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505")) {
			return fmt.Errorf("pgdb: create role %s (%s): %w", AppRole, hint, err)
		}
	}
	if _, err := conn.Exec(ctx, "grant "+AppRole+" to current_user"); err != nil {
		return fmt.Errorf("pgdb: grant role %s to %s (%s): %w", AppRole, cc.User, hint, err)
	}
	return nil
}

// describe names the server and database without the password.
func describe(cc *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s as %s", cc.Host, cc.Port, cc.Database, cc.User)
}

// hasParam reports whether the connection string (URL or keyword/value
// form) sets key.
func hasParam(connString, key string) bool {
	if u, err := url.Parse(connString); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Query().Has(key)
	}
	return strings.Contains(connString, key+"=")
}

// InTx runs fn in a transaction on pool: committed when fn returns nil,
// rolled back when it returns an error (returned as is, so callers can match
// their own errors) or panics.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) (err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgdb: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			rollback(ctx, tx)
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		rollback(ctx, tx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgdb: commit: %w", err)
	}
	return nil
}

// rollback ends tx even when ctx is already cancelled: a cancelled request
// must still hand its connection back clean.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(rctx) // the error is the caller's error's consequence, or the conn is gone
}

// ErrNoTenant is returned by InTenantTx when the tenant is empty: a query
// without a tenant must never run as if it had one.
var ErrNoTenant = errors.New("pgdb: tenant is required")

// InTenantTx runs fn like InTx with app.tenant_id set to tenant for the
// transaction only (set_config(..., is_local => true), i.e. SET LOCAL), so
// row-level security policies on current_setting('app.tenant_id') see the
// caller's tenant and nothing leaks to the next user of the connection.
func InTenantTx(ctx context.Context, pool *pgxpool.Pool, tenant string, fn func(pgx.Tx) error) error {
	if tenant == "" {
		return ErrNoTenant
	}
	return InTx(ctx, pool, func(tx pgx.Tx) error {
		if err := SetTenant(ctx, tx, tenant); err != nil {
			return err
		}
		return fn(tx)
	})
}

// SetTenant sets app.tenant_id to tenant until tx ends. InTenantTx calls it;
// the projection runner calls it per event for read models under forced
// row-level security.
func SetTenant(ctx context.Context, tx pgx.Tx, tenant string) error {
	if tenant == "" {
		return ErrNoTenant
	}
	if _, err := tx.Exec(ctx, "select set_config('"+TenantSetting+"', $1, true)", tenant); err != nil {
		return fmt.Errorf("pgdb: set tenant: %w", err)
	}
	return nil
}

// LockKey derives a stable advisory-lock key from name, so that unrelated
// users of pg_advisory_lock (migrations of different schemas, projection
// set-up) do not block each other.
func LockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("opsdesk:" + name))
	return int64(h.Sum64())
}

// schemaRE accepts lower-case SQL identifiers that need no quoting.
var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema reports whether s can name a service schema: a lower-case
// identifier of at most 63 bytes that needs no quoting.
func ValidSchema(s string) bool { return schemaRE.MatchString(s) && !strings.HasPrefix(s, "pg_") }
