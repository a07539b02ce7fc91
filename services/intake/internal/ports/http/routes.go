package httpport

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
)

// Register mounts the intake routes on e, each behind the permission its
// operation declares (x-permission) and then validating its request against
// the embedded OpenAPI spec (400 problem naming each field). The middleware
// is attached per route, so no other service's routes on a shared Echo are
// affected. Body size is capped by e's BodyLimit (413).
func Register(e *echo.Echo, a *auth.Authenticator, s *Server) error {
	spec, err := GetSpecJSON()
	if err != nil {
		return fmt.Errorf("intake: embedded openapi spec: %w", err)
	}
	validate, err := httpx.ValidateOpenAPI(spec)
	if err != nil {
		return fmt.Errorf("intake: openapi validator: %w", err)
	}
	router, err := a.SpecRouter(e, spec, nil, validate)
	if err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	RegisterHandlers(router, s)
	if err := router.Check(); err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	return nil
}
