package platform

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/httpx"
)

// Operational paths served by every binary besides /healthz, /readyz and
// /metrics.
const (
	PathServices = "/services"
	PathConfig   = "/config"
	// PathAdmin prefixes operator routes (dead letters). They are not
	// tenant-scoped: the ingress does not route them, keep them internal.
	PathAdmin = "/admin"
)

// newEcho builds the shared echo instance: probes wired to the manager's
// readiness, Prometheus metrics, module states, the effective config, and
// the dead-letter admin routes.
func newEcho(p *Platform) *echo.Echo {
	e := httpx.New(httpx.Config(p.cfg.HTTP), p.log.With("module", HTTPServer))
	httpx.Health(e, p.mgr.Ready)
	p.mu.Lock()
	t := p.telemetry
	p.mu.Unlock()
	if t != nil {
		e.GET(httpx.PathMetrics, echo.WrapHandler(t.MetricsHandler()))
	}
	e.GET(PathServices, func(c echo.Context) error {
		return c.JSON(http.StatusOK, p.mgr.States())
	})
	operator := p.require(auth.PermPlatformOperate)
	e.GET(PathConfig, func(c echo.Context) error {
		return c.JSON(http.StatusOK, p.effectiveConfig())
	}, operator)
	// http-server depends on nats, so JetStream is there.
	deadletter.Routes(e.Group(PathAdmin, operator), p.Deps(HTTPServer).JS, p.DeadLetters)
	return e
}

// require is auth's Require for routes mounted before the auth module has
// built the Authenticator: it looks it up per request (503 until then).
func (p *Platform) require(perm auth.Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p.mu.Lock()
			a := p.auth
			p.mu.Unlock()
			if a == nil {
				return httpx.NewProblem(http.StatusServiceUnavailable, "Authentication not ready", "Retry shortly.")
			}
			return a.Require(perm)(next)(c)
		}
	}
}

// httpService serves the shared echo instance.
type httpService struct {
	p *Platform
	e *echo.Echo
}

func (s *httpService) Run(ctx context.Context) error {
	cfg := httpx.Config(s.p.cfg.HTTP).WithDefaults()
	if ln := s.p.opts.Listener; ln != nil {
		return httpx.Listen(ctx, s.e, ln, cfg.ShutdownTimeout)
	}
	return httpx.Serve(ctx, s.e, cfg.Addr, cfg.ShutdownTimeout)
}

// Stop has nothing to do: Run drains in-flight requests when its ctx ends.
func (s *httpService) Stop(context.Context) error { return nil }

// effectiveConfig is what /config shows: the configuration this process
// runs with, secrets removed, and the sections of Options.Config.
func (p *Platform) effectiveConfig() map[string]any {
	c := p.cfg
	c.Postgres.URL = redactPostgres(c.Postgres.URL)
	c.NATS.URL = redactURLList(c.NATS.URL)
	out := map[string]any{
		"http":      readable(c.HTTP),
		"nats":      readable(c.NATS),
		"postgres":  readable(c.Postgres),
		"telemetry": readable(c.Telemetry),
		"runtime":   readable(c.Runtime),
		"auth":      readable(c.Auth),
		// The secret key itself is never shown.
		"secrets": map[string]any{"Key": map[bool]string{true: "set", false: "not set"}[c.Secrets.Key != ""]},
	}
	for name, section := range p.opts.Config {
		out[name] = readable(section)
	}
	return out
}

// readable turns a config struct into a map for JSON in which durations read
// "2m0s" rather than nanoseconds.
func readable(v any) any {
	rv := reflect.ValueOf(v)
	switch {
	case rv.Type() == reflect.TypeFor[time.Duration]():
		return rv.Interface().(time.Duration).String()
	case rv.Kind() == reflect.Struct:
		m := make(map[string]any, rv.NumField())
		for i := range rv.NumField() {
			// Hooks (clocks, callbacks) are wiring, not settings, and
			// JSON cannot encode them.
			if f := rv.Type().Field(i); f.IsExported() && f.Type.Kind() != reflect.Func && f.Type.Kind() != reflect.Chan {
				m[f.Name] = readable(rv.Field(i).Interface())
			}
		}
		return m
	}
	return v
}

// redactPostgres hides the password of a URL or key=value connection string.
func redactPostgres(s string) string {
	if s == "" {
		return ""
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "(unparsable, hidden)"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return passwordKV.ReplaceAllString(s, "${1}xxxxx")
}

var passwordKV = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactURLList hides credentials in a comma-separated URL list.
func redactURLList(list string) string {
	if list == "" {
		return ""
	}
	parts := strings.Split(list, ",")
	for i, part := range parts {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			parts[i] = "(unparsable, hidden)"
			continue
		}
		if u.User != nil {
			// nats://<token>@host carries a token as the user name.
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
