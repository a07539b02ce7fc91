package httpport

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

// FuzzDecodeTokenRequest: whatever the body and content type of a token
// request, decodeTokenRequest never panics, and either answers a complete
// grant (password with username, password and tenant; refresh_token with
// the refresh token), or an RFC 6749 problem: 400 or 413 with an OAuth
// error code.
func FuzzDecodeTokenRequest(f *testing.F) {
	const form, js = "application/x-www-form-urlencoded", "application/json"
	for _, seed := range []struct{ contentType, body string }{
		// Valid requests.
		{form, "grant_type=password&username=ada%40example.com&password=s3cret-passphrase&tenant=acme"},
		{form, "grant_type=password&email=ada%40example.com&password=pw&tenant=acme&scope=openid"},
		{form, "grant_type=refresh_token&refresh_token=ort.t_01.rt_01.secret"},
		{form + "; charset=utf-8", "grant_type=refresh_token&refresh_token=x&unknown=ignored"},
		{js, `{"grant_type":"password","username":"ada@example.com","password":"pw","tenant":"acme"}`},
		{js, `{"grant_type":"refresh_token","refresh_token":"ort.t_01.rt_01.secret","extra":{"nested":[1,2]}}`},
		{"Application/JSON; charset=UTF-8", `{"grant_type":"password","email":"a@b","password":"p","tenant":"t"}`},
		// Nasty ones.
		{form, ""},
		{form, "grant_type=password&grant_type=refresh_token"},
		{form, "grant_type=password&username=a&email=b&password=p&tenant=t"},
		{form, "grant_type=client_credentials"},
		{form, "grant_type=password&username=%ff%fe&password=p&tenant=t"},
		{form, "grant_type=%zz"},
		{form, "grant_type=refresh_token&refresh_token=" + strings.Repeat("A", 1025)},
		{form, strings.Repeat("a=b&", 2100)},
		{js, ``},
		{js, `null`},
		{js, `[]`},
		{js, `"grant_type"`},
		{js, `{"grant_type":"password"} {"grant_type":"refresh_token"}`},
		{js, `{"grant_type":null,"refresh_token":"x"}`},
		{js, `{"grant_type":"refresh_token","refresh_token":1}`},
		{js, `{"grant_type":"password","username":"a","password":"p","tenant":"t","tenant":""}`},
		{js, "{\"grant_type\":\"password\",\"username\":\"\xff\",\"password\":\"p\",\"tenant\":\"t\"}"},
		{js, `{"grant_type":"refresh_token","refresh_token":"\u0000"}`},
		{js, `{"grant_type":"` + strings.Repeat("x", 9000) + `"}`},
		{"", "grant_type=password"},
		{"text/plain", "grant_type=password&username=a&password=p&tenant=t"},
		{"multipart/form-data; boundary=x", "--x--"},
		{"application/x-www-form-urlencoded; charset", "grant_type=refresh_token&refresh_token=r"},
		{";;;", "{}"},
	} {
		f.Add(seed.contentType, []byte(seed.body))
	}

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r, err := decodeTokenRequest(contentType, bytes.NewReader(body))
		if err != nil {
			var p *httpx.Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %v (%T) is not a problem", err, err)
			}
			if p.Status != http.StatusBadRequest && p.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("problem status %d, want 400 or 413: %+v", p.Status, p)
			}
			if p.OAuthError == "" {
				t.Fatalf("problem without an OAuth error code: %+v", p)
			}
			if p.Status == http.StatusRequestEntityTooLarge && len(body) <= maxTokenBody {
				t.Fatalf("413 for a body of %d bytes (the limit is %d)", len(body), maxTokenBody)
			}
			return
		}
		if len(body) > maxTokenBody {
			t.Fatalf("accepted a body of %d bytes (the limit is %d)", len(body), maxTokenBody)
		}
		switch r.GrantType {
		case "password":
			if r.Username == "" || r.Password == "" || r.Tenant == "" {
				t.Fatalf("password grant with a missing member: %+v", r)
			}
		case "refresh_token":
			if r.RefreshToken == "" {
				t.Fatalf("refresh grant without a refresh token: %+v", r)
			}
		default:
			t.Fatalf("accepted grant_type %q", r.GrantType)
		}
		for name, v := range map[string]string{"username": r.Username, "password": r.Password, "tenant": r.Tenant, "refresh_token": r.RefreshToken} {
			if len(v) > 1024 {
				t.Fatalf("accepted %s of %d bytes", name, len(v))
			}
			if !utf8.ValidString(v) {
				t.Fatalf("accepted %s that is not UTF-8: %q", name, v)
			}
		}
	})
}
