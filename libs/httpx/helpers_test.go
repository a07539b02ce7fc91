package httpx_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/telemetry"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(strings.NewReader(b.String()))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("log is not JSON lines: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func newServer(t *testing.T, cfg httpx.Config) (*echo.Echo, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	return httpx.New(cfg, telemetry.NewLogger(logs, slog.LevelDebug)), logs
}

// thingsServer serves the test spec's routes behind the validator; POST
// echoes the body it received so tests can check it was restored.
func thingsServer(t testing.TB) *echo.Echo {
	t.Helper()
	spec, err := os.ReadFile("testdata/things.yaml")
	if err != nil {
		t.Fatal(err)
	}
	validate, err := httpx.ValidateOpenAPI(spec)
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.New(httpx.Config{BodyLimit: "4K"}, slog.New(slog.DiscardHandler))
	e.Use(validate)
	e.POST("/v1/things", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusCreated, echo.MIMEApplicationJSON, body)
	})
	e.GET("/v1/things", func(c echo.Context) error { return c.String(http.StatusOK, "list") })
	e.GET("/v1/things/:id", func(c echo.Context) error { return c.String(http.StatusOK, "thing") })
	e.DELETE("/v1/things/:id", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	e.POST("/v1/other", func(c echo.Context) error {
		body, _ := io.ReadAll(c.Request().Body)
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
	})
	return e
}

func do(e http.Handler, method, target, body string, header ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

// problemOf decodes a problem answer, failing unless it is problem+json.
func problemOf(t testing.TB, rec *httptest.ResponseRecorder) httpx.Problem {
	t.Helper()
	if ct := rec.Header().Get(echo.HeaderContentType); ct != httpx.MIMEProblemJSON {
		t.Fatalf("Content-Type = %q, want %s (status %d, body %s)", ct, httpx.MIMEProblemJSON, rec.Code, rec.Body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != rec.Code {
		t.Fatalf("problem status %d, response status %d", p.Status, rec.Code)
	}
	return p
}

func hasField(p httpx.Problem, field, msgPart string) bool {
	for _, f := range p.Errors {
		if f.Field == field && strings.Contains(f.Message, msgPart) {
			return true
		}
	}
	return false
}
