package httpport

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

// maxTokenBody bounds a token request (form or JSON): credentials and a
// refresh token take well under 8 KiB.
const maxTokenBody = 8 << 10

// tokenRequest is a decoded POST /v1/auth/token.
type tokenRequest struct {
	GrantType, Username, Password, Tenant, RefreshToken string
}

// oauthProblem is an RFC 6749 §5.2 error as problem+json.
func oauthProblem(status int, code, detail string, fields ...httpx.FieldError) *httpx.Problem {
	title := "Invalid token request"
	if status == http.StatusUnauthorized {
		title = "Invalid credentials"
	}
	p := httpx.NewProblem(status, title, detail, fields...)
	p.OAuthError = code
	return p
}

// decodeTokenRequest reads the body of a token request: form-encoded as RFC
// 6749 says, or JSON. The generic request validator does not run on this
// route, so OAuth clients get RFC 6749 error codes: invalid_request naming
// each bad field, unsupported_grant_type. Unknown parameters are ignored
// (RFC 6749 §3.2); a parameter given twice is invalid_request.
func decodeTokenRequest(contentType string, body io.Reader) (tokenRequest, error) {
	raw, err := io.ReadAll(io.LimitReader(body, maxTokenBody+1))
	if err != nil {
		return tokenRequest{}, oauthProblem(http.StatusBadRequest, "invalid_request", "The request body could not be read.")
	}
	if len(raw) > maxTokenBody {
		return tokenRequest{}, oauthProblem(http.StatusRequestEntityTooLarge, "invalid_request", "The request body is too large.",
			httpx.FieldError{Field: "body", Message: "is too large"})
	}
	media, _, _ := mime.ParseMediaType(contentType)
	var values map[string]string
	switch media {
	case "application/x-www-form-urlencoded":
		values, err = formValues(raw)
	case "application/json":
		values, err = jsonValues(raw)
	default:
		return tokenRequest{}, oauthProblem(http.StatusBadRequest, "invalid_request",
			"Send the token request as application/x-www-form-urlencoded (or application/json).",
			httpx.FieldError{Field: "header.Content-Type", Message: "must be application/x-www-form-urlencoded or application/json"})
	}
	if err != nil {
		return tokenRequest{}, err
	}
	r := tokenRequest{GrantType: values["grant_type"], Password: values["password"], Tenant: values["tenant"],
		RefreshToken: values["refresh_token"], Username: values["username"]}
	var bad []httpx.FieldError
	need := func(field, v string) {
		if v == "" {
			bad = append(bad, httpx.FieldError{Field: field, Message: "is required"})
		}
	}
	if e := values["email"]; e != "" {
		if r.Username != "" && r.Username != e {
			bad = append(bad, httpx.FieldError{Field: "email", Message: "differs from username"})
		}
		r.Username = e
	}
	switch r.GrantType {
	case "password":
		need("username", r.Username)
		need("password", r.Password)
		need("tenant", r.Tenant)
	case "refresh_token":
		need("refresh_token", r.RefreshToken)
	case "":
		need("grant_type", "")
	default:
		return tokenRequest{}, oauthProblem(http.StatusBadRequest, "unsupported_grant_type",
			"grant_type must be password or refresh_token.",
			httpx.FieldError{Field: "grant_type", Message: "must be password or refresh_token"})
	}
	for field, v := range map[string]string{"username": r.Username, "password": r.Password, "tenant": r.Tenant, "refresh_token": r.RefreshToken} {
		if len(v) > 1024 {
			bad = append(bad, httpx.FieldError{Field: field, Message: "is too long"})
		}
	}
	if len(bad) > 0 {
		return tokenRequest{}, oauthProblem(http.StatusBadRequest, "invalid_request", "The token request is incomplete or invalid.", sortFields(bad)...)
	}
	return r, nil
}

var tokenParams = []string{"grant_type", "username", "email", "password", "tenant", "refresh_token", "scope"}

func formValues(raw []byte) (map[string]string, error) {
	q, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, oauthProblem(http.StatusBadRequest, "invalid_request", "The body is not valid form encoding.",
			httpx.FieldError{Field: "body", Message: "is not valid application/x-www-form-urlencoded"})
	}
	out := map[string]string{}
	for _, k := range tokenParams {
		vs := q[k]
		switch {
		case len(vs) > 1:
			return nil, oauthProblem(http.StatusBadRequest, "invalid_request", k+" is given more than once.",
				httpx.FieldError{Field: k, Message: "must be given once"})
		case len(vs) == 1:
			if !utf8.ValidString(vs[0]) {
				return nil, oauthProblem(http.StatusBadRequest, "invalid_request", k+" is not valid UTF-8.",
					httpx.FieldError{Field: k, Message: "must be valid UTF-8"})
			}
			out[k] = vs[0]
		}
	}
	return out, nil
}

func jsonValues(raw []byte) (map[string]string, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
		return nil, oauthProblem(http.StatusBadRequest, "invalid_request", "The body is not a JSON object.",
			httpx.FieldError{Field: "body", Message: "is not a JSON object"})
	}
	out := map[string]string{}
	for _, k := range tokenParams {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, oauthProblem(http.StatusBadRequest, "invalid_request", k+" must be a string.",
				httpx.FieldError{Field: k, Message: "must be a string"})
		}
		out[k] = s
	}
	return out, nil
}

func sortFields(f []httpx.FieldError) []httpx.FieldError {
	slices.SortFunc(f, func(a, b httpx.FieldError) int { return strings.Compare(a.Field, b.Field) })
	return f
}
