package httpport

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
)

// Register mounts identity's routes on e: each behind the permission its
// operation declares (x-permission), then request validation against the
// spec, except the token endpoint, which decodes its body itself so OAuth
// clients get RFC 6749 error codes. A route or operation out of step with
// the spec fails the start.
func Register(e *echo.Echo, a *auth.Authenticator, s *Server) error {
	spec, err := GetSpecJSON()
	if err != nil {
		return fmt.Errorf("identity: embedded openapi spec: %w", err)
	}
	validate, err := httpx.ValidateOpenAPI(spec)
	if err != nil {
		return fmt.Errorf("identity: openapi validator: %w", err)
	}
	router, err := a.SpecRouter(e, spec, []string{"POST /v1/auth/token"}, validate)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	RegisterHandlers(router, s)
	if err := router.Check(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}
