package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/intake"
)

func TestMain(m *testing.M) {
	// A real SDK tracer provider (without exporter) so spans have valid ids
	// and traceparent reaches the stored events.
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	// Libraries log through slog.Default (migrations, NATS reconnects);
	// failures, not their chatter, belong in test output.
	slog.SetDefault(testLogger())
	os.Exit(m.Run())
}

// env is one intake service on a real embedded JetStream and a throwaway
// Postgres database, driven through its Echo instance.
type env struct {
	nats *natstest.Server
	nc   *nats.Conn
	db   *pgxpool.Pool
	// owner sees past row-level security (the tables' owner).
	owner *pgxpool.Pool
	e     *echo.Echo
	deps  runtime.Deps
	cfg   intake.Config
	// issuer mints the access tokens requests carry; every replica trusts it.
	issuer *authtest.Issuer
	// stop stops the instance's projection (a no-op when it has none).
	stop func()
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// newEnv starts intake and its projection on a fresh embedded NATS server
// and database; everything stops at cleanup.
func newEnv(t testing.TB, cfg intake.Config) *env {
	t.Helper()
	ns := natstest.Start(t)
	pool, url := pgtest.NewDB(t)
	return (&env{nats: ns, db: pool, owner: pgtest.Owner(t, url), cfg: cfg, issuer: authtest.New(t)}).replica(t, true)
}

// replica starts another intake instance on the same NATS server and
// database, with its own connection and Echo, as a second replica would be;
// run says whether it also runs the projection.
func (e *env) replica(t testing.TB, run bool) *env {
	t.Helper()
	nc, js := e.nats.Conn(t)
	ec := httpx.New(httpx.Config{BodyLimit: "1M"}, testLogger())
	deps := runtime.Deps{Logger: testLogger(), NATS: nc, JS: js, DB: e.db, HTTP: ec, Auth: e.issuer.Authenticator()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := intake.New(ctx, e.cfg, deps)
	if err != nil {
		t.Fatalf("intake.New: %v", err)
	}
	r := &env{nats: e.nats, nc: nc, db: e.db, owner: e.owner, e: ec, deps: deps, cfg: e.cfg, issuer: e.issuer, stop: func() {}}
	if !run {
		return r
	}
	runCtx, cancelRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	r.stop = sync.OnceFunc(func() {
		defer cancelRun()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(sctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	t.Cleanup(r.stop)
	return r
}

// streamMessages counts the TICKETS messages on subjects matching filter.
func (e *env) streamMessages(t testing.TB, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.deps.JS.Stream(ctx, "TICKETS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// response is a finished request.
type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem is an RFC 9457 body.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// agent is the access token of an agent of tenant (which may read every
// ticket of it and log tickets for others).
func (e *env) agent(t testing.TB, tenant string) string {
	t.Helper()
	return e.issuer.Token(t, authtest.User{ID: agentID, Tenant: tenant, Roles: []string{"agent"}, Email: "agent@example.com"})
}

const agentID = "u_01JB8ZQ5M6V8Y0K3W4X2N7AGNT"

// request sends one request through the Echo handler as an agent of tenant
// (no credential when tenant is ""). body is sent as is when it is a string
// or []byte, else JSON-encoded; headers are pairs, and may set
// Authorization themselves.
func (e *env) request(t testing.TB, method, path, tenant string, body any, headers ...string) response {
	t.Helper()
	if tenant != "" {
		headers = append([]string{"Authorization", "Bearer " + e.agent(t, tenant)}, headers...)
	}
	return e.send(t, method, path, body, headers...)
}

// send sends one request with exactly the headers given.
func (e *env) send(t testing.TB, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.e.ServeHTTP(rec, req)
	return response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// ticketJSON is the API's ticket.
type ticketJSON struct {
	ID          string    `json:"id"`
	Number      string    `json:"number"`
	Type        string    `json:"type"`
	Status      string    `json:"status"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Impact      string    `json:"impact"`
	Urgency     string    `json:"urgency"`
	Priority    string    `json:"priority"`
	Requester   string    `json:"requester"`
	Channel     string    `json:"channel"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     int64     `json:"version"`
}

type pageJSON struct {
	Items      []ticketJSON `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

type eventJSON struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Sequence int64           `json:"sequence"`
	Version  int64           `json:"version"`
	Data     json.RawMessage `json:"data"`
	TraceID  string          `json:"trace_id"`
}

func newTicket(title string) map[string]any {
	return map[string]any{
		"type": "incident", "title": title, "description": "",
		"impact": "medium", "urgency": "high", "requester": "ada@example.com",
	}
}

// create posts a ticket and fails the test unless it is created; it returns
// the ticket and its consistency token.
func (e *env) create(t testing.TB, tenant string, body map[string]any) (ticketJSON, string) {
	t.Helper()
	r := e.request(t, http.MethodPost, "/v1/tickets", tenant, body)
	if r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	var tk ticketJSON
	r.decode(t, &tk)
	return tk, r.Header.Get("X-Consistency-Token")
}
