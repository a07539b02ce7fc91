package httpport

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
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
	if err := a.Mount(e, spec, nil, func(r *auth.SpecRouter) { RegisterHandlers(r, s) }); err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	return nil
}
