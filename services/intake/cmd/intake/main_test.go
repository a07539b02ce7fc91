package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
)

// TestRun starts the intake binary in-process against an external NATS and
// Postgres, waits until it is ready and serves the ticket routes, then stops
// it cleanly.
func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	_, dbURL := pgtest.NewDB(t)
	// identity runs elsewhere: its keys come from a JWKS URL.
	issuer := authtest.New(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(issuer.JWKS(t))
	}))
	defer jwks.Close()
	env := map[string]string{"OPSDESK_NATS_URL": srv.URL(), "DATABASE_URL": dbURL, "OPSDESK_AUTH_JWKS_URL": jwks.URL}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, ln) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30s: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("intake exited before ready: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/tickets", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/tickets without a token: %d, want 401", code)
	}
	agent := issuer.Token(t, authtest.User{Tenant: authtest.NewTenantID(), Roles: []string{"agent"}})
	if code := get(agent); code != http.StatusOK {
		t.Errorf("GET /v1/tickets with a token verified against the JWKS URL: %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("exit after shutdown: %v", err)
	}
}

// Without OPSDESK_NATS_URL the binary refuses to start, naming the setting.
func TestNeedsExternalNATS(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{"DATABASE_URL": dbURL, "OPSDESK_DATA_DIR": t.TempDir(), "OPSDESK_AUTH_JWKS_URL": "http://identity/.well-known/jwks.json"}[k]
	}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "OPSDESK_NATS_URL") {
		t.Fatalf("err = %v, want one naming OPSDESK_NATS_URL", err)
	}
}

func TestOnlyIntake(t *testing.T) {
	err := run(context.Background(), []string{"-target=all"}, func(string) string { return "" }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "only the intake service") {
		t.Fatalf("err = %v", err)
	}
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}
