package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/opsdesk/opsdesk/libs/auth"
)

func TestAPITokenRoundTrip(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 50 {
		u := newAPITokenULID()
		id, tok := auth.NewAPIToken(u)
		if id != "at_"+u {
			t.Fatalf("id = %q, want at_%s", id, u)
		}
		if !strings.HasPrefix(tok, "odk_"+u+"_") || len(tok) != len("odk_")+26+1+43 {
			t.Fatalf("token %q is not odk_<ULID>_<43 chars>", tok)
		}
		got, ok := auth.ParseAPIToken(tok)
		if !ok || got != id {
			t.Fatalf("ParseAPIToken(%q) = %q, %v; want %q", tok, got, ok, id)
		}
		if seen[tok] {
			t.Fatalf("NewAPIToken repeated a secret: %q", tok)
		}
		seen[tok] = true
	}
	// The same ULID gives the same id, never the same secret.
	u := newAPITokenULID()
	id1, tok1 := auth.NewAPIToken(u)
	id2, tok2 := auth.NewAPIToken(u)
	if id1 != id2 || tok1 == tok2 {
		t.Errorf("NewAPIToken(%s) twice: ids %s %s, tokens equal: %v", u, id1, id2, tok1 == tok2)
	}
}

func TestParseAPITokenRejects(t *testing.T) {
	t.Parallel()
	const ulid = "01K94F95D0PVG7SZKRKNDGY4EW"
	secret := strings.Repeat("a", 43)
	valid := "odk_" + ulid + "_" + secret
	if id, ok := auth.ParseAPIToken(valid); !ok || id != "at_"+ulid {
		t.Fatalf("ParseAPIToken(valid) = %q, %v", id, ok)
	}
	for _, tc := range []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", "odk_"},
		{"no prefix", ulid + "_" + secret},
		{"other prefix", "odx_" + ulid + "_" + secret},
		{"upper-case prefix", "ODK_" + ulid + "_" + secret},
		{"id form", "at_" + ulid},
		{"short ulid", "odk_" + ulid[:25] + "_" + secret + "a"},
		{"long ulid", "odk_" + ulid + "0" + "_" + secret[:42]},
		{"short secret", "odk_" + ulid + "_" + secret[:42]},
		{"long secret", "odk_" + ulid + "_" + secret + "a"},
		{"no separator", "odk_" + ulid + secret + "a"},
		{"other separator", "odk_" + ulid + "-" + secret},
		{"lower-case ulid", "odk_" + strings.ToLower(ulid) + "_" + secret},
		{"ulid with I", "odk_" + "I" + ulid[1:] + "_" + secret},
		{"ulid with L", "odk_" + "L" + ulid[1:] + "_" + secret},
		{"ulid with O", "odk_" + "O" + ulid[1:] + "_" + secret},
		{"ulid with U", "odk_" + "U" + ulid[1:] + "_" + secret},
		{"ulid with a non-ASCII rune", "odk_" + "É" + ulid[2:] + "_" + secret},
		{"secret with +", "odk_" + ulid + "_" + secret[:42] + "+"},
		{"secret with /", "odk_" + ulid + "_" + "/" + secret[1:]},
		{"secret with padding", "odk_" + ulid + "_" + secret[:42] + "="},
		{"secret with a blank", "odk_" + ulid + "_" + secret[:20] + " " + secret[21:]},
		{"trailing blank", valid + " "},
		{"leading blank", " " + valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if id, ok := auth.ParseAPIToken(tc.token); ok || id != "" {
				t.Errorf("ParseAPIToken(%q) = %q, %v; want refused", tc.token, id, ok)
			}
		})
	}
}

func TestHashSecret(t *testing.T) {
	t.Parallel()
	_, tok := auth.NewAPIToken(newAPITokenULID())
	h := auth.HashSecret(tok)
	sum := sha256.Sum256([]byte(tok))
	if h != hex.EncodeToString(sum[:]) {
		t.Errorf("HashSecret = %s, want hex SHA-256 %x", h, sum)
	}
	if len(h) != 64 || strings.ToLower(h) != h {
		t.Errorf("HashSecret = %q, want 64 lower-case hex digits", h)
	}
	if auth.HashSecret(tok) != h {
		t.Error("HashSecret is not deterministic")
	}
	// The value identity's contract example documents.
	if got := auth.HashSecret(""); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf(`HashSecret("") = %s`, got)
	}

	_, other := auth.NewAPIToken(newAPITokenULID())
	for _, tc := range []struct {
		name string
		a, b string
		want bool
	}{
		{"same", h, auth.HashSecret(tok), true},
		{"other token", h, auth.HashSecret(other), false},
		{"prefix", h, h[:63], false},
		{"upper case", h, strings.ToUpper(h), h == strings.ToUpper(h)},
		{"empty vs hash", "", h, false},
		{"both empty", "", "", true},
	} {
		if got := auth.SameHash(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: SameHash = %v, want %v", tc.name, got, tc.want)
		}
	}
}
