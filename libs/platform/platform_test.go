package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/platform"
	"github.com/opsdesk/opsdesk/libs/runtime"
)

// testConfig is the default configuration with an embedded NATS on a free
// port, data in a temp dir and a throwaway database.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load([]string{"-nats.port=-1", "-data-dir=" + t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, cfg.Postgres.URL = pgtest.NewDB(t)
	return cfg
}

// probeService is a service module that checks its Deps and mounts a route.
type probeService struct{ stopped chan struct{} }

func (s *probeService) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s *probeService) Stop(context.Context) error    { close(s.stopped); return nil }

func TestInfrastructureWithEmbeddedNATS(t *testing.T) {
	cfg := testConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	mgr := runtime.NewManager(quietLogger())
	plat := platform.New(cfg, quietLogger(), mgr, platform.Options{Listener: ln, Config: map[string]any{"probe": struct{ Wait time.Duration }{time.Second}}})
	plat.Register()

	svc := &probeService{stopped: make(chan struct{})}
	issuer := authtest.New(t)
	jwks := issuer.JWKS(t)
	var deps runtime.Deps
	mgr.Register(plat.Service("probe", func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
		deps = d
		if d.NATS == nil || d.JS == nil || d.DB == nil || d.HTTP == nil || d.Logger == nil || d.Auth == nil {
			return nil, fmt.Errorf("incomplete deps: %+v", d)
		}
		// The service can use both: a JetStream round trip and a query.
		if _, err := d.JS.AccountInfo(ctx); err != nil {
			return nil, err
		}
		if err := d.DB.Ping(ctx); err != nil {
			return nil, err
		}
		d.HTTP.GET("/v1/probe", func(c echo.Context) error { return c.String(http.StatusOK, "probe") })
		// Stand in for identity: the auth module fetches keys from this
		// process's listener.
		d.HTTP.GET("/.well-known/jwks.json", func(c echo.Context) error {
			return c.Blob(http.StatusOK, "application/json", jwks)
		})
		return svc, nil
	}))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx, []string{"probe"}) }()
	waitReady(t, base, done)

	if got := get(t, base+"/v1/probe", http.StatusOK); got != "probe" {
		t.Errorf("service route answered %q", got)
	}
	get(t, base+"/healthz", http.StatusOK)
	if m := get(t, base+"/metrics", http.StatusOK); !strings.Contains(m, "# TYPE") {
		t.Errorf("/metrics is not Prometheus text: %.200s", m)
	}
	var states map[string]string
	if err := json.Unmarshal([]byte(get(t, base+"/services", http.StatusOK)), &states); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{platform.Telemetry, platform.NATS, platform.Postgres, platform.HTTPServer, "probe"} {
		if states[m] != runtime.StateRunning {
			t.Errorf("/services: %s is %q, want running", m, states[m])
		}
	}
	// /config and the dead-letter routes are for operators only.
	operator := issuer.Token(t, authtest.User{Tenant: authtest.NewTenantID(), Roles: []string{auth.RoleAdmin}, Operator: true})
	agent := issuer.Token(t, authtest.User{Tenant: authtest.NewTenantID(), Roles: []string{auth.RoleAgent}})
	get(t, base+"/config", http.StatusUnauthorized)
	getAs(t, agent, base+"/config", http.StatusForbidden)
	getAs(t, agent, base+"/admin/deadletters", http.StatusForbidden)
	var shown map[string]map[string]any
	if err := json.Unmarshal([]byte(getAs(t, operator, base+"/config", http.StatusOK)), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["nats"]["DuplicateWindow"] != "2m0s" || shown["probe"]["Wait"] != "1s" {
		t.Errorf("/config durations: nats %v, probe %v", shown["nats"]["DuplicateWindow"], shown["probe"]["Wait"])
	}
	getAs(t, operator, base+"/admin/deadletters", http.StatusOK)

	// The embedded server is reachable on loopback for external tools.
	if !plat.Embedded() || !strings.HasPrefix(plat.NATSURL(), "nats://127.0.0.1:") {
		t.Fatalf("embedded=%v url=%q", plat.Embedded(), plat.NATSURL())
	}
	natsAddr := strings.TrimPrefix(plat.NATSURL(), "nats://")
	if c, err := net.Dial("tcp", natsAddr); err != nil {
		t.Errorf("embedded NATS not listening on %s: %v", natsAddr, err)
	} else {
		c.Close()
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after shutdown: %v", err)
	}
	select {
	case <-svc.stopped:
	default:
		t.Error("service not stopped")
	}
	// Everything is released: the NATS connection, the server, the pool,
	// the HTTP listener.
	if !deps.NATS.IsClosed() {
		t.Error("NATS connection still open")
	}
	if c, err := net.Dial("tcp", natsAddr); err == nil {
		c.Close()
		t.Error("embedded NATS still listening after shutdown")
	}
	if err := deps.DB.Ping(context.Background()); err == nil {
		t.Error("Postgres pool still usable after shutdown")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("HTTP still serving after shutdown")
	}
}

func TestExternalNATS(t *testing.T) {
	srv := natstest.Start(t)
	cfg := testConfig(t)
	cfg.NATS.URL = srv.URL()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgr := runtime.NewManager(quietLogger())
	plat := platform.New(cfg, quietLogger(), mgr, platform.Options{Listener: ln, NoEmbeddedNATS: true})
	plat.Register()
	var connected string
	mgr.Register(plat.Service("probe", func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
		connected = d.NATS.ConnectedUrl()
		return &probeService{stopped: make(chan struct{})}, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx, []string{"probe"}) }()
	waitReady(t, "http://"+ln.Addr().String(), done)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if plat.Embedded() || connected != srv.URL() {
		t.Errorf("embedded=%v, connected to %q, want the external %s", plat.Embedded(), connected, srv.URL())
	}
}

// A single-service binary without a NATS URL fails at start, naming the
// setting, rather than embedding a server nobody else can reach.
func TestNoEmbeddedNATSWithoutURL(t *testing.T) {
	cfg := testConfig(t)
	mgr := runtime.NewManager(quietLogger())
	plat := platform.New(cfg, quietLogger(), mgr, platform.Options{NoEmbeddedNATS: true})
	plat.Register()
	err := mgr.Run(context.Background(), []string{platform.NATS})
	if err == nil || !strings.Contains(err.Error(), "OPSDESK_NATS_URL") {
		t.Fatalf("err = %v, want one naming OPSDESK_NATS_URL", err)
	}
}

// The Postgres option finds the database at start and its stop runs when
// the postgres module stops.
func TestPostgresOption(t *testing.T) {
	cfg := testConfig(t)
	url := cfg.Postgres.URL
	cfg.Postgres.URL = ""
	stopped := make(chan struct{})
	mgr := runtime.NewManager(quietLogger())
	plat := platform.New(cfg, quietLogger(), mgr, platform.Options{
		Postgres: func(context.Context) (string, func(context.Context) error, error) {
			return url, func(context.Context) error { close(stopped); return nil }, nil
		},
	})
	plat.Register()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx, []string{platform.Postgres}) }()
	deadline := time.Now().Add(10 * time.Second)
	for mgr.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", mgr.Ready())
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if plat.Deps("x").DB == nil {
		t.Fatal("no pool")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Error("the Postgres stop function did not run")
	}
}

func waitReady(t *testing.T, base string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20s: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before ready: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("GET %s: %d %s, want %d", url, resp.StatusCode, b, want)
	}
	return string(b)
}

// getAs is get with a bearer token.
func getAs(t *testing.T, token, url string, want int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("GET %s: %d %s, want %d", url, resp.StatusCode, b, want)
	}
	return string(b)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// An embedded port that is taken fails at once, saying which port and what
// to set, instead of waiting for a server that cannot start.
func TestEmbeddedPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.NATS.Embedded.Port = busy.Addr().(*net.TCPAddr).Port
	mgr := runtime.NewManager(quietLogger())
	plat := platform.New(cfg, quietLogger(), mgr, platform.Options{})
	plat.Register()
	start := time.Now()
	err = mgr.Run(context.Background(), []string{platform.NATS})
	if err == nil || !strings.Contains(err.Error(), busy.Addr().String()) || !strings.Contains(err.Error(), "OPSDESK_NATS_PORT") {
		t.Fatalf("err = %v, want one naming %s and OPSDESK_NATS_PORT", err, busy.Addr())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to fail", d)
	}
}
