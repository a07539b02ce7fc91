package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

// ExtensionPermission is the OpenAPI operation extension naming the
// permission a route requires: x-permission: tickets:create, or public.
const ExtensionPermission = "x-permission"

// Require returns middleware that authenticates the request and checks
// perm, putting the Principal into the request's context. Failures are
// problem+json: 401 (with WWW-Authenticate), 404 for an acting tenant not
// granted, 403 for a missing permission, 503 before the verifier is ready.
func (a *Authenticator) Require(perm Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if perm == PermPublic {
				return next(c)
			}
			req := c.Request()
			p, err := a.Authenticate(req)
			if err != nil {
				return a.refuse(c, err)
			}
			if !p.Can(perm) {
				return a.refuse(c, fmt.Errorf("%w: %s lacks %s", ErrForbidden, p.ID, perm))
			}
			ctx := WithPrincipal(req.Context(), p)
			trace.SpanFromContext(ctx).SetAttributes(
				attribute.String("enduser.id", p.ID),
				attribute.String("opsdesk.tenant", p.Tenant),
			)
			c.SetRequest(req.WithContext(ctx))
			return next(c)
		}
	}
}

// refuse answers an authentication or authorization failure. The reason
// goes to the debug log (it never holds the credential), not to the client.
func (a *Authenticator) refuse(c echo.Context, err error) error {
	ctx := c.Request().Context()
	slog.DebugContext(ctx, "request refused", "err", err, "path", c.Request().URL.Path)
	switch {
	case errors.Is(err, ErrUnavailable):
		return httpx.NewProblem(http.StatusServiceUnavailable, "Authentication not ready",
			"The service is still loading identity data; retry shortly.")
	case errors.Is(err, ErrNoSuchTenant):
		return httpx.NewProblem(http.StatusNotFound, "Tenant not found",
			"There is no tenant named in "+HeaderActingTenant+" that you may act in.",
			httpx.FieldError{Field: "header." + HeaderActingTenant, Message: "is not a tenant you were granted"})
	case errors.Is(err, ErrForbidden):
		return httpx.NewProblem(http.StatusForbidden, "Permission denied",
			"Your role in this tenant does not allow this request.")
	}
	// RFC 6750 3.1: a request that sent no bearer token gets the bare
	// challenge; error="invalid_token" is for one that sent a bad token.
	challenge := `Bearer realm="opsdesk"`
	if _, err := bearer(c.Request().Header.Get("Authorization")); err == nil {
		challenge += `, error="invalid_token"`
	}
	c.Response().Header().Set("WWW-Authenticate", challenge)
	return httpx.NewProblem(http.StatusUnauthorized, "Not authenticated",
		"Send a valid access token or API token: Authorization: Bearer <token>.")
}

// SpecRouter mounts the routes of one OpenAPI document on an Echo: each
// behind the permission its operation declares (x-permission), then extra
// middleware (e.g. request validation). Pass it to the generated
// RegisterHandlers as the router. Routes are matched to operations by method
// and path, not by operationId, which code generators rename. A route the
// document does not declare is refused, not mounted, and reported by Check.
type SpecRouter struct {
	e       *echo.Echo
	a       *Authenticator
	extra   []echo.MiddlewareFunc
	perms   map[string]Permission // "POST /v1/tickets/:id" -> permission
	raw     map[string]bool       // routes mounted without extra
	mounted map[string]bool
	errs    []error
}

// SpecRouter returns a SpecRouter for spec. Routes named in raw ("POST
// /v1/auth/token", OpenAPI path form) skip the extra middleware.
func (a *Authenticator) SpecRouter(e *echo.Echo, spec []byte, raw []string, extra ...echo.MiddlewareFunc) (*SpecRouter, error) {
	ops, err := SpecPermissions(spec)
	if err != nil {
		return nil, err
	}
	r := &SpecRouter{e: e, a: a, extra: extra, perms: map[string]Permission{}, raw: map[string]bool{}, mounted: map[string]bool{}}
	for _, op := range ops {
		r.perms[routeKey(op.Method, EchoPath(op.Path))] = op.Permission
	}
	for _, k := range raw {
		method, path, _ := strings.Cut(k, " ")
		key := routeKey(method, EchoPath(path))
		if _, ok := r.perms[key]; !ok {
			return nil, fmt.Errorf("auth: %s is not an operation of the document", k)
		}
		r.raw[key] = true
	}
	return r, nil
}

// EchoPath turns an OpenAPI path (/v1/tickets/{id}) into Echo's form
// (/v1/tickets/:id).
func EchoPath(openapi string) string { return strings.NewReplacer("{", ":", "}", "").Replace(openapi) }

func routeKey(method, path string) string { return strings.ToUpper(method) + " " + path }

func (r *SpecRouter) add(method, path string, h echo.HandlerFunc, m []echo.MiddlewareFunc) *echo.Route {
	key := routeKey(method, path)
	perm, ok := r.perms[key]
	if !ok {
		r.errs = append(r.errs, fmt.Errorf("auth: route %s has no operation with %s in the document", key, ExtensionPermission))
		return &echo.Route{Method: method, Path: path}
	}
	r.mounted[key] = true
	chain := []echo.MiddlewareFunc{r.a.Require(perm)}
	if !r.raw[key] {
		chain = append(chain, r.extra...)
	}
	return r.e.Add(method, path, h, append(chain, m...)...)
}

// Check reports routes that were refused and operations never mounted.
func (r *SpecRouter) Check() error {
	errs := append([]error(nil), r.errs...)
	for key := range r.perms {
		if !r.mounted[key] {
			errs = append(errs, fmt.Errorf("auth: operation %s was not mounted", key))
		}
	}
	return errors.Join(errs...)
}

// The methods of the generated code's EchoRouter interface.

func (r *SpecRouter) CONNECT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodConnect, p, h, m)
}
func (r *SpecRouter) DELETE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodDelete, p, h, m)
}
func (r *SpecRouter) GET(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodGet, p, h, m)
}
func (r *SpecRouter) HEAD(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodHead, p, h, m)
}
func (r *SpecRouter) OPTIONS(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodOptions, p, h, m)
}
func (r *SpecRouter) PATCH(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPatch, p, h, m)
}
func (r *SpecRouter) POST(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPost, p, h, m)
}
func (r *SpecRouter) PUT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPut, p, h, m)
}
func (r *SpecRouter) TRACE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodTrace, p, h, m)
}

// Operation is one route of an OpenAPI document and its permission.
type Operation struct {
	Method      string
	Path        string // OpenAPI form: /v1/tickets/{id}
	OperationID string
	Permission  Permission
}

// SpecPermissions lists the operations of an OpenAPI document with their
// x-permission, checking that each names a known permission.
func SpecPermissions(spec []byte) ([]Operation, error) {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("auth: openapi: %w", err)
	}
	var out []Operation
	var errs []error
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			raw, ok := op.Extensions[ExtensionPermission]
			perm, isString := raw.(string)
			switch {
			case op.OperationID == "":
				errs = append(errs, fmt.Errorf("%s %s has no operationId", method, path))
			case !ok || !isString:
				errs = append(errs, fmt.Errorf("%s %s (%s) has no %s", method, path, op.OperationID, ExtensionPermission))
			case !knownPermission(Permission(perm)):
				errs = append(errs, fmt.Errorf("%s %s (%s): unknown %s %q", method, path, op.OperationID, ExtensionPermission, perm))
			default:
				out = append(out, Operation{Method: method, Path: path, OperationID: op.OperationID, Permission: Permission(perm)})
			}
		}
	}
	slices.SortFunc(out, func(x, y Operation) int { return strings.Compare(x.Path+" "+x.Method, y.Path+" "+y.Method) })
	// OperationMiddlewares is keyed by operationId: a duplicate would mount
	// one route with the other's permission.
	first := make(map[string]Operation, len(out))
	for _, op := range out {
		if prev, dup := first[op.OperationID]; dup {
			errs = append(errs, fmt.Errorf("%s %s and %s %s share operationId %s", prev.Method, prev.Path, op.Method, op.Path, op.OperationID))
			continue
		}
		first[op.OperationID] = op
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("auth: openapi: %w", errors.Join(errs...))
	}
	return out, nil
}

// AllPermissions lists every permission routes may require.
var AllPermissions = []Permission{
	PermPublic, PermAuthenticated,
	PermTicketsCreate, PermTicketsRead, PermTicketsReadAll, PermTicketsComment, PermTicketsWork,
	PermIntakeManage, PermAlertsIngest, PermEmailIngest,
	PermUsersRead, PermUsersManage, PermGroupsRead, PermGroupsManage,
	PermTenantsRead, PermTenantsManage, PermTokensManage, PermPlatformOperate,
}

func knownPermission(p Permission) bool { return slices.Contains(AllPermissions, p) }

// Mount mounts a service's generated routes on e: register is handed a
// SpecRouter over spec (e.g. func(r *auth.SpecRouter) { RegisterHandlers(r,
// server) }), so every route runs behind its operation's permission and then
// the spec's request validation (except the routes named in raw). A route or
// operation out of step with the spec is an error, which fails the start.
func (a *Authenticator) Mount(e *echo.Echo, spec []byte, raw []string, register func(*SpecRouter)) error {
	validate, err := httpx.ValidateOpenAPI(spec)
	if err != nil {
		return fmt.Errorf("openapi validator: %w", err)
	}
	router, err := a.SpecRouter(e, spec, raw, validate)
	if err != nil {
		return err
	}
	register(router)
	return router.Check()
}
