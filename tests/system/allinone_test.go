package system_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/platform"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/secret"
	"github.com/opsdesk/opsdesk/services/identity"
	"github.com/opsdesk/opsdesk/services/intake"
)

// The bootstrap tenant and admin of every all-in-one stack: an MSP
// provider, which is also the installation's operator tenant.
const (
	providerSlug  = "msp"
	adminEmail    = "admin@msp.example"
	adminPassword = "correct horse battery staple"
)

// stack is the all-in-one binary in-process, built as cmd/opsdesk builds it
// (platform modules, identity and intake as platform services, one
// runtime.Manager): embedded NATS on a free port, a throwaway database,
// HTTP on 127.0.0.1:0. Everything stops at the test's cleanup.
type stack struct {
	t       testing.TB
	baseURL string
	client  *http.Client
	plat    *platform.Platform
	echo    *echo.Echo
	js      jetstream.JetStream
	dbURL   string
	owner   *pgxpool.Pool // the tables' owner: sees past row-level security
	secret  secret.Key    // the installation key (OPSDESK_SECRET_KEY)
	// smtp yields intake's SMTP listener address once it listens;
	// smtpAddr keeps it once read.
	smtp     <-chan string
	smtpAddr string
}

// stackOptions tune one stack.
type stackOptions struct {
	// identity adjusts identity's configuration after the test defaults
	// (cheap argon2id) are applied.
	identity func(*identity.Config)
}

// idle is the stand-in of the platform's telemetry module. The real one
// installs its own global tracer provider, which would replace the
// in-memory one TestMain installed for the whole package (and shut it down
// at the end of each stack); every other module is the binary's own.
type idle struct{}

func (idle) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (idle) Stop(context.Context) error    { return nil }

// startStack starts the all-in-one stack and waits until /readyz answers 200.
func startStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	_, dbURL := pgtest.NewDB(t)
	key := secret.Generate()

	cfg := config.Default()
	cfg.Postgres.URL = dbURL
	cfg.Postgres.MaxConns = 5 // several stacks share one test server
	cfg.NATS.Embedded.Port = -1
	cfg.Runtime.DataDir = t.TempDir()
	cfg.Secrets.Key = key.Encode() // what OPSDESK_SECRET_KEY sets
	cfg.Telemetry.ServiceName = "opsdesk-systemtest"
	cfg.Mail.SMTPAddr = "127.0.0.1:0" // several stacks run at once

	idCfg := identity.DefaultConfig()
	idCfg.PasswordMemoryKiB, idCfg.PasswordIterations = 1024, 1 // cheap hashes: the tests sign in a lot
	idCfg.Replicas, idCfg.DuplicateWindow = cfg.NATS.Replicas, cfg.NATS.DuplicateWindow
	if opts.identity != nil {
		opts.identity(&idCfg)
	}
	inCfg := intake.DefaultConfig()
	inCfg.Replicas, inCfg.DuplicateWindow = cfg.NATS.Replicas, cfg.NATS.DuplicateWindow
	smtpAddr := make(chan string, 1)
	inCfg.OnSMTP = func(addr string) { smtpAddr <- addr }
	boot := identity.Bootstrap{
		Tenant: providerSlug, TenantName: "Managed Services", TenantKind: identityv1.KindProvider,
		AdminEmail: adminEmail, AdminName: "MSP Admin", AdminPassword: adminPassword,
		TimeZone: "UTC", Locale: "en",
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := quietLogger()
	mgr := runtime.NewManager(log)
	plat := platform.New(cfg, log, mgr, platform.Options{
		Listener: ln,
		Config:   map[string]any{"identity": idCfg, "intake": inCfg},
	})
	for _, m := range plat.Modules() { // plat.Register(), but for telemetry (see idle)
		if m.Name == platform.Telemetry {
			m.Init = func(context.Context) (runtime.Service, error) { return idle{}, nil }
		}
		mgr.Register(m)
	}
	mgr.Register(plat.Service("identity", func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
		return identity.New(ctx, idCfg, identity.Options{Bootstrap: boot}, d)
	}))
	mgr.Register(plat.Service("intake", func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
		return intake.New(ctx, inCfg, d)
	}))
	mgr.Register(runtime.Module{Name: config.TargetAll, Deps: []string{"identity", "intake"}})

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- mgr.Run(ctx, []string{config.TargetAll}) }()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 20 * time.Second}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				t.Errorf("all-in-one stack stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("all-in-one stack did not stop within 30s")
		}
	})

	s := &stack{t: t, baseURL: "http://" + ln.Addr().String(), client: client, plat: plat, dbURL: dbURL, secret: key, smtp: smtpAddr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-ran:
			t.Fatalf("all-in-one stack stopped during start-up: %v", err)
		default:
		}
		if resp, err := client.Get(s.baseURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 30s; modules: %v (%v)", mgr.States(), mgr.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := plat.Deps("systemtest")
	s.echo, s.js = d.HTTP, d.JS
	s.owner = pgtest.Owner(t, dbURL)
	return s
}

// header is one extra request header.
type header struct{ name, value string }

// hdr builds headers from name, value pairs.
func hdr(kv ...string) []header {
	out := make([]header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, header{kv[i], kv[i+1]})
	}
	return out
}

// acting is the X-Acting-Tenant header.
func acting(tenant string) []header { return hdr(auth.HeaderActingTenant, tenant) }

// do sends one request; body is nil, a []byte or string sent as is (as
// application/json unless a Content-Type header is given), or a value
// encoded as JSON. token "" sends no Authorization.
func (s *stack) do(method, path, token string, body any, headers ...header) answer {
	s.t.Helper()
	a, err := s.try(method, path, token, body, headers...)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

// try is do returning the transport error.
func (s *stack) try(method, path, token string, body any, headers ...header) (answer, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return answer{}, err
		}
		r = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.baseURL+path, r)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		req.Header.Set(h.name, h.value)
	}
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{duration: time.Since(t0)}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: raw, duration: time.Since(t0)}, err
}

// expect fails the test unless a has status want.
func expect(t testing.TB, a answer, want int, what string) answer {
	t.Helper()
	if a.status != want {
		t.Fatalf("%s: want %d, got %s", what, want, describe(a))
	}
	return a
}

// decode unmarshals a's JSON body, failing the test on error.
func decode[T any](t testing.TB, a answer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("decode %s: %v", describe(a), err)
	}
	return v
}

// tokens is a successful answer of POST /v1/auth/token.
type tokens struct {
	Access    string `json:"access_token"`
	Refresh   string `json:"refresh_token"`
	TokenType string `json:"token_type"`
	ExpiresIn int    `json:"expires_in"`
}

// tokenRequest sends a form-encoded token request.
func (s *stack) tokenRequest(form map[string]string) answer {
	s.t.Helper()
	v := url.Values{}
	for k, x := range form {
		v.Set(k, x)
	}
	return s.do(http.MethodPost, "/v1/auth/token", "", v.Encode(), hdr("Content-Type", "application/x-www-form-urlencoded")...)
}

// signInAnswer is the raw answer of a password grant.
func (s *stack) signInAnswer(tenant, email, password string) answer {
	s.t.Helper()
	return s.tokenRequest(map[string]string{"grant_type": "password", "tenant": tenant, "username": email, "password": password})
}

// signIn signs in with a password, failing the test unless it works.
func (s *stack) signIn(tenant, email, password string) tokens {
	s.t.Helper()
	a := expect(s.t, s.signInAnswer(tenant, email, password), http.StatusOK, "sign in "+email+" in "+tenant)
	tk := decode[tokens](s.t, a)
	if tk.Access == "" || tk.Refresh == "" || tk.TokenType != "Bearer" {
		s.t.Fatalf("sign in %s: incomplete answer %s", email, a.body)
	}
	return tk
}

// refresh presents a refresh token.
func (s *stack) refresh(refreshToken string) answer {
	s.t.Helper()
	return s.tokenRequest(map[string]string{"grant_type": "refresh_token", "refresh_token": refreshToken})
}

// me is GET /v1/me.
type me struct {
	Kind        string   `json:"kind"`
	ID          string   `json:"id"`
	TenantID    string   `json:"tenant_id"`
	HomeTenant  string   `json:"home_tenant_id"`
	Acting      bool     `json:"acting"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
}

func (s *stack) me(token string, headers ...header) me {
	s.t.Helper()
	return decode[me](s.t, expect(s.t, s.do(http.MethodGet, "/v1/me", token, nil, headers...), http.StatusOK, "GET /v1/me"))
}

// createTenant creates a child of the caller's tenant and returns its id.
func (s *stack) createTenant(token, slug string) string {
	s.t.Helper()
	a := expect(s.t, s.do(http.MethodPost, "/v1/tenants", token,
		map[string]string{"slug": slug, "name": "Tenant " + slug, "time_zone": "Europe/Berlin", "locale": "de-DE"}),
		http.StatusCreated, "create tenant "+slug)
	return decode[struct{ ID string }](s.t, a).ID
}

// onboard onboards a user (with a password, unless empty) in the tenant the
// caller acts in and returns its id.
func (s *stack) onboard(token, email, password string, roles []string, headers ...header) string {
	s.t.Helper()
	body := map[string]any{"email": email, "name": "User " + strings.Split(email, "@")[0], "roles": roles}
	if password != "" {
		body["password"] = password
	}
	a := expect(s.t, s.do(http.MethodPost, "/v1/users", token, body, headers...), http.StatusCreated, "onboard "+email)
	return decode[struct{ ID string }](s.t, a).ID
}

// grant lets a provider user act in a client tenant.
func (s *stack) grant(token, user, client, role string) {
	s.t.Helper()
	expect(s.t, s.do(http.MethodPut, "/v1/users/"+user+"/grants/"+client, token, map[string]string{"role": role}),
		http.StatusOK, "grant "+user+" "+role+" in "+client)
}

// createTicket logs a ticket and returns its id and number.
func (s *stack) createTicket(token, title string, headers ...header) ticketBody {
	s.t.Helper()
	a := expect(s.t, s.do(http.MethodPost, "/v1/tickets", token, map[string]string{
		"type": "incident", "title": title, "description": "Raised by the system tests.", "impact": "low", "urgency": "high",
	}, headers...), http.StatusCreated, "create ticket "+title)
	return decode[ticketBody](s.t, a)
}

// signingKey opens identity's current signing key from the database with
// the installation secret, as identity itself does: the honest way to mint
// a token that differs from a real one only where the test says.
func (s *stack) signingKey() auth.Signer {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var kid, sealed string
	err := s.owner.QueryRow(ctx, `SELECT kid, sealed_private FROM identity.signing_keys
		WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1`).Scan(&kid, &sealed)
	if err != nil {
		s.t.Fatalf("signing key: %v", err)
	}
	seed, err := s.secret.Derive("identity/signing-keys").Open(sealed, []byte("identity signing key "+kid))
	if err != nil || len(seed) != ed25519.SeedSize {
		s.t.Fatalf("open signing key %s: %v", kid, err)
	}
	return auth.Signer{KID: kid, Key: ed25519.NewKeyFromSeed(seed)}
}

// claimsOf decodes an access token's claims without verifying it.
func claimsOf(t testing.TB, token string) auth.Claims {
	t.Helper()
	var c auth.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	return c
}

// remint signs the claims of a real access token again with identity's key,
// with iat, nbf and exp moved to the given instants.
func (s *stack) remint(token string, iat, exp time.Time) string {
	s.t.Helper()
	c := claimsOf(s.t, token)
	c.IssuedAt, c.NotBefore, c.ExpiresAt = jwt.NewNumericDate(iat), jwt.NewNumericDate(iat), jwt.NewNumericDate(exp)
	out, err := s.signingKey().Sign(c)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// tamperSignature flips one character in the middle of a JWT's signature.
func tamperSignature(token string) string {
	i := strings.LastIndexByte(token, '.') + 10
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// tamperClaims rewrites a JWT's payload (here: makes the caller an admin of
// the operator tenant) and keeps the original signature.
func tamperClaims(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["roles"] = []string{auth.RoleAdmin}
	m["opr"] = true
	m["exp"] = time.Now().Add(24 * time.Hour).Unix()
	raw, _ = json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// identityEvents reads every event of the IDENTITY stream of the given type.
func (s *stack) identityEvents(t testing.TB, typ string) []es.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := s.js.Stream(ctx, identityv1.Stream)
	if err != nil {
		t.Fatalf("stream %s: %v", identityv1.Stream, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []es.Event
	for got := uint64(0); got < info.State.Msgs; {
		// Asking for exactly what is left, the fetch returns as soon as it
		// has it rather than after its wait.
		batch, err := cons.Fetch(int(min(info.State.Msgs-got, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			e, err := es.DecodeHeaders(m.Subject(), es.Header(m.Headers()), m.Data(), md.Sequence.Stream)
			if err != nil {
				t.Fatalf("decode identity event seq %d: %v", md.Sequence.Stream, err)
			}
			if e.Type == typ {
				out = append(out, e)
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("the %s stream holds %d events, only %d could be read", identityv1.Stream, info.State.Msgs, got)
		}
		got += uint64(n)
	}
	return out
}
