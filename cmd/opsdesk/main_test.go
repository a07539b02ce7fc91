package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
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

// TestRunAllInOne starts `opsdesk run` in-process like a user would (embedded
// NATS on a free port, a throwaway database, HTTP on 127.0.0.1:0), waits
// until it is ready, logs a ticket and reads it back over HTTP, then stops
// it as Ctrl-C would and expects a clean exit.
func TestRunAllInOne(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	env := map[string]string{
		"DATABASE_URL":      dbURL,
		"OPSDESK_NATS_PORT": "-1",
		"OPSDESK_DATA_DIR":  t.TempDir(),
		"OPSDESK_SMTP_ADDR": "127.0.0.1:0",
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var stdout, stderr syncBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }, listener: ln}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- c.main(ctx, []string{"run", "--target=all"}) }()

	waitFor(t, exit, &stderr, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// The first start created the demo tenant and printed its admin's
	// generated password once: sign in with it, as the README says.
	waitFor(t, exit, &stderr, func() bool { return strings.Contains(stderr.String(), "Ctrl-C stops") })
	m := regexp.MustCompile(`admin password: (\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("banner shows no generated admin password:\n%s", stderr.String())
	}
	form := url.Values{"grant_type": {"password"}, "tenant": {"demo"}, "username": {"admin@demo.opsdesk.localhost"}, "password": {m[1]}}
	resp, err := http.PostForm(base+"/v1/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	tokBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.Unmarshal(tokBody, &tok) != nil || tok.TokenType != "Bearer" || tok.AccessToken == "" {
		t.Fatalf("POST /v1/auth/token: %d %s", resp.StatusCode, tokBody)
	}

	body := `{"type":"incident","title":"VPN down in Berlin","description":"Nobody can connect since 9:00",` +
		`"impact":"high","urgency":"high"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/tickets", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/tickets: %d %s", resp.StatusCode, created)
	}
	var ticket struct{ ID, Number, Status, Requester string }
	if err := json.Unmarshal(created, &ticket); err != nil || ticket.Number == "" || ticket.Status != "new" ||
		ticket.Requester != "admin@demo.opsdesk.localhost" {
		t.Fatalf("created ticket %s (%v)", created, err)
	}

	// Read it back by number, waiting for the projection with the
	// consistency token the write returned.
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/tickets/"+ticket.Number, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("X-Consistency-Token", resp.Header.Get("X-Consistency-Token"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), ticket.ID) {
		t.Fatalf("GET /v1/tickets/%s: %d %s", ticket.Number, resp.StatusCode, got)
	}
	// Without a token: 401.
	if resp, err := http.Get(base + "/v1/tickets"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/tickets without a token: %v %v", resp, err)
	}

	// The banner told the user where things are and how durable a write is.
	waitFor(t, exit, &stderr, func() bool { return strings.Contains(stderr.String(), "Ctrl-C stops") })
	out := stderr.String()
	for _, want := range []string{
		"API:            " + base,
		"NATS:           nats://127.0.0.1:",
		"JetStream sync: every 2m0s (a power loss can lose acknowledged events",
		"OPSDESK_NATS_SYNC=always",
		"Postgres:       DATABASE_URL",
		`created tenant "demo" with admin admin@demo.opsdesk.localhost`,
		"curl -s " + base + "/v1/auth/token -d grant_type=password -d tenant=demo",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}

	cancel() // Ctrl-C
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d after shutdown; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s of shutdown")
	}
	if !strings.Contains(stderr.String(), `"msg":"modules stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", stderr.String())
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving HTTP after shutdown")
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{nil, 2, "usage: opsdesk"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"version"}, 0, "opsdesk dev"},
		{[]string{"run", "--http.addr=nonsense"}, 1, "OPSDESK_HTTP_ADDR (-http.addr)"},
		{[]string{"run", "-h"}, 0, "-target"},
		{[]string{"rebuild"}, 2, "intake__tickets_v1"},
		{[]string{"rebuild"}, 2, "identity__directory_v1"},
		{[]string{"rebuild", "nope"}, 2, `unknown projection "nope"`},
		{[]string{"deadletters"}, 2, "want list or replay"},
		{[]string{"deadletters", "replay", "x"}, 2, "not a dead-letter sequence number"},
		{[]string{"healthcheck", "http://127.0.0.1:1/readyz"}, 1, "healthcheck"},
	} {
		var stdout, stderr syncBuffer
		c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
		code := c.main(context.Background(), tc.args)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("opsdesk %q: exit %d, want %d with %q; stdout %q stderr %q",
				tc.args, code, tc.code, tc.out, stdout.String(), stderr.String())
		}
	}
}

// waitFor polls cond until it holds, failing if the binary exits first or
// 30 seconds pass.
func waitFor(t *testing.T, exit <-chan int, stderr *syncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case code := <-exit:
			t.Fatalf("opsdesk exited with %d; stderr:\n%s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 30s; stderr:\n%s", stderr.String())
		}
	}
}

// Against a real cluster (OPSDESK_NATS_URL) the all-in-one conveniences are
// off: no generated secret key (every pod would make its own) and no demo
// tenant. Without OPSDESK_SECRET_KEY the start fails, naming it.
func TestRunAgainstAClusterNeedsASecretKey(t *testing.T) {
	srv := natstest.Start(t)
	_, dbURL := pgtest.NewDB(t)
	env := map[string]string{"DATABASE_URL": dbURL, "OPSDESK_NATS_URL": srv.URL(), "OPSDESK_DATA_DIR": t.TempDir(),
		"OPSDESK_HTTP_ADDR": "127.0.0.1:0", "OPSDESK_SMTP_ADDR": "127.0.0.1:0"}
	var stdout, stderr syncBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code := c.main(ctx, []string{"run"}); code == 0 || !strings.Contains(stderr.String(), "OPSDESK_SECRET_KEY") {
		t.Fatalf("exit %d; want a failure naming OPSDESK_SECRET_KEY:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(env["OPSDESK_DATA_DIR"], "secret.key")); err == nil {
		t.Fatal("a secret key was generated for a cluster deployment")
	}
}
