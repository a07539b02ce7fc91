package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/secret"
	"github.com/opsdesk/opsdesk/libs/telemetry/telemetrytest"
	"github.com/opsdesk/opsdesk/libs/testwait"
	"github.com/opsdesk/opsdesk/services/identity"
)

// lockedBuffer collects log lines written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stack is identity alone on real NATS and Postgres, served over real HTTP
// (the Authenticator fetches identity's own JWKS, as in production).
type stack struct {
	url    string
	key    secret.Key
	deps   runtime.Deps
	cfg    identity.Config
	stop   func() // stops identity's background work (its projection)
	js     jetstream.JetStream
	logs   *lockedBuffer
	spans  *tracetest.InMemoryExporter
	client *http.Client
}

const (
	adminEmail    = "admin@acme.example"
	adminPassword = "correct horse battery staple"
)

func newStack(t *testing.T) *stack {
	t.Helper()
	spans := telemetrytest.Spans(t) // before anything takes a tracer
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(prev) })

	ns := natstest.Start(t)
	nc, js := ns.Conn(t)
	pool, _ := pgtest.NewDB(t)
	e := httpx.New(httpx.Config{}, log)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := auth.NewJWKS(t.Context(), srv.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	state := auth.NewState()
	follower := auth.NewFollower(js, state, log)
	a := auth.NewAuthenticator(auth.Config{Keys: keys, State: state, Ready: follower.Ready, OnAPITokenUse: auth.NewUsageReporter(nc).Report})
	key := secret.Generate()
	cfg := identity.DefaultConfig()
	cfg.PasswordMemoryKiB, cfg.PasswordIterations = 1024, 1
	deps := runtime.Deps{Logger: log, NATS: nc, JS: js, DB: pool, HTTP: e, Auth: a, Secret: key}
	svc, err := identity.New(ctx, cfg, identity.Options{Bootstrap: identity.Bootstrap{
		Tenant: "acme", TenantKind: identityv1.KindEnterprise, AdminEmail: adminEmail, AdminPassword: adminPassword,
		AdminName: "Ada Admin", TimeZone: "Europe/Berlin", Locale: "en",
	}}, deps)
	if err != nil {
		t.Fatalf("identity.New: %v", err)
	}
	followCtx, stopFollowing := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	go func() { followed <- follower.Run(followCtx) }()
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(runCtx) }()
	stopSvc := sync.OnceFunc(func() {
		stopRun()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	t.Cleanup(func() {
		stopSvc()
		stopFollowing()
		if err := <-followed; err != nil {
			t.Errorf("follow: %v", err)
		}
	})
	return &stack{url: srv.URL, key: key, deps: deps, cfg: cfg, stop: stopSvc, js: js, logs: logs, spans: spans, client: srv.Client()}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (s *stack) do(t *testing.T, method, path, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (r reply) field(t *testing.T, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	s, _ := m[name].(string)
	return s
}

func (s *stack) signIn(t *testing.T, email, password string) (access, refresh string) {
	t.Helper()
	r := s.do(t, http.MethodPost, "/v1/auth/token", "", url.Values{"grant_type": {"password"}, "tenant": {"acme"},
		"username": {email}, "password": {password}})
	if r.status != http.StatusOK {
		t.Fatalf("sign in %s: %d %s", email, r.status, r.body)
	}
	return r.field(t, "access_token"), r.field(t, "refresh_token")
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, what, cond)
}

// TestNoSecretInLogsTracesOrErrors runs every flow that handles a secret
// (sign-in right and wrong, refresh, reuse of a spent refresh token, an
// admin setting a password, onboarding with one, API tokens, password
// reset, sign-out) with logs at debug level and every span recorded, and
// then looks for each secret in the logs, in every span's attributes,
// events and status, and in every error answer.
func TestNoSecretInLogsTracesOrErrors(t *testing.T) {
	s := newStack(t)
	var answers []reply
	keep := func(r reply) reply {
		answers = append(answers, r)
		return r
	}
	secrets := map[string]string{"admin password": adminPassword}

	access, refresh := s.signIn(t, adminEmail, adminPassword)
	secrets["access token"], secrets["refresh token"] = access, refresh
	keep(s.do(t, http.MethodPost, "/v1/auth/token", "", url.Values{"grant_type": {"password"}, "tenant": {"acme"},
		"username": {adminEmail}, "password": {"wrong " + adminPassword}}))
	secrets["wrong password"] = "wrong " + adminPassword
	keep(s.do(t, http.MethodPost, "/v1/auth/token", "", url.Values{"grant_type": {"password"}, "tenant": {"acme"},
		"username": {"nobody@acme.example"}, "password": {adminPassword}}))

	// Refresh, then present the spent token again (reuse: the session dies).
	r := keep(s.do(t, http.MethodPost, "/v1/auth/token", "", map[string]string{"grant_type": "refresh_token", "refresh_token": refresh}))
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	secrets["second refresh token"], secrets["second access token"] = r.field(t, "refresh_token"), r.field(t, "access_token")
	if r := keep(s.do(t, http.MethodPost, "/v1/auth/token", "", map[string]string{"grant_type": "refresh_token", "refresh_token": refresh})); r.status != http.StatusUnauthorized {
		t.Fatalf("reused refresh token: %d %s", r.status, r.body)
	}
	access, _ = s.signIn(t, adminEmail, adminPassword)
	secrets["third access token"] = access

	// Onboard with a password; an admin sets another; a weak one is refused.
	const userPassword = "a rather long user passphrase"
	secrets["user password"] = userPassword
	r = keep(s.do(t, http.MethodPost, "/v1/users", access, map[string]any{"email": "grace@acme.example", "name": "Grace",
		"roles": []string{"agent"}, "password": userPassword}))
	if r.status != http.StatusCreated {
		t.Fatalf("onboard: %d %s", r.status, r.body)
	}
	user := r.field(t, "id")
	const setPassword = "set by an admin, long enough"
	secrets["admin-set password"] = setPassword
	if r := keep(s.do(t, http.MethodPut, "/v1/users/"+user+"/password", access, map[string]string{"password": setPassword})); r.status != http.StatusNoContent {
		t.Fatalf("set password: %d %s", r.status, r.body)
	}
	secrets["weak password"] = "short-pw"
	keep(s.do(t, http.MethodPut, "/v1/users/"+user+"/password", access, map[string]string{"password": "short-pw"}))

	// An API token: created, used, shown in lists without its secret.
	r = keep(s.do(t, http.MethodPost, "/v1/api-tokens", access, map[string]any{"name": "Monitoring", "scopes": []string{"tickets:create"}}))
	if r.status != http.StatusCreated {
		t.Fatalf("api token: %d %s", r.status, r.body)
	}
	apiToken := r.field(t, "token")
	secrets["API token"] = apiToken
	secrets["API token hash"] = auth.HashSecret(apiToken)
	eventually(t, "the API token to verify", func() bool {
		return s.do(t, http.MethodGet, "/v1/me", apiToken, nil).status == http.StatusOK
	})
	if r := keep(s.do(t, http.MethodGet, "/v1/api-tokens", access, nil)); r.status != http.StatusOK || strings.Contains(string(r.body), apiToken) {
		t.Fatalf("API token list: %d %s", r.status, r.body)
	}
	keep(s.do(t, http.MethodGet, "/v1/me", apiToken+"x", nil))

	// Password reset: the token travels sealed, and is used once.
	if r := keep(s.do(t, http.MethodPost, "/v1/auth/password-reset", "", map[string]string{"tenant": "acme", "email": "grace@acme.example"})); r.status != http.StatusAccepted {
		t.Fatalf("reset request: %d %s", r.status, r.body)
	}
	resetToken := s.resetToken(t)
	secrets["reset token"] = resetToken
	const resetPassword = "chosen after a reset, long"
	secrets["reset password"] = resetPassword
	if r := keep(s.do(t, http.MethodPost, "/v1/auth/password-reset/complete", "", map[string]string{"token": resetToken, "password": resetPassword})); r.status != http.StatusNoContent {
		t.Fatalf("reset complete: %d %s", r.status, r.body)
	}
	keep(s.do(t, http.MethodPost, "/v1/auth/password-reset/complete", "", map[string]string{"token": resetToken, "password": resetPassword}))
	keep(s.do(t, http.MethodPost, "/v1/auth/logout", access, nil))

	// Look everywhere.
	logs := s.logs.String()
	var spanText strings.Builder
	for _, sp := range s.spans.GetSpans() {
		fmt.Fprintf(&spanText, "%s %v %v %v\n", sp.Name, sp.Attributes, sp.Events, sp.Status)
	}
	for what, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("the logs show the %s", what)
		}
		if strings.Contains(spanText.String(), v) {
			t.Errorf("a span shows the %s", what)
		}
		for _, a := range answers {
			if a.status >= 400 && strings.Contains(string(a.body)+fmt.Sprint(a.header), v) {
				t.Errorf("an error answer (%d) shows the %s: %s", a.status, what, a.body)
			}
		}
	}
	if len(s.spans.GetSpans()) < 20 || !strings.Contains(logs, `"msg":"http request"`) {
		t.Fatalf("too little was recorded to mean anything: %d spans, logs %.300s", len(s.spans.GetSpans()), logs)
	}
}

// resetToken reads the latest password_reset_requested event and opens its
// sealed token, as the notifications service will.
func (s *stack) resetToken(t *testing.T) string {
	t.Helper()
	var ev identityv1.PasswordResetRequested
	eventually(t, "the password reset event", func() bool {
		str, err := s.js.Stream(context.Background(), identityv1.Stream)
		if err != nil {
			return false
		}
		info, err := str.Info(context.Background())
		if err != nil {
			return false
		}
		for seq := info.State.LastSeq; seq > 0 && seq+50 > info.State.LastSeq; seq-- {
			m, err := str.GetMsg(context.Background(), seq)
			if err == nil && m.Header.Get("ce-type") == identityv1.TypePasswordResetRequested {
				return json.Unmarshal(m.Data, &ev) == nil
			}
		}
		return false
	})
	token, err := s.key.Derive(identity.ResetPurpose).Open(ev.SealedToken, []byte(ev.ResetID))
	if err != nil {
		t.Fatalf("open the sealed reset token: %v", err)
	}
	return string(token)
}

// TestRebuildKeepsTheStateTables: `opsdesk rebuild identity__directory_v1`
// empties the read model and replays the stream; the state tables (password
// hashes, sessions) are kept, so people still sign in.
func TestRebuildKeepsTheStateTables(t *testing.T) {
	s := newStack(t)
	access, _ := s.signIn(t, adminEmail, adminPassword)
	r := s.do(t, http.MethodPost, "/v1/users", access, map[string]any{"email": "grace@acme.example", "name": "Grace",
		"roles": []string{"agent"}, "password": "a rather long user passphrase"})
	if r.status != http.StatusCreated {
		t.Fatalf("onboard: %d %s", r.status, r.body)
	}
	s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := identity.Rebuild(ctx, s.cfg, s.deps); err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	var page struct{ Items []struct{ Email string } }
	if r := s.do(t, http.MethodGet, "/v1/users", access, nil); r.status != http.StatusOK || json.Unmarshal(r.body, &page) != nil || len(page.Items) != 2 {
		t.Fatalf("users after rebuild: %d %s", r.status, r.body)
	}
	s.signIn(t, "grace@acme.example", "a rather long user passphrase")
}
