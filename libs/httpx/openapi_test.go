package httpx_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

const tenantHeader = "X-Tenant-ID"

func TestValidateOpenAPIAcceptsValidRequestAndRestoresBody(t *testing.T) {
	t.Parallel()
	e := thingsServer(t)
	// count is left out on purpose: the schema default must not be written
	// into the body the handler sees.
	body := `{"title":"Printer on fire","impact":"high","requester":{"email":"a@b.c"},"tags":["hw"]}`
	rec := do(e, http.MethodPost, "/v1/things", body, "Content-Type", "application/json", tenantHeader, "t_1")
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if rec.Body.String() != body {
		t.Fatalf("handler saw body %q, want the original %q", rec.Body, body)
	}
}

func TestValidateOpenAPIMalformedJSON(t *testing.T) {
	t.Parallel()
	e := thingsServer(t)
	for _, body := range []string{`{"title":`, `not json`, `{"title":"x",}`, "\x00"} {
		rec := do(e, http.MethodPost, "/v1/things", body, "Content-Type", "application/json", tenantHeader, "t_1")
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("body %q: status %d, want 400", body, rec.Code)
		}
		p := problemOf(t, rec)
		if p.Title != httpx.TitleInvalidRequest || !hasField(p, "body", "not valid JSON") {
			t.Fatalf("body %q: problem %+v, want field body 'is not valid JSON'", body, p)
		}
	}
}

func TestValidateOpenAPIListsEveryBodyField(t *testing.T) {
	t.Parallel()
	e := thingsServer(t)
	body := `{"impact":"catastrophic","count":-1,"colour":"red","requester":{"name":"x"},"tags":["ok","much-too-long-tag"]}`
	rec := do(e, http.MethodPost, "/v1/things", body, "Content-Type", "application/json", tenantHeader, "t_1")
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", rec.Code)
	}
	p := problemOf(t, rec)
	want := []struct{ field, msg string }{
		{"title", "is required"},
		{"impact", "one of"},
		{"count", "at least 0"},
		{"colour", "is not a known property"},
		{"requester.email", "is required"},
		{"requester.name", "is not a known property"},
		{"tags.1", "length"},
	}
	for _, w := range want {
		if !hasField(p, w.field, w.msg) {
			t.Errorf("no field %q with message containing %q in %+v", w.field, w.msg, p.Errors)
		}
	}
	if len(p.Errors) != len(want) {
		t.Errorf("got %d field errors, want %d: %+v", len(p.Errors), len(want), p.Errors)
	}
	if strings.Contains(rec.Body.String(), "catastrophic") {
		t.Errorf("problem echoes the offending value: %s", rec.Body)
	}
}

func TestValidateOpenAPIBodyAsAWholeAndContentType(t *testing.T) {
	t.Parallel()
	e := thingsServer(t)
	cases := []struct {
		name, body, contentType, field, msg string
	}{
		{"missing body", "", "application/json", "body", "is required"},
		{"array instead of object", `[1,2]`, "application/json", "body", "object"},
		{"no content type", `{"title":"x","impact":"low"}`, "", "header.Content-Type", "application/json"},
		{"wrong content type", `title=x`, "application/x-www-form-urlencoded", "header.Content-Type", "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := do(e, http.MethodPost, "/v1/things", tc.body, "Content-Type", tc.contentType, tenantHeader, "t_1")
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (%s)", rec.Code, rec.Body)
			}
			if p := problemOf(t, rec); !hasField(p, tc.field, tc.msg) {
				t.Fatalf("errors %+v, want field %q containing %q", p.Errors, tc.field, tc.msg)
			}
		})
	}
}

func TestValidateOpenAPIParameters(t *testing.T) {
	t.Parallel()
	e := thingsServer(t)
	cases := []struct {
		name, method, target, field, msg string
		header                           []string
	}{
		{"query not an integer", http.MethodGet, "/v1/things?limit=abc", "query.limit", "must be an integer", nil},
		{"query out of range", http.MethodGet, "/v1/things?limit=500", "query.limit", "at most 200", nil},
		{"query bad format", http.MethodGet, "/v1/things?since=yesterday", "query.since", "must be a valid date-time (RFC 3339", nil},
		{"path pattern", http.MethodGet, "/v1/things/nope", "path.id", "regular expression", nil},
		{"missing header", http.MethodPost, "/v1/things", "header.X-Tenant-ID", "is required", nil},
		{"bad header", http.MethodPost, "/v1/things", "header.X-Tenant-ID", "regular expression", []string{tenantHeader, "a.b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body string
			header := append([]string{}, tc.header...)
			if tc.method == http.MethodPost {
				body = `{"title":"x","impact":"low"}`
				header = append(header, "Content-Type", "application/json")
			}
			rec := do(e, tc.method, tc.target, body, header...)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (%s)", rec.Code, rec.Body)
			}
			p := problemOf(t, rec)
			if !hasField(p, tc.field, tc.msg) {
				t.Fatalf("errors %+v, want field %q containing %q", p.Errors, tc.field, tc.msg)
			}
			if len(p.Errors) != 1 {
				t.Fatalf("errors %+v, want exactly one", p.Errors)
			}
		})
	}
	if rec := do(e, http.MethodGet, "/v1/things?limit=10", ""); rec.Code != http.StatusOK {
		t.Fatalf("valid query: status %d", rec.Code)
	}
	if rec := do(e, http.MethodGet, "/v1/things/th_01abc", ""); rec.Code != http.StatusOK {
		t.Fatalf("valid path: status %d", rec.Code)
	}
}

func TestValidateOpenAPIPassesRoutesNotInSpec(t *testing.T) {
	t.Parallel()
	e := thingsServer(t)
	// A path the spec does not have, with a body the spec would reject.
	rec := do(e, http.MethodPost, "/v1/other", `{"anything":`, "Content-Type", "application/json")
	if rec.Code != http.StatusOK || rec.Body.String() != `{"anything":` {
		t.Fatalf("unknown path: status %d body %q, want 200 and the body untouched", rec.Code, rec.Body)
	}
	// A method the spec does not have on a known path.
	if rec := do(e, http.MethodDelete, "/v1/things/nope", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("unknown method: status %d, want 204", rec.Code)
	}
}

func TestValidateOpenAPIBodyOverLimitIs413(t *testing.T) {
	t.Parallel()
	e := thingsServer(t) // BodyLimit 4K
	big := `{"title":"` + strings.Repeat("x", 5000) + `","impact":"low"}`
	req := httptest.NewRequest(http.MethodPost, "/v1/things", io.NopCloser(strings.NewReader(big)))
	req.ContentLength = -1 // chunked: the limit is only hit while reading
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(tenantHeader, "t_1")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413 (%s)", rec.Code, rec.Body)
	}
	problemOf(t, rec)
}

func TestValidateOpenAPIRejectsBadDocuments(t *testing.T) {
	t.Parallel()
	for name, spec := range map[string]string{
		"not yaml":     "{{{",
		"missing info": "openapi: 3.0.3\npaths: {}\n",
		"bad ref":      "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Nope'}\n",
		"external ref": "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    get:\n      responses:\n        '200': {$ref: 'other.yaml#/x'}\n",
	} {
		if _, err := httpx.ValidateOpenAPI([]byte(spec)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
