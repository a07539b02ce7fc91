package httpx

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// MIMEProblemJSON is the media type of every error answer (RFC 9457).
const MIMEProblemJSON = "application/problem+json"

// DefaultRetryAfter is what a 503 answer tells clients to wait when the
// Problem does not say.
const DefaultRetryAfter = time.Second

// Problem is an RFC 9457 problem detail, the body of every error answer.
// Handlers return it as an error; the error handler of New writes it.
type Problem struct {
	// Type is a URI naming the kind of problem; empty means "about:blank",
	// whose Title is the status text.
	Type string `json:"type,omitempty"`
	// Title is a short summary of the kind of problem, the same for every
	// occurrence ("Invalid request").
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence for the client. It must never carry
	// internal error text.
	Detail string `json:"detail,omitempty"`
	// Instance is the request path; the error handler fills it when empty.
	Instance string `json:"instance,omitempty"`
	// Errors lists each offending input field (validation problems).
	Errors []FieldError `json:"errors,omitempty"`
	// Allowed lists the methods a 405 answer allows (extension member).
	Allowed []string `json:"allowed,omitempty"`
	// OAuthError is the RFC 6749 error code (invalid_grant, ...) of an
	// answer from an OAuth 2.0 endpoint (extension member "error"), so
	// OAuth clients find it where they look.
	OAuthError string `json:"error,omitempty"`
	// RequestID and TraceID identify the request for support (extension
	// members); the error handler fills them.
	RequestID string `json:"request_id,omitempty"`
	TraceID   string `json:"trace_id,omitempty"`
	// RetryAfter is sent as the Retry-After header of a 503 or 429 answer
	// (whole seconds, rounded up); zero means DefaultRetryAfter. It is not
	// part of the body.
	RetryAfter time.Duration `json:"-"`
}

// FieldError names one offending input and what is wrong with it.
//
// Field conventions: a body member is its JSON path with dots ("title",
// "requester.email", "tags.2"; a member name that is empty, holds a dot or
// a quote, or is not printable is quoted, as in `"a.b".c`); the body as a
// whole (malformed JSON, wrong top-level type, missing) is "body"; a
// parameter is "<in>.<name>": "query.limit", "path.id",
// "header.X-Tenant-ID", "cookie.session".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// NewProblem returns a Problem with the given status, title, detail and
// offending fields. An empty title becomes the status text.
func NewProblem(status int, title, detail string, fields ...FieldError) *Problem {
	if title == "" {
		title = http.StatusText(status)
	}
	return &Problem{Title: title, Status: status, Detail: detail, Errors: fields}
}

// Error implements error.
func (p *Problem) Error() string {
	s := strconv.Itoa(p.Status) + " " + p.Title
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	for _, f := range p.Errors {
		s += fmt.Sprintf("; %s %s", f.Field, f.Message)
	}
	return s
}

// WithRetryAfter sets RetryAfter and returns p, for one-line returns.
func (p *Problem) WithRetryAfter(d time.Duration) *Problem {
	p.RetryAfter = d
	return p
}

// WriteProblem writes p as the response: application/problem+json with the
// status, Retry-After on 503 and 429 (unless already set), no body for HEAD.
func WriteProblem(c echo.Context, p *Problem) error {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Instance == "" {
		p.Instance = c.Request().URL.Path
	}
	h := c.Response().Header()
	if (p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", retryAfterSeconds(p.RetryAfter))
	}
	if p.Allowed != nil && h.Get(echo.HeaderAllow) == "" {
		for _, m := range p.Allowed {
			h.Add(echo.HeaderAllow, m)
		}
	}
	if c.Request().Method == http.MethodHead {
		return c.NoContent(p.Status)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode problem: %w", err)
	}
	return c.Blob(p.Status, MIMEProblemJSON, body)
}

func retryAfterSeconds(d time.Duration) string {
	if d <= 0 {
		d = DefaultRetryAfter
	}
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
