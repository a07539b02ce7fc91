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

// OperationMiddlewares reads the x-permission of every operation of an
// OpenAPI document and returns, by operationId, the middleware to mount on
// the route: Require(permission) first, then extra (e.g. request
// validation). An operation without x-permission, or with an unknown one,
// is an error: no route can be mounted without saying who may call it.
func (a *Authenticator) OperationMiddlewares(spec []byte, extra ...echo.MiddlewareFunc) (map[string][]echo.MiddlewareFunc, error) {
	perms, err := SpecPermissions(spec)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]echo.MiddlewareFunc, len(perms))
	for _, op := range perms {
		out[op.OperationID] = append([]echo.MiddlewareFunc{a.Require(op.Permission)}, extra...)
	}
	return out, nil
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
	PermTicketsCreate, PermTicketsRead, PermTicketsReadAll,
	PermUsersRead, PermUsersManage, PermGroupsRead, PermGroupsManage,
	PermTenantsRead, PermTenantsManage, PermTokensManage, PermPlatformOperate,
}

func knownPermission(p Permission) bool { return slices.Contains(AllPermissions, p) }
