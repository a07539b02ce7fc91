package localpg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPrivateCluster starts a real private cluster from the machine's
// PostgreSQL binaries, stops it, and starts it again from the same directory:
// the data written the first time is still there.
func TestPrivateCluster(t *testing.T) {
	t.Parallel()
	if _, _, err := findBinaries(nil, ""); errors.Is(err, ErrNoBinaries) {
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine, so no private cluster can be started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := reachableTempDir(t)
	opts := Options{ClusterDir: filepath.Join(dir, "postgres"), Database: "opsdesk"}

	first, err := Find(ctx, opts)
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	t.Cleanup(func() { _ = first.Stop(context.Background()) })
	if !strings.HasPrefix(first.Source, "private cluster in ") {
		t.Errorf("Source = %q, want a private cluster", first.Source)
	}
	mustExec(t, ctx, first.URL, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
	if err := first.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if u, _ := url.Parse(first.URL); answers(u.Host) {
		t.Errorf("server still answers after Stop")
	}

	second, err := Find(ctx, opts)
	if err != nil {
		t.Fatalf("second start (reuse): %v", err)
	}
	defer func() {
		if err := second.Stop(context.Background()); err != nil {
			t.Errorf("stop again: %v", err)
		}
	}()
	conn, err := pgx.Connect(ctx, second.URL)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after restart: v=%q err=%v, want the row written before", v, err)
	}
	// A second process on the same directory uses the running server and
	// leaves it running when it stops.
	other, err := Find(ctx, opts)
	if err != nil {
		t.Fatalf("find while running: %v", err)
	}
	if other.URL != second.URL {
		t.Errorf("second process got %s, want the running server %s", other.URL, second.URL)
	}
	if err := other.Stop(ctx); err != nil {
		t.Fatalf("stop of the second process: %v", err)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("the server stopped with a process that did not start it: %v", err)
	}
	// Localhost only: the server must not listen beyond loopback.
	var listen string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil || listen != "127.0.0.1" {
		t.Errorf("listen_addresses = %q (%v), want 127.0.0.1", listen, err)
	}
}

func TestDatabaseURLWins(t *testing.T) {
	t.Parallel()
	in, err := Find(context.Background(), Options{
		DatabaseURL: "postgres://app:secret@db.example:5432/opsdesk",
		ProbeAddr:   "127.0.0.1:5432",
		ClusterDir:  filepath.Join(t.TempDir(), "never-created"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.URL != "postgres://app:secret@db.example:5432/opsdesk" {
		t.Errorf("URL = %q", in.URL)
	}
	if strings.Contains(in.Source, "secret") {
		t.Errorf("Source %q shows the password", in.Source)
	}
	if err := in.Stop(context.Background()); err != nil {
		t.Errorf("Stop of a URL instance: %v", err)
	}
}

// TestLocalServer uses the server on 127.0.0.1:5432 and creates the database
// it is asked for.
func TestLocalServer(t *testing.T) {
	t.Parallel()
	const addr = "127.0.0.1:5432"
	if !answers(addr) {
		t.Skip("no Postgres server answers on " + addr)
	}
	ctx := context.Background()
	db := fmt.Sprintf("localpg_test_%d", time.Now().UnixNano())
	in, err := Find(ctx, Options{ProbeAddr: addr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin := strings.Replace(in.URL, "/"+db+"?", "/postgres?", 1)
		mustExec(t, context.Background(), admin, "DROP DATABASE IF EXISTS "+db)
	})
	if !strings.HasPrefix(in.Source, "local server on "+addr) {
		t.Errorf("Source = %q", in.Source)
	}
	var got string
	conn, err := pgx.Connect(ctx, in.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil || got != db {
		t.Fatalf("current_database = %q (%v), want %q", got, err, db)
	}
	// Asking again finds the database that now exists.
	if _, err := Find(ctx, Options{ProbeAddr: addr, Database: db}); err != nil {
		t.Fatalf("second Find: %v", err)
	}
}

func TestNoBinaries(t *testing.T) {
	t.Parallel()
	_, err := Find(context.Background(), Options{ClusterDir: filepath.Join(t.TempDir(), "pg"), BinDirs: []string{t.TempDir()}})
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	for _, hint := range []string{"DATABASE_URL", "apt-get install postgresql", "brew install"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("message %q does not mention %q", err, hint)
		}
	}
}

// reachableTempDir is a temp dir the postgres OS user can traverse: as root
// the cluster runs as postgres, and t.TempDir's directories are 0700.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func mustExec(t *testing.T, ctx context.Context, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
