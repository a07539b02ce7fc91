// Package pgtest gives each test a throwaway Postgres database on the server
// named by DATABASE_URL (default: the local server), so tests that touch
// read models run against real Postgres, in parallel, and leave nothing
// behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsdesk/opsdesk/libs/pgdb"
)

// DefaultURL is the server tests use when DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testMaxConns bounds each test database's pool: many tests run in parallel
// against one server (max_connections is 100 by default).
const testMaxConns = "6"

// URL returns the server URL tests use: DATABASE_URL, or DefaultURL.
func URL() string {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v
	}
	return DefaultURL
}

// NewDB creates a fresh, empty database t_<random> on the server from URL()
// and returns a traced pool on it (pgdb.Connect: its connections act as
// pgdb.AppRole, so row-level security applies) and its URL. The pool is
// closed and the database dropped (WITH (FORCE), so leftover connections do
// not keep it alive) when the test ends. It is safe for parallel tests. When
// Postgres cannot be reached the test fails, saying how to start it: a test
// that needs Postgres must never pass silently without it.
func NewDB(t testing.TB) (pool *pgxpool.Pool, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := "t_" + randomHex(8)
	admin := connectAdmin(ctx, t)
	_, err := admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	admin.Close(ctx)
	if err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	// Registered first so it runs last, after the pool is closed.
	t.Cleanup(func() { dropDB(t, name) })

	dbURL, err = withDatabase(URL(), name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pool, err = pgdb.Connect(ctx, withDefaultParam(dbURL, "pool_max_conns", testMaxConns))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", name, err)
	}
	t.Cleanup(pool.Close)
	return pool, dbURL
}

// Owner returns a pool on the database at dbURL (from NewDB) whose
// connections act as the login role rather than pgdb.AppRole: it sees past
// row-level security (the role owns the tables) and may terminate other
// backends. For tests that inspect or sabotage the database from outside.
func Owner(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgdb.ConnectOwner(ctx, withDefaultParam(dbURL, "pool_max_conns", "2"))
	if err != nil {
		t.Fatalf("pgtest: connect as owner: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func connectAdmin(ctx context.Context, t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, URL())
	if err != nil {
		t.Fatalf("pgtest: cannot connect to Postgres at %s: %v\n"+
			"Tests need a real Postgres. Start it (on the dev machine: "+
			"`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, "+
			"or `docker compose up -d postgres`), or set DATABASE_URL to a server "+
			"where this user may create databases.", redact(URL()), err)
	}
	return conn
}

func dropDB(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, URL())
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// withDatabase returns connString pointing at database name; both URL and
// keyword/value forms are accepted.
func withDatabase(connString, name string) (string, error) {
	if !isURL(connString) {
		return connString + " dbname=" + name, nil // the last setting wins
	}
	u, err := url.Parse(connString)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// withDefaultParam adds key=value to connString unless it sets key already.
func withDefaultParam(connString, key, value string) string {
	if !isURL(connString) {
		if strings.Contains(connString, key+"=") {
			return connString
		}
		return connString + " " + key + "=" + value
	}
	u, err := url.Parse(connString)
	if err != nil {
		return connString
	}
	q := u.Query()
	if !q.Has(key) {
		q.Set(key, value)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func redact(connString string) string {
	if u, err := url.Parse(connString); err == nil && isURL(connString) {
		return u.Redacted()
	}
	return "the server in DATABASE_URL"
}
