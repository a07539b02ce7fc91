package httpx_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/telemetry/telemetrytest"
)

func TestUnknownRouteIs404Problem(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	rec := do(e, http.MethodGet, "/v1/nothing-here", "")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
	p := problemOf(t, rec)
	if p.Type != "about:blank" || p.Title != "Not Found" || p.Instance != "/v1/nothing-here" || p.Detail == "" {
		t.Fatalf("problem %+v", p)
	}
	if p.RequestID == "" || p.RequestID != rec.Header().Get(httpx.HeaderRequestID) {
		t.Fatalf("problem request_id %q, header %q", p.RequestID, rec.Header().Get(httpx.HeaderRequestID))
	}
}

func TestHeadErrorHasNoBody(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	rec := do(e, http.MethodHead, "/v1/nothing-here", "")
	if rec.Code != http.StatusNotFound || rec.Body.Len() != 0 {
		t.Fatalf("status %d, body %q: want 404 and no body", rec.Code, rec.Body)
	}
}

func TestMethodNotAllowedListsAllowedMethods(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	e.GET("/v1/things", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	e.POST("/v1/things", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
	rec := do(e, http.MethodDelete, "/v1/things", "")
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status %d", rec.Code)
	}
	p := problemOf(t, rec)
	if !contains(p.Allowed, http.MethodGet) || !contains(p.Allowed, http.MethodPost) {
		t.Fatalf("allowed %v, want GET and POST", p.Allowed)
	}
	if allow := rec.Header().Get(echo.HeaderAllow); !strings.Contains(allow, "GET") {
		t.Fatalf("Allow header %q", allow)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestInternalErrorIsGeneric500AndLogged(t *testing.T) {
	t.Parallel()
	e, logs := newServer(t, httpx.Config{})
	secret := "pq: password authentication failed for user opsdesk"
	e.GET("/boom", func(c echo.Context) error { return fmt.Errorf("load ticket: %w", errors.New(secret)) })
	rec := do(e, http.MethodGet, "/boom", "")
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	p := problemOf(t, rec)
	if strings.Contains(rec.Body.String(), "password") || p.Detail == "" {
		t.Fatalf("500 problem leaks or says nothing: %s", rec.Body)
	}
	if !strings.Contains(logs.String(), secret) {
		t.Fatalf("the real error was not logged: %s", logs)
	}
	// The access log records the status actually sent.
	if !loggedRequest(t, logs, "/boom", http.StatusInternalServerError) {
		t.Fatalf("no access log line with status 500: %s", logs)
	}
}

func loggedRequest(t *testing.T, logs *syncBuffer, path string, status int) bool {
	for _, l := range logs.lines(t) {
		if l["msg"] == "http request" && l["path"] == path && l["status"] == float64(status) {
			return true
		}
	}
	return false
}

func TestPanicIs500ProblemLoggedWithStack(t *testing.T) {
	t.Parallel()
	e, logs := newServer(t, httpx.Config{})
	e.GET("/panic", func(c echo.Context) error { panic("nil map write in handler") })
	rec := do(e, http.MethodGet, "/panic", "")
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "nil map") {
		t.Fatalf("panic value leaked: %s", rec.Body)
	}
	problemOf(t, rec)
	var found bool
	for _, l := range logs.lines(t) {
		if l["msg"] == "http handler panic" && l["panic"] == "nil map write in handler" &&
			strings.Contains(fmt.Sprint(l["stack"]), "httpx_test") {
			found = true
		}
	}
	if !found {
		t.Fatalf("panic not logged with its stack: %s", logs)
	}
	if !loggedRequest(t, logs, "/panic", http.StatusInternalServerError) {
		t.Fatalf("panicking request missing from the access log: %s", logs)
	}
}

func TestProblemReturnedAsIsWithRetryAfterOn503(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	shared := httpx.NewProblem(http.StatusServiceUnavailable, "Event store unavailable", "retry shortly")
	e.GET("/unavailable", func(c echo.Context) error { return fmt.Errorf("append: %w", shared) })
	e.GET("/slow", func(c echo.Context) error {
		return httpx.NewProblem(http.StatusServiceUnavailable, "", "").WithRetryAfter(1500 * time.Millisecond)
	})
	rec := do(e, http.MethodGet, "/unavailable", "")
	p := problemOf(t, rec)
	if rec.Code != http.StatusServiceUnavailable || p.Title != "Event store unavailable" || p.Detail != "retry shortly" {
		t.Fatalf("status %d problem %+v", rec.Code, p)
	}
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After %q, want 1", got)
	}
	if shared.Instance != "" || shared.RequestID != "" {
		t.Fatalf("the handler's Problem value was modified: %+v", shared)
	}
	if got := do(e, http.MethodGet, "/slow", "").Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %q, want 2 (1.5s rounded up)", got)
	}
}

func TestValidationProblemFromHandler(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	e.POST("/v1/tickets", func(c echo.Context) error {
		return httpx.NewProblem(http.StatusBadRequest, "Invalid ticket", "impact is invalid",
			httpx.FieldError{Field: "impact", Message: "must be one of low, medium, high"})
	})
	rec := do(e, http.MethodPost, "/v1/tickets", `{}`)
	p := problemOf(t, rec)
	if rec.Code != http.StatusBadRequest || !hasField(p, "impact", "must be one of") {
		t.Fatalf("status %d problem %+v", rec.Code, p)
	}
}

func TestBindErrorsNameTheField(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	e.POST("/bind", func(c echo.Context) error {
		var in struct {
			Count int `json:"count"`
		}
		if err := c.Bind(&in); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	cases := []struct{ body, field, msg string }{
		{`{"count":"three"}`, "count", "must be an integer"},
		{`{"count":`, "body", "not valid JSON"},
		{`{"count" 3}`, "body", "not valid JSON"},
	}
	for _, tc := range cases {
		rec := do(e, http.MethodPost, "/bind", tc.body, "Content-Type", "application/json")
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("body %s: status %d", tc.body, rec.Code)
		}
		if p := problemOf(t, rec); !hasField(p, tc.field, tc.msg) {
			t.Fatalf("body %s: errors %+v, want %s %q", tc.body, p.Errors, tc.field, tc.msg)
		}
	}
}

func TestBodyLimitIs413Problem(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{BodyLimit: "1K"})
	e.POST("/upload", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	rec := do(e, http.MethodPost, "/upload", strings.Repeat("x", 2048), "Content-Type", "text/plain")
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", rec.Code)
	}
	if p := problemOf(t, rec); !strings.Contains(p.Detail, "1K") || !hasField(p, "body", "too large") {
		t.Fatalf("problem %+v", p)
	}
	if rec := do(e, http.MethodPost, "/upload", "small", "Content-Type", "text/plain"); rec.Code != http.StatusNoContent {
		t.Fatalf("small body: status %d", rec.Code)
	}
}

func TestNewRejectsInvalidBodyLimit(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted body limit \"lots\"")
		}
	}()
	httpx.New(httpx.Config{BodyLimit: "lots"}, nil)
}

func TestRequestIDIsKeptOrGenerated(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	var seen string
	e.GET("/id", func(c echo.Context) error {
		seen = httpx.RequestID(c)
		return c.NoContent(http.StatusNoContent)
	})
	rec := do(e, http.MethodGet, "/id", "", httpx.HeaderRequestID, "client-42")
	if got := rec.Header().Get(httpx.HeaderRequestID); got != "client-42" || seen != "client-42" {
		t.Fatalf("kept id: header %q handler %q, want client-42", got, seen)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 200), "inject\"quote"} {
		rec := do(e, http.MethodGet, "/id", "", httpx.HeaderRequestID, bad)
		got := rec.Header().Get(httpx.HeaderRequestID)
		if got == "" || got == bad || got != seen {
			t.Fatalf("client id %q: header %q, handler %q: want a fresh id", bad, got, seen)
		}
	}
}

// Not parallel: telemetrytest.Spans replaces the global tracer provider.
func TestRequestsAreTracedFromIncomingTraceparentAndLogsCarryIDs(t *testing.T) {
	spans := telemetrytest.Spans(t)
	e, logs := newServer(t, httpx.Config{})
	e.GET("/v1/things/:id", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	httpx.Health(e, nil)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	rec := do(e, http.MethodGet, "/v1/things/th_1", "", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
	do(e, http.MethodGet, httpx.PathHealthz, "")

	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("got %d spans, want 1 (probes are not traced): %v", len(got), got)
	}
	s := got[0]
	if s.Name != "GET /v1/things/:id" || s.SpanContext.TraceID().String() != traceID ||
		s.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %s trace %s parent %s: want child of the incoming traceparent", s.Name, s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	var logged bool
	for _, l := range logs.lines(t) {
		if l["msg"] == "http request" && l["path"] == "/v1/things/th_1" {
			logged = l["trace_id"] == traceID && l["span_id"] == s.SpanContext.SpanID().String() &&
				l["level"] == "info" && l["route"] == "/v1/things/:id"
		}
		if l["msg"] == "http request" && l["path"] == httpx.PathHealthz && l["level"] != "debug" {
			t.Errorf("probe logged at %v, want debug", l["level"])
		}
	}
	if !logged {
		t.Fatalf("access log line lacks the trace and span ids: %s", logs)
	}
}
