// Package system_test runs the intake service as it runs in production - a
// real embedded JetStream, a real Postgres database, the shared Echo
// instance served over real HTTP - and checks properties that span every
// layer: one trace from the HTTP request to the read model's SQL, and no
// acknowledged ticket lost when NATS restarts under load.
package system_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/telemetry"
	"github.com/opsdesk/opsdesk/services/intake"
)

// spans records every span of the package's tests. The tracer provider is
// installed once, before any component is built, and never replaced: a
// tracer taken from the global provider stays bound to the first provider
// set, so swapping providers between tests would lose spans.
var spans = tracetest.NewInMemoryExporter()

func TestMain(m *testing.M) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSyncer(spans))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(telemetry.Propagator()) // W3C traceparent, as in production
	code := m.Run()
	_ = tp.Shutdown(context.Background())
	os.Exit(code)
}

// system is one intake service with its projection running, reachable at
// baseURL; everything stops at the test's cleanup.
type system struct {
	nats    *natstest.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	db      *pgxpool.Pool
	owner   *pgxpool.Pool // sees every tenant's rows (the tables' owner)
	baseURL string
	client  *http.Client
	// issuer mints the access tokens intake trusts (identity's part here).
	issuer *authtest.Issuer
	t      testing.TB

	mu     sync.Mutex
	tokens map[string]string
}

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// start builds intake from real infrastructure. Tracer providers must be
// installed before: every instrumented component takes its tracer when built.
func start(t *testing.T, cfg intake.Config) *system {
	t.Helper()
	ns := natstest.Start(t)
	nc, js := ns.Conn(t)
	pool, dbURL := pgtest.NewDB(t)
	e := httpx.New(httpx.Config{}, quietLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	issuer := authtest.New(t)
	svc, err := intake.New(ctx, cfg, runtime.Deps{Logger: quietLogger(), NATS: nc, JS: js, DB: pool, HTTP: e, Auth: issuer.Authenticator()})
	if err != nil {
		t.Fatalf("intake.New: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpx.Listen(httpCtx, e, ln, 5*time.Second) }()

	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(runCtx) }()

	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		// Far above any answer intake may take: hitting it means a hang.
		Timeout: 20 * time.Second,
	}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		stopHTTP()
		if err := <-served; err != nil {
			t.Errorf("http server: %v", err)
		}
		stopRun()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(sctx); err != nil {
			t.Errorf("stop intake: %v", err)
		}
		if err := <-ran; err != nil {
			t.Errorf("intake run: %v", err)
		}
	})
	return &system{nats: ns, nc: nc, js: js, db: pool, owner: pgtest.Owner(t, dbURL), baseURL: "http://" + ln.Addr().String(), client: client, issuer: issuer, t: t}
}

// answer is one finished HTTP request.
type answer struct {
	status   int
	header   http.Header
	body     []byte
	duration time.Duration
}

// ticketBody is the part of the created ticket the tests read.
type ticketBody struct {
	ID     string `json:"id"`
	Number string `json:"number"`
}

func newTicketJSON(title string) []byte {
	b, _ := json.Marshal(map[string]string{
		"type": ticketv1.TypeIncident, "title": title, "description": "Raised by the system tests.",
		"impact": ticketv1.LevelLow, "urgency": ticketv1.LevelHigh, "requester": "ada@example.com",
	})
	return b
}

// postTicket sends POST /v1/tickets over real HTTP.
func (s *system) postTicket(ctx context.Context, tenant, title string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.baseURL+"/v1/tickets", bytes.NewReader(newTicketJSON(title)))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token(tenant))
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{duration: time.Since(t0)}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: body, duration: time.Since(t0)}, err
}

// token is an agent's access token in tenant, minted once per tenant.
func (s *system) token(tenant string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.tokens[tenant]; ok {
		return tok
	}
	if s.tokens == nil {
		s.tokens = map[string]string{}
	}
	tok := s.issuer.Token(s.t, authtest.User{Tenant: tenant, Roles: []string{"agent"}, Email: "agent@example.com", TTL: time.Hour})
	s.tokens[tenant] = tok
	return tok
}

// parseCreated decodes a 201's ticket and consistency token.
func parseCreated(a answer) (ticketBody, uint64, error) {
	if a.status != http.StatusCreated {
		return ticketBody{}, 0, fmt.Errorf("want 201, got %s", describe(a))
	}
	var tk ticketBody
	if err := json.Unmarshal(a.body, &tk); err != nil || tk.ID == "" {
		return ticketBody{}, 0, fmt.Errorf("201 body %s: %v", a.body, err)
	}
	seq, err := strconv.ParseUint(a.header.Get("X-Consistency-Token"), 10, 64)
	if err != nil || seq == 0 {
		return ticketBody{}, 0, fmt.Errorf("201 without a consistency token: %v", a.header)
	}
	return tk, seq, nil
}

// created is parseCreated failing the test on error.
func created(t testing.TB, a answer) (ticketBody, uint64) {
	t.Helper()
	tk, seq, err := parseCreated(a)
	if err != nil {
		t.Fatal(err)
	}
	return tk, seq
}

// waitProjected waits until the tickets projection has applied seq.
func (s *system) waitProjected(t testing.TB, seq uint64, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := projection.WaitFor(ctx, s.db, intake.Schema, intake.TicketsProjection, seq); err != nil {
		t.Fatalf("projection did not reach seq %d within %s: %v", seq, within, err)
	}
}

// streamLastSeq is the TICKETS stream's last sequence.
func (s *system) streamState(t testing.TB) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := s.js.Stream(ctx, ticketv1.Stream)
	if err != nil {
		t.Fatalf("stream %s: %v", ticketv1.Stream, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", ticketv1.Stream, err)
	}
	return info.State
}

func describe(a answer) string {
	b := a.body
	if len(b) > 300 {
		b = b[:300]
	}
	return fmt.Sprintf("%d after %s: %s", a.status, a.duration.Round(time.Millisecond), b)
}
