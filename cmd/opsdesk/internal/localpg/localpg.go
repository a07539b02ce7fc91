// Package localpg finds a Postgres for the all-in-one binary, so that
// `make run` works on a fresh checkout without setting anything:
//
//  1. DATABASE_URL, when set, is used as it is;
//  2. else a server answering on 127.0.0.1:5432 (database opsdesk, created if
//     missing, as the current OS user or postgres);
//  3. else a private cluster started from the machine's PostgreSQL binaries in
//     <data-dir>/postgres, reused on the next start and stopped on exit.
//
// Deployments (docker-compose, Kubernetes) never come here: they set
// DATABASE_URL.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options say where to look for Postgres. The zero value of a field means
// "skip that step", so tests can force the private-cluster path.
type Options struct {
	// DatabaseURL wins when set (normally os.Getenv("DATABASE_URL")).
	DatabaseURL string
	// ProbeAddr is the host:port of a local server to try, e.g. 127.0.0.1:5432.
	ProbeAddr string
	// ClusterDir is where the private cluster lives, e.g. .data/postgres.
	ClusterDir string
	// Database is the database to use or create on a local or private server.
	Database string
	// Port of the private cluster; 0 picks a free one from 5433 up.
	Port int
	// BinDirs overrides the search for PostgreSQL binaries (tests, unusual installs).
	BinDirs []string
	Logger  *slog.Logger
}

// Instance is the Postgres the binary runs against.
type Instance struct {
	// URL is the connection string for pgdb.Connect.
	URL string
	// Source says in plain words where it came from, for the start banner.
	Source string
	// cluster is set when this process started a private cluster and must stop it.
	cluster *cluster
}

// Stop stops the private cluster if this process started it; otherwise
// (DATABASE_URL, the local server, a cluster another process runs) it does
// nothing.
func (i *Instance) Stop(ctx context.Context) error {
	if i == nil || i.cluster == nil {
		return nil
	}
	return i.cluster.stop(ctx)
}

// Find resolves Postgres in the order described in the package comment.
func Find(ctx context.Context, opts Options) (*Instance, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Database == "" {
		opts.Database = "opsdesk"
	}
	if opts.DatabaseURL != "" {
		return &Instance{URL: opts.DatabaseURL, Source: "DATABASE_URL (" + redact(opts.DatabaseURL) + ")"}, nil
	}
	if opts.ProbeAddr != "" && answers(opts.ProbeAddr) {
		u, err := useLocalServer(ctx, opts.ProbeAddr, opts.Database)
		if err == nil {
			return &Instance{URL: u, Source: "local server on " + opts.ProbeAddr + " (" + redact(u) + ")"}, nil
		}
		// A server we cannot log in to (password auth, say) is not ours to
		// fix; a private cluster still gets the developer running.
		opts.Logger.Warn("postgres on "+opts.ProbeAddr+" answers but refused us; starting a private cluster instead (set DATABASE_URL to use it)", "err", err)
	}
	if opts.ClusterDir == "" {
		return nil, errors.New("no Postgres: set DATABASE_URL or start a server on 127.0.0.1:5432")
	}
	c, err := startCluster(ctx, opts)
	if err != nil {
		return nil, err
	}
	u := c.url(opts.Database)
	if err := createDatabase(ctx, c.url("postgres"), opts.Database); err != nil {
		_ = c.stop(context.WithoutCancel(ctx))
		return nil, err
	}
	src := fmt.Sprintf("private cluster in %s, PostgreSQL %s on 127.0.0.1:%d (%s)", c.dir, c.version, c.port, redact(u))
	return &Instance{URL: u, Source: src, cluster: c}, nil
}

// answers reports whether something accepts TCP connections on addr.
func answers(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// useLocalServer logs in to the server on addr as the current OS user, then
// as postgres, and makes sure database db exists. It returns its URL.
func useLocalServer(ctx context.Context, addr, db string) (string, error) {
	var users []string
	if u, err := user.Current(); err == nil && u.Username != "" && u.Username != "postgres" {
		users = append(users, u.Username)
	}
	users = append(users, "postgres")
	var errs []error
	for _, name := range users {
		admin := pgURL(name, addr, "postgres")
		if err := createDatabase(ctx, admin, db); err != nil {
			errs = append(errs, fmt.Errorf("as %s: %w", name, err))
			continue
		}
		return pgURL(name, addr, db), nil
	}
	return "", errors.Join(errs...)
}

// createDatabase creates db through the server at adminURL unless it exists.
func createDatabase(ctx context.Context, adminURL, db string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", redact(adminURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", db, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		// Two processes racing to create it both end up with the database.
		if !isDuplicateDatabase(err) {
			return fmt.Errorf("create database %s: %w", db, err)
		}
	}
	return nil
}

func pgURL(userName, addr, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(userName), Host: addr, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// redact hides a password in a connection URL, for printing.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// freePort returns the first port from 5433 that nothing listens on, or a
// random free one.
func freePort() (int, error) {
	for p := 5433; p < 5443; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			_ = l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
