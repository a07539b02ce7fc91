package httpport

import (
	"fmt"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

// Register mounts the intake routes on e, each validating its request
// against the embedded OpenAPI spec first (400 problem naming each field).
// The validator is attached per operation, so no other service's routes on
// a shared Echo are affected. Body size is capped by e's BodyLimit (413).
func Register(e *echo.Echo, s *Server) error {
	spec, err := GetSpecJSON()
	if err != nil {
		return fmt.Errorf("intake: embedded openapi spec: %w", err)
	}
	validate, err := httpx.ValidateOpenAPI(spec)
	if err != nil {
		return fmt.Errorf("intake: openapi validator: %w", err)
	}
	mw := []echo.MiddlewareFunc{validate}
	RegisterHandlersWithOptions(e, s, RegisterHandlersOptions{
		OperationMiddlewares: map[string][]echo.MiddlewareFunc{
			"createTicket":     mw,
			"listTickets":      mw,
			"getTicket":        mw,
			"listTicketEvents": mw,
		},
	})
	return nil
}
