package pgtest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
)

func TestNewDBGivesEachTestItsOwnDatabaseAndDropsIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var (
		mu    sync.Mutex
		names []string
	)
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 4; i++ {
			t.Run("db", func(t *testing.T) {
				t.Parallel()
				pool, url := pgtest.NewDB(t)
				var name string
				if err := pool.QueryRow(ctx, "select current_database()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				// Each database starts empty: creating the same table in every
				// parallel test must not collide.
				if _, err := pgtest.Owner(t, url).Exec(ctx, "create table t (id int primary key)"); err != nil {
					t.Fatalf("fresh database already has t: %v", err)
				}
				// The pool acts as the application role, so row-level
				// security binds what tests run through it.
				var role string
				if err := pool.QueryRow(ctx, "select current_user").Scan(&role); err != nil || role != pgdb.AppRole {
					t.Fatalf("pool acts as %q (%v), want %s", role, err, pgdb.AppRole)
				}
				// The URL returned points at the same database.
				conn, err := pgx.Connect(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				var viaURL string
				if err := conn.QueryRow(ctx, "select current_database()").Scan(&viaURL); err != nil {
					t.Fatal(err)
				}
				if viaURL != name {
					t.Fatalf("URL points at %s, pool at %s", viaURL, name)
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			})
		}
	})

	if len(names) != 4 {
		t.Fatalf("got %d databases, want 4", len(names))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("database %s handed out twice", n)
		}
		seen[n] = true
	}
	conn, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, "select count(*) from pg_database where datname = any($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d test databases were not dropped", left)
	}
}
