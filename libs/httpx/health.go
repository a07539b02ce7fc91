package httpx

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Health mounts the probes: GET /healthz answers 200 {"status":"ok"} as long
// as the process serves HTTP (liveness); GET /readyz answers 200
// {"status":"ready"} when ready returns nil, else 503 problem+json whose
// detail is ready's error (readiness: every selected module is running).
// A nil ready is always ready.
func Health(e *echo.Echo, ready func() error) {
	e.GET(PathHealthz, func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET(PathReadyz, func(c echo.Context) error {
		if ready != nil {
			if err := ready(); err != nil {
				return NewProblem(http.StatusServiceUnavailable, "Not ready", err.Error())
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
}
