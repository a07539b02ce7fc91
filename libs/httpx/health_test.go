package httpx_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	e, _ := newServer(t, httpx.Config{})
	var notReady atomic.Bool
	notReady.Store(true)
	httpx.Health(e, func() error {
		if notReady.Load() {
			return errors.New("module intake is starting")
		}
		return nil
	})

	rec := do(e, http.MethodGet, httpx.PathHealthz, "")
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != http.StatusOK || err != nil || body["status"] != "ok" {
		t.Fatalf("/healthz: %d %s", rec.Code, rec.Body)
	}

	rec = do(e, http.MethodGet, httpx.PathReadyz, "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while not ready: status %d", rec.Code)
	}
	if p := problemOf(t, rec); p.Detail != "module intake is starting" {
		t.Fatalf("/readyz problem %+v", p)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("/readyz 503 without Retry-After")
	}

	notReady.Store(false)
	if rec := do(e, http.MethodGet, httpx.PathReadyz, ""); rec.Code != http.StatusOK {
		t.Fatalf("/readyz when ready: status %d %s", rec.Code, rec.Body)
	}
}
