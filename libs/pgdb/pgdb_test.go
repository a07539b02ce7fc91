package pgdb_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
)

var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)))
	os.Exit(m.Run())
}

func TestConnectFailsFastWithClearError(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := pgdb.Connect(context.Background(), "postgres://postgres@127.0.0.1:1/nope?sslmode=disable")
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "cannot reach Postgres at 127.0.0.1:1/nope") {
		t.Fatalf("unclear error: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Connect took %v to fail", d)
	}
}

func TestConnectTracesStatementsWithoutArguments(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx, parent := otel.Tracer("test").Start(context.Background(), "parent")
	var got string
	if err := pool.QueryRow(ctx, "select $1::text", "s3cret-value").Scan(&got); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var found bool
	for _, s := range spans.GetSpans() {
		if s.Parent.SpanID() != parent.SpanContext().SpanID() {
			continue
		}
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), "s3cret") {
				t.Fatalf("span %q leaks an argument in %s", s.Name, a.Key)
			}
			if a.Key == "db.query.text" && a.Value.AsString() == "select $1::text" {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no child span of the caller with db.query.text = the statement")
	}
}

func TestMigrateIsolatesSchemasAndIsSafeForConcurrentReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewDB(t)

	// Laid out like //go:embed migrations/*.sql.
	a := fstest.MapFS{
		"migrations/00001_widgets.sql": {Data: []byte(
			"-- +goose Up\ncreate table widgets (id int primary key);\n-- +goose Down\ndrop table widgets;\n")},
		"migrations/00002_gadgets.sql": {Data: []byte(
			"-- +goose Up\ncreate table gadgets (id int primary key, widget int references widgets);\n-- +goose Down\ndrop table gadgets;\n")},
	}
	b := fstest.MapFS{ // a different service whose only migration is also version 1
		"00001_widgets.sql": {Data: []byte(
			"-- +goose Up\ncreate table widgets (name text primary key);\n-- +goose Down\ndrop table widgets;\n")},
	}

	// Four replicas of service a and one of b start at once.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 0; i < 4; i++ {
		wg.Go(func() { errs <- pgdb.Migrate(ctx, pool, "svc_a", a) })
	}
	wg.Go(func() { errs <- pgdb.Migrate(ctx, pool, "svc_b", b) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	// Running again is a no-op.
	if err := pgdb.Migrate(ctx, pool, "svc_a", a); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}

	tables := func(schema string) string {
		var s string
		err := pool.QueryRow(ctx, `select coalesce(string_agg(tablename, ',' order by tablename), '')
			from pg_tables where schemaname = $1`, schema).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := tables("svc_a"); got != "gadgets,goose_db_version,widgets" {
		t.Errorf("svc_a tables = %q", got)
	}
	if got := tables("svc_b"); got != "goose_db_version,widgets" {
		t.Errorf("svc_b tables = %q", got)
	}
	if got := tables("public"); got != "" {
		t.Errorf("migrations leaked into public: %q", got)
	}
	applied := func(schema string) string {
		var s string
		err := pool.QueryRow(ctx, "select string_agg(version_id::text, ',' order by id) from "+
			pgx.Identifier{schema, pgdb.VersionTable}.Sanitize()+" where is_applied").Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Version 0 is goose's marker row; each version applied exactly once.
	if got := applied("svc_a"); got != "0,1,2" {
		t.Errorf("svc_a versions = %s", got)
	}
	if got := applied("svc_b"); got != "0,1" {
		t.Errorf("svc_b versions = %s", got)
	}
}

func TestMigrateRejectsBadInput(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ok := fstest.MapFS{"00001_x.sql": {Data: []byte("-- +goose Up\nselect 1;\n")}}
	if err := pgdb.Migrate(context.Background(), pool, "Bad-Name; drop", ok); err == nil {
		t.Error("invalid schema name accepted")
	}
	if err := pgdb.Migrate(context.Background(), pool, "svc", fstest.MapFS{}); err == nil {
		t.Error("empty migrations accepted")
	}
	broken := fstest.MapFS{"00001_x.sql": {Data: []byte("-- +goose Up\ncreate tabel oops;\n")}}
	if err := pgdb.Migrate(context.Background(), pool, "svc", broken); err == nil {
		t.Error("broken migration reported success")
	}
}

func TestInTxCommitsOrRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := pgtest.NewDB(t)
	if _, err := pgtest.Owner(t, url).Exec(ctx, "create table t (id int primary key); grant all on t to "+pgdb.AppRole); err != nil {
		t.Fatal(err)
	}
	insert := func(id int) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "insert into t values ($1)", id)
			return err
		}
	}
	if err := pgdb.InTx(ctx, pool, insert(1)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		if err := insert(2)(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want the function's error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		_ = pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
			_ = insert(3)(tx)
			panic("bug")
		})
	}()
	var ids []int32
	rows, _ := pool.Query(ctx, "select id from t order by id")
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("rows = %v, want only the committed [1]", ids)
	}
}

// TestInTenantTxRowLevelSecurity shows the policy shape every service uses:
// a non-owner role under FORCE ROW LEVEL SECURITY sees and writes only the
// rows of the tenant InTenantTx set, and without a tenant sees nothing.
func TestInTenantTxRowLevelSecurity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The pool acts as pgdb.AppRole; the tables belong to the login role.
	pool, url := pgtest.NewDB(t)
	owner := pgtest.Owner(t, url)
	role := pgdb.AppRole
	ddl := []string{
		"create schema app",
		"create table app.notes (tenant_id text not null, body text not null)",
		"alter table app.notes enable row level security",
		"alter table app.notes force row level security",
		`create policy tenant_isolation on app.notes
			using (tenant_id = current_setting('app.tenant_id', true))
			with check (tenant_id = current_setting('app.tenant_id', true))`,
		"grant usage on schema app to " + role,
		"grant select, insert on app.notes to " + role,
		"insert into app.notes values ('t1', 'one'), ('t1', 'two'), ('t2', 'secret of t2')",
	}
	for _, q := range ddl {
		if _, err := owner.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	bodies := func(tenant string) ([]string, error) {
		var out []string
		err := pgdb.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, "select body from app.notes order by body")
			var err error
			out, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		return out, err
	}
	got, err := bodies("t1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "one,two" {
		t.Fatalf("tenant t1 sees %v", got)
	}

	// Writing another tenant's row is refused by the policy's check.
	err = pgdb.InTenantTx(ctx, pool, "t1", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "insert into app.notes values ('t2', 'forged')")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Fatalf("insert for another tenant: %v", err)
	}

	// The setting is local to the transaction: the same role outside
	// InTenantTx sees nothing.
	err = pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "select count(*) from app.notes").Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("without a tenant the role sees %d rows", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := bodies(""); !errors.Is(err, pgdb.ErrNoTenant) {
		t.Fatalf("empty tenant: %v", err)
	}
}

func TestInTenantTxSettingDoesNotOutliveTheTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := pgtest.NewDB(t)
	// One connection, so the next query surely reuses it.
	pool, err := pgdb.Connect(ctx, url+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	err = pgdb.InTenantTx(ctx, pool, "t1", func(tx pgx.Tx) error {
		var v string
		if err := tx.QueryRow(ctx, "select current_setting('app.tenant_id')").Scan(&v); err != nil {
			return err
		}
		if v != "t1" {
			t.Errorf("inside: app.tenant_id = %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var after string
	if err := pool.QueryRow(ctx, "select coalesce(current_setting('app.tenant_id', true), '')").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != "" {
		t.Fatalf("after the transaction: app.tenant_id = %q", after)
	}
}
