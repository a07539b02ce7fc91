package auth_test

import (
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
)

const specHeader = `openapi: 3.0.3
info:
  title: test
  version: "1"
paths:
`

const validSpec = specHeader + `
  /v1/tickets:
    post:
      operationId: createTicket
      x-permission: tickets:create
      responses:
        "201": {description: created}
    get:
      operationId: listTickets
      x-permission: tickets:read
      responses:
        "200": {description: ok}
  /v1/tickets/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: getTicket
      x-permission: tickets:read
      responses:
        "200": {description: ok}
  /v1/token:
    post:
      operationId: issueToken
      x-permission: public
      responses:
        "200": {description: ok}
  /v1/me:
    get:
      operationId: getMe
      x-permission: authenticated
      responses:
        "200": {description: ok}
  /v1/admin/dead-letters:
    get:
      operationId: listDeadLetters
      x-permission: platform:operate
      responses:
        "200": {description: ok}
`

func TestSpecPermissions(t *testing.T) {
	t.Parallel()
	ops, err := auth.SpecPermissions([]byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	want := []auth.Operation{
		{Method: http.MethodGet, Path: "/v1/admin/dead-letters", OperationID: "listDeadLetters", Permission: auth.PermPlatformOperate},
		{Method: http.MethodGet, Path: "/v1/me", OperationID: "getMe", Permission: auth.PermAuthenticated},
		{Method: http.MethodGet, Path: "/v1/tickets", OperationID: "listTickets", Permission: auth.PermTicketsRead},
		{Method: http.MethodPost, Path: "/v1/tickets", OperationID: "createTicket", Permission: auth.PermTicketsCreate},
		{Method: http.MethodGet, Path: "/v1/tickets/{id}", OperationID: "getTicket", Permission: auth.PermTicketsRead},
		{Method: http.MethodPost, Path: "/v1/token", OperationID: "issueToken", Permission: auth.PermPublic},
	}
	if !slices.Equal(ops, want) {
		t.Errorf("SpecPermissions =\n%v\nwant\n%v", ops, want)
	}

	empty, err := auth.SpecPermissions([]byte(specHeader + "  {}\n"))
	if err != nil || len(empty) != 0 {
		t.Errorf("no paths: %v, %v", empty, err)
	}
}

func TestSpecPermissionsErrors(t *testing.T) {
	t.Parallel()
	op := func(path, method, body string) string {
		return "  " + path + ":\n    " + method + ":\n" + body + "      responses:\n        \"200\": {description: ok}\n"
	}
	for _, tc := range []struct {
		name string
		spec string
		want []string // each must appear in the error
	}{
		{"missing x-permission", specHeader +
			op("/v1/tickets", "get", "      operationId: listTickets\n") +
			op("/v1/me", "get", "      operationId: getMe\n      x-permission: authenticated\n"),
			[]string{"GET /v1/tickets", "listTickets", "x-permission"}},
		{"unknown permission", specHeader +
			op("/v1/tickets", "post", "      operationId: createTicket\n      x-permission: tickets:write\n"),
			[]string{"POST /v1/tickets", "createTicket", `"tickets:write"`}},
		{"empty permission", specHeader +
			op("/v1/tickets", "post", "      operationId: createTicket\n      x-permission: \"\"\n"),
			[]string{"createTicket"}},
		{"permission not a string", specHeader +
			op("/v1/tickets", "post", "      operationId: createTicket\n      x-permission: [tickets:create]\n"),
			[]string{"createTicket", "x-permission"}},
		{"role instead of permission", specHeader +
			op("/v1/users", "get", "      operationId: listUsers\n      x-permission: admin\n"),
			[]string{"listUsers", `"admin"`}},
		{"missing operationId", specHeader +
			op("/v1/tickets/{id}", "delete", "      x-permission: tickets:create\n"),
			[]string{"DELETE /v1/tickets/{id}", "operationId"}},
		{"duplicate operationId", specHeader +
			op("/v1/tickets", "get", "      operationId: tickets\n      x-permission: public\n") +
			op("/v1/admin/tickets", "get", "      operationId: tickets\n      x-permission: platform:operate\n"),
			[]string{"tickets", "/v1/tickets", "/v1/admin/tickets"}},
		{"several at once", specHeader +
			op("/v1/a", "get", "      operationId: a\n") +
			op("/v1/b", "get", "      operationId: b\n      x-permission: nope\n"),
			[]string{"GET /v1/a (a)", "GET /v1/b (b)", `"nope"`}},
		{"not YAML", "{{{", []string{"openapi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ops, err := auth.SpecPermissions([]byte(tc.spec))
			if err == nil {
				t.Fatalf("no error; operations %v", ops)
			}
			if ops != nil {
				t.Errorf("operations %v returned with an error", ops)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			iss := authtest.New(t)
			if r, err := iss.Authenticator().SpecRouter(echo.New(), []byte(tc.spec), nil); err == nil || r != nil {
				t.Errorf("SpecRouter = %v, %v; want the same error", r, err)
			}
		})
	}
}

func TestAllPermissionsKnown(t *testing.T) {
	t.Parallel()
	for _, role := range auth.Roles {
		if !auth.ValidRole(role) {
			t.Errorf("ValidRole(%s) = false", role)
		}
		perms := auth.RolePermissions(role)
		if len(perms) == 0 {
			t.Errorf("role %s has no permissions", role)
		}
		for _, p := range perms {
			if !slices.Contains(auth.AllPermissions, p) {
				t.Errorf("role %s has %s, not in AllPermissions", role, p)
			}
		}
		// The copy is the caller's.
		perms[0] = "mutated"
		if auth.RolePermissions(role)[0] == "mutated" {
			t.Errorf("RolePermissions(%s) shares its slice", role)
		}
	}
	// Each role has the permissions of the roles before it.
	for i := 1; i < len(auth.Roles); i++ {
		for _, p := range auth.RolePermissions(auth.Roles[i-1]) {
			if !slices.Contains(auth.RolePermissions(auth.Roles[i]), p) {
				t.Errorf("%s lacks %s of %s", auth.Roles[i], p, auth.Roles[i-1])
			}
		}
	}
	if auth.ValidRole("root") || auth.RolePermissions("root") != nil {
		t.Error("unknown role accepted")
	}
	for _, s := range auth.Scopes {
		if !auth.ValidScope(string(s)) || !slices.Contains(auth.AllPermissions, s) {
			t.Errorf("scope %s invalid or unknown", s)
		}
	}
	for _, s := range []auth.Permission{auth.PermUsersManage, auth.PermTokensManage, auth.PermTenantsManage, auth.PermPlatformOperate, auth.PermPublic, auth.PermAuthenticated, "tickets:write"} {
		if auth.ValidScope(string(s)) {
			t.Errorf("ValidScope(%s) = true; managing and operating need a person", s)
		}
	}
}

func TestSpecRouter(t *testing.T) {
	t.Parallel()
	iss := authtest.New(t)
	a := iss.Authenticator()
	var extraRan, extraSawPrincipal atomic.Int32
	extra := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			extraRan.Add(1)
			if _, ok := auth.FromContext(c.Request().Context()); ok {
				extraSawPrincipal.Add(1)
			}
			return next(c)
		}
	}
	ops, err := auth.SpecPermissions([]byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	e := permissionServer(a, quietLogger()) // only for its error handler
	r, err := a.SpecRouter(e, []byte(validSpec), []string{"GET /v1/tickets/{id}"}, extra)
	if err != nil {
		t.Fatal(err)
	}
	// A route the document does not declare is refused, and operations left
	// unmounted are reported.
	r.GET("/never", nil)
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "GET /never") || !strings.Contains(err.Error(), "was not mounted") {
		t.Fatalf("Check after a partial mount = %v; want the refused route and the missing operations", err)
	}

	e = permissionServer(a, quietLogger())
	if r, err = a.SpecRouter(e, []byte(validSpec), []string{"GET /v1/tickets/{id}"}, extra); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		h := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
		switch op.Method {
		case http.MethodGet:
			r.GET(auth.EchoPath(op.Path), h)
		case http.MethodPost:
			r.POST(auth.EchoPath(op.Path), h)
		default:
			t.Fatalf("test spec uses %s", op.Method)
		}
	}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SpecRouter(e, []byte(validSpec), []string{"PUT /v1/nothing"}); err == nil {
		t.Fatal("SpecRouter accepted a raw route the document does not declare")
	}

	tenant := authtest.NewTenantID()
	requester := bearer(iss.Token(t, authtest.User{Tenant: tenant, Roles: []string{auth.RoleRequester}}))
	operator := bearer(iss.Token(t, authtest.User{Tenant: tenant, Roles: []string{auth.RoleAdmin}, Operator: true}))
	for _, tc := range []struct {
		method, path, authorization string
		status                      int
	}{
		{http.MethodPost, "/v1/token", "", http.StatusNoContent},
		{http.MethodGet, "/v1/me", "", http.StatusUnauthorized},
		{http.MethodGet, "/v1/me", requester, http.StatusNoContent},
		{http.MethodGet, "/v1/tickets", "", http.StatusUnauthorized},
		{http.MethodGet, "/v1/tickets", requester, http.StatusNoContent},
		{http.MethodPost, "/v1/tickets", requester, http.StatusNoContent},
		{http.MethodGet, "/v1/tickets/tk_1", requester, http.StatusNoContent},
		{http.MethodGet, "/v1/admin/dead-letters", requester, http.StatusForbidden},
		{http.MethodGet, "/v1/admin/dead-letters", operator, http.StatusNoContent},
	} {
		if w := serve(e, tc.method, tc.path, tc.authorization, ""); w.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, w.Code, tc.status)
		}
	}
	// The extra middleware ran after Require for the routes answered 204
	// but GET /v1/tickets/tk_1 (raw), and saw the principal on every one
	// but the public route.
	if got := extraRan.Load(); got != 5 {
		t.Errorf("extra middleware ran %d times, want 5 (never for refused or raw routes)", got)
	}
	if got := extraSawPrincipal.Load(); got != 4 {
		t.Errorf("extra middleware saw a principal %d times, want 4", got)
	}
}
