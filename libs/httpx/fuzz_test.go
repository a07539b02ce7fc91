package httpx_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

// FuzzValidate sends arbitrary bodies to a validated route: the answer is
// never a 500 (nor a panic), a rejection is a 400/413 problem naming at
// least one field, and an accepted body reaches the handler byte for byte.
// Run longer with: go test -run '^$' -fuzz FuzzValidate ./httpx
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		`{"title":"Printer on fire","impact":"high"}`,
		`{"title":"x","impact":"low","count":3,"requester":{"email":"a@b.c"},"tags":["a","b"]}`,
		`{"title":"","impact":"none","extra":true}`,
		`{"title":1e400,"impact":null}`,
		`{"title":"\ud800","impact":"low"}`,
		`{"title":"x","impact":"low","count":1.5}`,
		`{"title":"x","impact":"low","tags":[[[[[]]]]]}`,
		`{"title":"x","impact":"low"}{}`,
		`[]`, `null`, `"str"`, `0`, `{`, ``, "\xff\xfe", `{"title":"x","impact":"low","requester":{"email":{"$ref":"#"}}}`,
	} {
		f.Add(seed)
	}
	e := thingsServer(f)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/things", bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(tenantHeader, "t_1")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
			if rec.Body.String() != body {
				t.Fatalf("handler saw %q, want %q", rec.Body, body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var p httpx.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem is not JSON: %v: %s", err, rec.Body)
			}
			if len(p.Errors) == 0 {
				t.Fatalf("problem names no field: %s", rec.Body)
			}
			for _, fe := range p.Errors {
				if fe.Field == "" || fe.Message == "" || fe.Message == "does not match the API description" {
					t.Fatalf("unhelpful field error %+v for body %q", fe, body)
				}
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
	})
}
