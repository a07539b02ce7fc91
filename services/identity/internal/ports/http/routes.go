package httpport

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
)

// Register mounts identity's routes on e, each behind the permission its
// operation declares (x-permission) and then request validation against the
// spec, except the token endpoint, which decodes its body itself so OAuth
// clients get RFC 6749 error codes.
func Register(e *echo.Echo, a *auth.Authenticator, s *Server) error {
	spec, err := GetSpecJSON()
	if err != nil {
		return fmt.Errorf("identity: embedded openapi spec: %w", err)
	}
	if err := a.Mount(e, spec, []string{"POST /v1/auth/token"}, func(r *auth.SpecRouter) { RegisterHandlers(r, s) }); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}
