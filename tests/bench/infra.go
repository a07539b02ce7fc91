package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/opsdesk/opsdesk/libs/natsx/embedded"
	"github.com/opsdesk/opsdesk/libs/pgdb"
)

// Durability is a JetStream durability mode (ARCHITECTURE.md §7a).
type Durability struct {
	Name string `json:"name"`
	// SyncAlways fsyncs before every ack; otherwise the server default
	// applies: acknowledged once in the OS page cache, fsync every 2 min.
	SyncAlways bool `json:"sync_always"`
}

var (
	durabilityDefault    = Durability{Name: "default"}
	durabilitySyncAlways = Durability{Name: "sync_always", SyncAlways: true}
)

// Describe says what the mode means, for the table.
func (d Durability) Describe() string {
	if d.SyncAlways {
		return "sync: always (fsync before every ack)"
	}
	return "default (fsync every 2 min)"
}

func parseModes(s string) ([]Durability, error) {
	var out []Durability
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "":
		case durabilityDefault.Name:
			out = append(out, durabilityDefault)
		case durabilitySyncAlways.Name, "sync":
			out = append(out, durabilitySyncAlways)
		default:
			return nil, fmt.Errorf("unknown durability mode %q (want default or sync_always)", name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no durability mode given")
	}
	return out, nil
}

func parsePhases(s string) (map[string]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		known := false
		for _, n := range phaseNames {
			known = known || n == p
		}
		if !known {
			return nil, fmt.Errorf("unknown phase %q (want some of %s)", p, strings.Join(phaseNames, ","))
		}
		out[p] = true
	}
	return out, nil
}

// quiet drops log lines (the nats-server's banner and notices).
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// natsServer is an embedded nats-server in its own temporary store.
type natsServer struct {
	srv *server.Server
	dir string
}

func startNATS(mode Durability) (*natsServer, error) {
	dir, err := os.MkdirTemp("", "opsdesk-bench-nats-*")
	if err != nil {
		return nil, fmt.Errorf("nats store dir: %w", err)
	}
	srv, err := embedded.Start(embedded.Config{
		Dir:        dir,
		Host:       "127.0.0.1",
		Port:       -1,
		SyncAlways: mode.SyncAlways,
		Logger:     quiet,
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start nats (%s): %w", mode.Name, err)
	}
	return &natsServer{srv: srv, dir: dir}, nil
}

func (n *natsServer) URL() string { return n.srv.ClientURL() }

func (n *natsServer) close() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	_ = os.RemoveAll(n.dir)
}

// database is a throwaway Postgres database, dropped by drop.
type database struct {
	name      string
	serverURL string
	url       string
	pool      *pgxpool.Pool
}

// createDatabase creates bench_<random> on the server at serverURL and
// opens a traced pool on it (pgdb.Connect, as services do).
func createDatabase(ctx context.Context, serverURL string) (*database, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "bench_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres (DATABASE_URL) %s: %w", redact(serverURL), err)
	}
	_, err = admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
	admin.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	d := &database{name: name, serverURL: serverURL}
	if d.url, err = withDatabase(serverURL, name); err != nil {
		d.drop()
		return nil, err
	}
	if d.pool, err = pgdb.Connect(ctx, d.url); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

// plainConn opens an untraced connection for the benchmark's own
// measurements, so they add no spans.
func (d *database) plainConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", d.name, err)
	}
	return conn, nil
}

func (d *database) drop() {
	if d.pool != nil {
		d.pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, d.serverURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: drop database %s: %v\n", d.name, err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "drop database if exists "+pgx.Identifier{d.name}.Sanitize()+" with (force)"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: drop database %s: %v\n", d.name, err)
	}
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// withDatabase points connString (URL or keyword/value form) at database name.
func withDatabase(connString, name string) (string, error) {
	if !isURL(connString) {
		return connString + " dbname=" + name, nil // the last setting wins
	}
	u, err := url.Parse(connString)
	if err != nil {
		return "", fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func redact(connString string) string {
	if u, err := url.Parse(connString); err == nil && isURL(connString) {
		return u.Redacted()
	}
	return "(keyword/value connection string)"
}
