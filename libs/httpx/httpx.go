// Package httpx builds the Echo server every OpsDesk target uses: request
// ids, tracing, access logs, a body size limit, and one error handler that
// answers every error as RFC 9457 application/problem+json. It also holds
// OpenAPI request validation, the health endpoints and graceful serving.
package httpx

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/labstack/gommon/bytes"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config's zero fields.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultBodyLimit       = "1M"
	DefaultShutdownTimeout = 10 * time.Second
)

// HeaderRequestID carries the request id, in the request (client-chosen)
// and in the response (always).
const HeaderRequestID = "X-Request-ID"

// Probe and scrape paths: logged at debug level and not traced, because
// Kubernetes and Prometheus hit them every few seconds.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
)

// Config is the HTTP server's configuration; config.HTTP has the same
// fields, so httpx.Config(cfg.HTTP) converts it.
type Config struct {
	// Addr is the listen address (host:port) Serve uses.
	Addr string
	// BodyLimit caps request bodies ("1M", "512K"); larger ones get 413.
	BodyLimit string
	// ShutdownTimeout bounds draining in-flight requests on shutdown.
	ShutdownTimeout time.Duration
	// TrustedProxies are CIDRs of proxies whose X-Forwarded-For names the
	// client (c.RealIP()); with none, RealIP is the connection's address and
	// no header can fake it.
	TrustedProxies []string
}

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.BodyLimit == "" {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// New returns an Echo instance with OpsDesk's middleware, outermost first:
// request id, OpenTelemetry tracing (otelecho, W3C traceparent extracted
// from the request), access log, panic recovery, body limit; and an error
// handler that turns every error into a problem+json answer (see
// problemFor). Recovery sits inside tracing and the access log so that a
// panic is answered 500, logged with its stack and trace id, marks the span
// as failed and appears in the access log like any other failed request.
// The probe and scrape paths (/healthz, /readyz, /metrics) are not traced
// and are access-logged at debug level. The access log also records the
// http.server.request.duration histogram.
//
// New panics if cfg.BodyLimit is not a size such as "1M" (config.Validate
// rejects that earlier, with the setting's name).
func New(cfg Config, log *slog.Logger) *echo.Echo {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.Default()
	}
	limit, err := bytes.Parse(cfg.BodyLimit)
	if err != nil || limit <= 0 {
		panic(fmt.Sprintf("httpx: body limit %q: must be a size such as 1M or 512K", cfg.BodyLimit))
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard) // everything we log goes through slog
	e.Server.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	e.HTTPErrorHandler = errorHandler(log, cfg.BodyLimit)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)

	e.Use(
		requestID(),
		otelecho.Middleware("", otelecho.WithSkipper(isProbe)),
		accessLog(log),
		recoverPanics(log),
		bodyLimit(e, cfg.BodyLimit),
	)
	return e
}

// largeBodies holds, per Echo, the routes allowed a larger body than the
// listener's limit (uploads, raw mail), as middlewares by "METHOD path".
var largeBodies sync.Map // *echo.Echo -> *sync.Map[string]echo.MiddlewareFunc

// AllowBody lets the route method path (Echo form, /v1/tickets/:id/files)
// of e take bodies up to limit ("25M") instead of the listener's limit. The
// handler must still bound what it reads; this only lifts the gate.
func AllowBody(e *echo.Echo, method, path, limit string) {
	m, _ := largeBodies.LoadOrStore(e, &sync.Map{})
	m.(*sync.Map).Store(method+" "+path, middleware.BodyLimit(limit))
}

// bodyLimit caps request bodies at limit, or at the route's own limit set
// with AllowBody. It runs after routing, so c.Path() names the route.
func bodyLimit(e *echo.Echo, limit string) echo.MiddlewareFunc {
	def := middleware.BodyLimit(limit)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		limited := def(next)
		return func(c echo.Context) error {
			if m, ok := largeBodies.Load(e); ok {
				if mw, ok := m.(*sync.Map).Load(c.Request().Method + " " + c.Path()); ok {
					return mw.(echo.MiddlewareFunc)(next)(c)
				}
			}
			return limited(c)
		}
	}
}

// ipExtractor takes the client address from X-Forwarded-For only as far as
// the hops are trusted proxies (config validation has checked the CIDRs).
func ipExtractor(trusted []string) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, cidr := range trusted {
		if _, n, err := net.ParseCIDR(cidr); err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func isProbe(c echo.Context) bool {
	switch c.Request().URL.Path {
	case PathHealthz, PathReadyz, PathMetrics:
		return true
	}
	return false
}

// RequestID returns the id of the request c is serving.
func RequestID(c echo.Context) string {
	id, _ := c.Get(requestIDContextKey).(string)
	return id
}

const requestIDContextKey = "opsdesk.request_id"

// requestID keeps a well-formed client X-Request-ID (so a caller can follow
// its own id through our logs) or makes one, and echoes it in the response.
func requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := c.Request().Header.Get(HeaderRequestID)
			if !validRequestID(id) {
				id = newRequestID()
			}
			c.Set(requestIDContextKey, id)
			c.Response().Header().Set(HeaderRequestID, id)
			return next(c)
		}
	}
}

// validRequestID accepts what fits in a log line and a header unescaped:
// 1 to 128 of A-Z a-z 0-9 and -_.:
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '-', r == '_', r == '.', r == ':':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// accessLog logs one line per request through slog with the request's
// context, so the line carries the trace id, and records the
// http.server.request.duration histogram (otelecho v0.60 traces only).
// It answers a returned error itself (c.Error) so that the logged status is
// the one sent.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	duration, err := otel.Meter("github.com/opsdesk/opsdesk/libs/httpx").Float64Histogram(
		"http.server.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10),
	)
	if err != nil {
		log.Warn("http duration histogram", "err", err)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			elapsed := time.Since(start)
			req, res := c.Request(), c.Response()
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			if duration != nil {
				duration.Record(req.Context(), elapsed.Seconds(), metric.WithAttributes(
					attribute.String("http.request.method", req.Method),
					attribute.String("http.route", route),
					attribute.Int("http.response.status_code", res.Status),
				))
			}
			level := slog.LevelInfo
			switch {
			case isProbe(c):
				level = slog.LevelDebug
			case res.Status >= 500:
				level = slog.LevelWarn
			}
			log.LogAttrs(req.Context(), level, "http request",
				slog.String("method", req.Method),
				slog.String("path", req.URL.Path),
				slog.String("route", route),
				slog.Int("status", res.Status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Int64("bytes_in", req.ContentLength),
				slog.Int64("bytes_out", res.Size),
				slog.String("request_id", RequestID(c)),
				slog.String("remote_ip", c.RealIP()),
			)
			return err
		}
	}
}

// recoverPanics turns a handler panic into a 500 problem, logged with its
// stack. http.ErrAbortHandler is re-raised: it is net/http's way to abort a
// response on purpose.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				r := recover()
				if r == nil {
					return
				}
				if r == http.ErrAbortHandler {
					panic(r)
				}
				ctx := c.Request().Context()
				span := trace.SpanFromContext(ctx)
				span.RecordError(fmt.Errorf("panic: %v", r), trace.WithStackTrace(true))
				span.SetStatus(codes.Error, "panic")
				log.ErrorContext(ctx, "http handler panic",
					"panic", fmt.Sprint(r),
					"method", c.Request().Method,
					"path", c.Request().URL.Path,
					"stack", string(debug.Stack()))
				err = NewProblem(http.StatusInternalServerError, "", internalDetail)
			}()
			return next(c)
		}
	}
}

// internalDetail is all a client learns about a server-side failure; the
// error itself is logged with the request's trace id.
const internalDetail = "The server could not answer this request; the error was logged."

// errorHandler writes every error as problem+json, once.
func errorHandler(log *slog.Logger, bodyLimit string) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		// otelecho and accessLog both call c.Error and return the error,
		// and Echo calls the handler again with it: answer only once.
		if c.Response().Committed {
			return
		}
		p := problemFor(c, err, log, bodyLimit)
		p.RequestID = RequestID(c)
		if sc := trace.SpanContextFromContext(c.Request().Context()); sc.IsValid() {
			p.TraceID = sc.TraceID().String()
		}
		if werr := WriteProblem(c, p); werr != nil {
			log.DebugContext(c.Request().Context(), "write problem", "err", werr)
		}
	}
}

// problemFor maps err to the problem answered for it: a *Problem (anywhere in
// the chain) as is; an *echo.HTTPError by its status (404 unknown route, 405
// with the allowed methods, 413, 400 bind errors naming the field); anything
// else is a 500 whose detail says nothing about the error, which is logged
// instead. log and bodyLimit may be zero values.
func problemFor(c echo.Context, err error, log *slog.Logger, bodyLimit string) *Problem {
	if log == nil {
		log = slog.Default()
	}
	ctx := c.Request().Context()
	var p *Problem
	if errors.As(err, &p) {
		cp := *p // handlers may return shared Problem values; never mutate them
		if cp.Status < 400 || cp.Status > 599 {
			log.ErrorContext(ctx, "problem with a non-error status", "err", err)
			return NewProblem(http.StatusInternalServerError, "", internalDetail)
		}
		return &cp
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if inner, ok := he.Internal.(*echo.HTTPError); ok {
			he = inner
		}
		return fromHTTPError(c, he, log, bodyLimit)
	}
	log.ErrorContext(ctx, "request failed", "err", err,
		"method", c.Request().Method, "path", c.Request().URL.Path)
	return NewProblem(http.StatusInternalServerError, "", internalDetail)
}

func fromHTTPError(c echo.Context, he *echo.HTTPError, log *slog.Logger, bodyLimit string) *Problem {
	req := c.Request()
	status := he.Code
	msg := messageOf(he.Message)
	if msg == http.StatusText(status) {
		msg = ""
	}
	switch {
	case status < 400 || status > 599 || status == http.StatusInternalServerError:
		log.ErrorContext(req.Context(), "request failed", "err", he,
			"method", req.Method, "path", req.URL.Path)
		return NewProblem(http.StatusInternalServerError, "", internalDetail)
	case status >= 500:
		// 502-504 raised by middleware (timeouts) carry no secrets, but
		// say nothing beyond the status either.
		log.WarnContext(req.Context(), "request failed", "err", he,
			"method", req.Method, "path", req.URL.Path)
		return NewProblem(status, "", "")
	case status == http.StatusNotFound:
		if msg == "" {
			msg = "Nothing is served at " + req.URL.Path + "."
		}
		return NewProblem(status, "", msg)
	case status == http.StatusMethodNotAllowed:
		p := NewProblem(status, "", req.Method+" is not allowed on "+req.URL.Path+".")
		if allow := c.Response().Header().Get(echo.HeaderAllow); allow != "" {
			for _, m := range strings.Split(allow, ",") {
				p.Allowed = append(p.Allowed, strings.TrimSpace(m))
			}
		}
		return p
	case status == http.StatusRequestEntityTooLarge:
		detail := "The request body is too large."
		if bodyLimit != "" {
			detail = "The request body is larger than the limit of " + bodyLimit + "."
		}
		return NewProblem(status, "Request body too large", detail,
			FieldError{Field: "body", Message: "is too large"})
	case status == http.StatusBadRequest:
		if f, ok := bindFieldError(he.Internal); ok {
			return NewProblem(status, "Invalid request", f.Field+" "+f.Message, f)
		}
		return NewProblem(status, "Invalid request", msg)
	}
	return NewProblem(status, "", msg)
}

// bindFieldError names the field of a JSON decoding error from Echo's binder.
func bindFieldError(err error) (FieldError, bool) {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			field = "body"
		}
		return FieldError{Field: field, Message: "must be " + jsonKind(ute.Type) + ", not " + ute.Value}, true
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Field: "body", Message: "is not valid JSON"}, true
	}
	return FieldError{}, false
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

func messageOf(m any) string {
	switch v := m.(type) {
	case nil:
		return ""
	case string:
		return v
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return ""
}
