package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/secret"
)

// syncBuffer is a bytes.Buffer safe for the binary's goroutines to write
// while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRun starts the identity binary in-process against an external NATS
// and Postgres with a configured secret key and bootstrap admin, waits until
// it is ready, signs the admin in, reads /v1/me with the access token (which
// the process verifies against its own JWKS) and the JWKS itself, then stops
// it cleanly.
func TestRun(t *testing.T) {
	srv := natstest.Start(t)
	_, dbURL := pgtest.NewDB(t)
	const (
		tenant   = "acme"
		admin    = "admin@acme.example"
		password = "correct horse battery staple"
	)
	env := map[string]string{
		"OPSDESK_NATS_URL":                 srv.URL(),
		"DATABASE_URL":                     dbURL,
		"OPSDESK_SECRET_KEY":               secret.Generate().Encode(),
		"OPSDESK_BOOTSTRAP_TENANT":         tenant,
		"OPSDESK_BOOTSTRAP_ADMIN_EMAIL":    admin,
		"OPSDESK_BOOTSTRAP_ADMIN_PASSWORD": password,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &stderr, ln) }()

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
			t.Fatalf("not ready within 30s: %v\n%s", err, stderr.String())
		}
		select {
		case err := <-done:
			t.Fatalf("identity exited before ready: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(stderr.String(), "first start: created the first tenant") ||
		!strings.Contains(stderr.String(), `"admin":"`+admin+`"`) {
		t.Errorf("the bootstrap is not logged:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), password) {
		t.Errorf("the log shows the bootstrap admin's password")
	}

	// Sign in as the bootstrapped admin.
	form := url.Values{"grant_type": {"password"}, "tenant": {tenant}, "username": {admin}, "password": {password}}
	resp, err := http.PostForm(base+"/v1/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	tokBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(tokBody, &tok) != nil || tok.TokenType != "Bearer" || tok.AccessToken == "" {
		t.Fatalf("POST /v1/auth/token: %d %s", resp.StatusCode, tokBody)
	}

	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := get("/v1/me", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/me without a token: %d %s, want 401", code, body)
	}
	code, body := get("/v1/me", tok.AccessToken)
	var me struct {
		Kind  string   `json:"kind"`
		ID    string   `json:"id"`
		Roles []string `json:"roles"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &me) != nil || me.Kind != "user" || me.ID == "" {
		t.Errorf("GET /v1/me with the access token: %d %s", code, body)
	}

	code, body = get("/.well-known/jwks.json", "")
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
		} `json:"keys"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &jwks) != nil || len(jwks.Keys) == 0 || jwks.Keys[0].Kid == "" {
		t.Errorf("GET /.well-known/jwks.json: %d %s, want a key set with a key", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after shutdown: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s of shutdown")
	}
}

// Without OPSDESK_SECRET_KEY the binary refuses to start, naming the
// setting, before it connects to anything.
func TestNeedsSecretKey(t *testing.T) {
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{
			"OPSDESK_NATS_URL": "nats://nats:4222",
			"DATABASE_URL":     "postgres://opsdesk@postgres:5432/opsdesk",
			"OPSDESK_DATA_DIR": t.TempDir(),
		}[k]
	}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "OPSDESK_SECRET_KEY") {
		t.Fatalf("err = %v, want one naming OPSDESK_SECRET_KEY", err)
	}
}

// Without OPSDESK_NATS_URL the binary refuses to start, naming the setting:
// it never embeds a NATS server.
func TestNeedsExternalNATS(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{"DATABASE_URL": dbURL, "OPSDESK_DATA_DIR": t.TempDir(), "OPSDESK_SECRET_KEY": secret.Generate().Encode()}[k]
	}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "OPSDESK_NATS_URL") {
		t.Fatalf("err = %v, want one naming OPSDESK_NATS_URL", err)
	}
}

func TestOnlyIdentity(t *testing.T) {
	err := run(context.Background(), []string{"-target=all"}, func(string) string { return "" }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "only the identity service") {
		t.Fatalf("err = %v", err)
	}
	var usage bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &usage, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"OPSDESK_SECRET_KEY", "OPSDESK_IDENTITY_ACCESS_TTL", "OPSDESK_BOOTSTRAP_TENANT"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("-h does not mention %s", want)
		}
	}
}

// The bootstrap settings come as a set: a tenant without the admin's
// password is a configuration error, not a silent skip.
func TestBootstrapGoesTogether(t *testing.T) {
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{
			"OPSDESK_SECRET_KEY":            secret.Generate().Encode(),
			"OPSDESK_BOOTSTRAP_TENANT":      "acme",
			"OPSDESK_BOOTSTRAP_ADMIN_EMAIL": "admin@acme.example",
		}[k]
	}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "OPSDESK_BOOTSTRAP_ADMIN_PASSWORD") {
		t.Fatalf("err = %v, want one naming OPSDESK_BOOTSTRAP_ADMIN_PASSWORD", err)
	}
}
