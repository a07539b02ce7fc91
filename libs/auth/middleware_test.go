package auth_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/httpx"
)

// seen is what a handler behind Require saw of the principal.
type seen struct {
	Found  bool   `json:"found"`
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Acting bool   `json:"acting"`
}

// permissionServer is an Echo from httpx.New with one route per
// permission, GET permPath(permission), each answering what FromContext found.
func permissionServer(a *auth.Authenticator, log *slog.Logger) *echo.Echo {
	e := httpx.New(httpx.Config{}, log)
	for _, perm := range auth.AllPermissions {
		e.GET(permPath(perm), func(c echo.Context) error {
			p, ok := auth.FromContext(c.Request().Context())
			return c.JSON(http.StatusOK, seen{Found: ok, ID: p.ID, Tenant: p.Tenant, Acting: p.Acting})
		}, a.Require(perm))
	}
	return e
}

// permPath is the route of perm; a colon would start an Echo path
// parameter.
func permPath(perm auth.Permission) string { return "/p/" + strings.ReplaceAll(string(perm), ":", "-") }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func serve(e *echo.Echo, method, path, authorization, acting string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if acting != "" {
		r.Header.Set(auth.HeaderActingTenant, acting)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

func TestRequire(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	e := permissionServer(iss.Authenticator(), quietLogger())
	home, client, other := authtest.NewTenantID(), authtest.NewTenantID(), authtest.NewTenantID()
	requester := iss.Token(t, authtest.User{Tenant: home, Roles: []string{auth.RoleRequester}})
	admin := iss.Token(t, authtest.User{Tenant: home, Roles: []string{auth.RoleAdmin}, Grants: map[string]string{client: auth.RoleAgent}})
	expired := iss.Token(t, authtest.User{Tenant: home, Roles: []string{auth.RoleAdmin}, IssuedAt: timeAgo(2)})
	tokID, apiTok := auth.NewAPIToken(newAPITokenULID())
	newFeed(t, iss.State).apiTokenCreated(home, tokID, apiTok, zeroTime, "tickets:read")
	tampered := segment(admin, 1, func(s string) string { return flip(s, len(s)/2) })

	for _, tc := range []struct {
		name          string
		perm          auth.Permission
		authorization string
		acting        string
		status        int
		field         string // the problem's field error, if any
		wantTenant    string
		wantActing    bool
	}{
		{"public without token", auth.PermPublic, "", "", http.StatusOK, "", "", false},
		{"public with garbage token", auth.PermPublic, "Bearer garbage", "", http.StatusOK, "", "", false},
		{"no token", auth.PermTicketsRead, "", "", http.StatusUnauthorized, "", "", false},
		{"authenticated without token", auth.PermAuthenticated, "", "", http.StatusUnauthorized, "", "", false},
		{"basic", auth.PermTicketsRead, "Basic dXNlcjpwYXNz", "", http.StatusUnauthorized, "", "", false},
		{"garbage", auth.PermTicketsRead, "Bearer garbage", "", http.StatusUnauthorized, "", "", false},
		{"expired", auth.PermTicketsRead, bearer(expired), "", http.StatusUnauthorized, "", "", false},
		{"tampered", auth.PermTicketsRead, bearer(tampered), "", http.StatusUnauthorized, "", "", false},
		{"wrong API token secret", auth.PermTicketsRead, bearer(flip(apiTok, len(apiTok)-5)), "", http.StatusUnauthorized, "", "", false},
		{"requester lacks read_all", auth.PermTicketsReadAll, bearer(requester), "", http.StatusForbidden, "", "", false},
		{"requester lacks users:manage", auth.PermUsersManage, bearer(requester), "", http.StatusForbidden, "", "", false},
		{"admin lacks platform:operate", auth.PermPlatformOperate, bearer(admin), "", http.StatusForbidden, "", "", false},
		{"acting agent lacks users:manage", auth.PermUsersManage, bearer(admin), client, http.StatusForbidden, "", "", false},
		{"API token lacks scope", auth.PermTicketsCreate, bearer(apiTok), "", http.StatusForbidden, "", "", false},
		{"acting tenant not granted", auth.PermTicketsRead, bearer(admin), other, http.StatusNotFound, "header." + auth.HeaderActingTenant, "", false},
		{"API token acting elsewhere", auth.PermTicketsRead, bearer(apiTok), other, http.StatusNotFound, "header." + auth.HeaderActingTenant, "", false},
		{"requester", auth.PermTicketsRead, bearer(requester), "", http.StatusOK, "", home, false},
		{"requester authenticated", auth.PermAuthenticated, bearer(requester), "", http.StatusOK, "", home, false},
		{"admin", auth.PermUsersManage, bearer(admin), "", http.StatusOK, "", home, false},
		{"acting agent", auth.PermTicketsReadAll, bearer(admin), client, http.StatusOK, "", client, true},
		{"API token in scope", auth.PermTicketsRead, bearer(apiTok), "", http.StatusOK, "", home, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := serve(e, http.MethodGet, permPath(tc.perm), tc.authorization, tc.acting)
			body := w.Body.String()
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, body)
			}
			for _, secret := range []string{requester, admin, expired, tampered, apiTok, apiTok[len(auth.APITokenPrefix)+27:], strings.Split(admin, ".")[2]} {
				if strings.Contains(body, secret) || strings.Contains(w.Header().Get("WWW-Authenticate"), secret) {
					t.Fatalf("answer holds a credential: %s", body)
				}
			}
			if tc.status == http.StatusOK {
				var s seen
				if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
					t.Fatal(err)
				}
				if tc.perm == auth.PermPublic {
					if s.Found {
						t.Errorf("public route saw a principal: %+v", s)
					}
					return
				}
				if !s.Found || s.ID == "" || s.Tenant != tc.wantTenant || s.Acting != tc.wantActing {
					t.Errorf("handler saw %+v, want tenant %s acting %v", s, tc.wantTenant, tc.wantActing)
				}
				return
			}
			p := decodeProblem(t, w, tc.status)
			switch tc.status {
			case http.StatusUnauthorized:
				if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") {
					t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", h)
				} else if wantErr := strings.HasPrefix(tc.authorization, "Bearer "); strings.Contains(h, `error="invalid_token"`) != wantErr {
					t.Errorf("WWW-Authenticate = %q: error=invalid_token should be there only when a bearer token was sent (RFC 6750 3.1)", h)
				}
			default:
				if h := w.Header().Get("WWW-Authenticate"); h != "" {
					t.Errorf("WWW-Authenticate = %q on a %d", h, tc.status)
				}
			}
			if tc.field != "" {
				if len(p.Errors) != 1 || p.Errors[0].Field != tc.field {
					t.Errorf("problem errors = %+v, want one naming %s", p.Errors, tc.field)
				}
			}
		})
	}
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder, status int) httpx.Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, httpx.MIMEProblemJSON) {
		t.Errorf("Content-Type = %q, want %s", ct, httpx.MIMEProblemJSON)
	}
	var p httpx.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Status != status || p.Title == "" || p.Detail == "" || p.Instance == "" {
		t.Errorf("problem = %+v, want status %d with title, detail and instance", p, status)
	}
	return p
}

func TestRequireNotReady(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := auth.NewAuthenticator(auth.Config{
		Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public}),
		State: iss.State,
		Ready: func() error { return errors.New("identity events not caught up") },
	})
	e := permissionServer(a, quietLogger())
	tok := iss.Token(t, authtest.User{Tenant: authtest.NewTenantID(), Roles: []string{auth.RoleAdmin}})
	for _, h := range []string{bearer(tok), ""} {
		w := serve(e, http.MethodGet, permPath(auth.PermTicketsRead), h, "")
		if w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", w.Code)
		}
		if ra := w.Header().Get("Retry-After"); ra == "" {
			t.Error("503 without Retry-After")
		}
		decodeProblem(t, w, http.StatusServiceUnavailable)
		if strings.Contains(w.Body.String(), "caught up") || strings.Contains(w.Body.String(), tok) {
			t.Errorf("503 body leaks internals: %s", w.Body)
		}
	}
	// Public routes do not wait for the verifier.
	if w := serve(e, http.MethodGet, permPath(auth.PermPublic), "", ""); w.Code != http.StatusOK {
		t.Errorf("public route while not ready: %d", w.Code)
	}
}

// syncBuffer is a log sink safe for concurrent writers.
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

// TestRequireLogsNoCredential swaps the default logger (the refusal is
// logged there at debug level), so it must not run in parallel.
func TestRequireLogsNoCredential(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(prev) })

	iss := authtest.New(t)
	e := permissionServer(iss.Authenticator(), log)
	home := authtest.NewTenantID()
	tokID, apiTok := auth.NewAPIToken(newAPITokenULID())
	f := newFeed(t, iss.State)
	f.apiTokenCreated(home, tokID, apiTok, zeroTime, "tickets:read")
	f.apply(home, tokID, identityv1.TypeAPITokenRevoked, identityv1.APITokenRevoked{TokenID: tokID})
	jwtTok := iss.Token(t, authtest.User{Tenant: home, Roles: []string{auth.RoleRequester}, IssuedAt: timeAgo(2)})
	for _, h := range []string{bearer(apiTok), bearer(jwtTok), bearer(segment(jwtTok, 2, func(s string) string { return flip(s, 3) }))} {
		if w := serve(e, http.MethodGet, permPath(auth.PermTicketsRead), h, ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", w.Code)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "request refused") {
		t.Fatalf("no refusal logged at debug level:\n%s", out)
	}
	for _, secret := range []string{apiTok[len(auth.APITokenPrefix)+27:], strings.Split(jwtTok, ".")[2], strings.Split(jwtTok, ".")[1]} {
		if strings.Contains(out, secret) {
			t.Errorf("logs hold a credential:\n%s", out)
		}
	}
}

func TestRequireHead(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	e := httpx.New(httpx.Config{}, quietLogger())
	e.HEAD("/x", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, a.Require(auth.PermTicketsRead))
	w := serve(e, http.MethodHead, "/x", "", "")
	if w.Code != http.StatusUnauthorized || w.Body.Len() != 0 || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("HEAD without token: %d, body %q, WWW-Authenticate %q", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
}

func TestFromContext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if _, ok := auth.FromContext(ctx); ok {
		t.Error("FromContext of an empty context: ok")
	}
	if _, ok := auth.FromContext(auth.WithPrincipal(ctx, auth.Principal{})); ok {
		t.Error("FromContext of a zero Principal: ok")
	}
	want := auth.Principal{Kind: auth.KindUser, ID: "u_1", Tenant: "t_1"}
	if p, ok := auth.FromContext(auth.WithPrincipal(ctx, want)); !ok || !principalEqual(p, want) {
		t.Errorf("FromContext = %+v, %v", p, ok)
	}
}
