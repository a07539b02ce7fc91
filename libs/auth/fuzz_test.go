package auth_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
)

// The fuzz targets' world is deterministic (fixed key, clock and ids), so
// an input in testdata/fuzz means the same thing on every run.
var (
	fuzzNow    = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	fuzzKey    = ed25519.NewKeyFromSeed([]byte("opsdesk-auth-fuzz-key-seed-32byt"))
	fuzzSigner = auth.Signer{KID: "fuzz-1", Key: fuzzKey}
)

const (
	fuzzHome      = "t_01K94FJAC03MHPVFVTXXKT1Y4Y"
	fuzzClient    = "t_01K94FJAC06AHQFZ5QK487KF97" // slug contoso, a client of fuzzHome
	fuzzSuspended = "t_01K94FJAC0CZSJW7JMM6S5VC8D" // granted, but suspended
	fuzzForeign   = "t_01K94FEN600NX9YM94KCH3DVV7" // granted, but a client of another provider
	fuzzUser      = "u_01K94FGFS0Q4STE6NC0X96NWDC"
	fuzzGone      = "u_01K94F95D0E7R4NPSGMS720VZC" // offboarded
	fuzzTokenULID = "01K94F95D0PVG7SZKRKNDGY4EW"
)

// fuzzWorld returns an Authenticator over a fixed State, the tokens it
// accepts, and some it refuses.
func fuzzWorld(t testing.TB) (a *auth.Authenticator, user, apiToken string, refused []string) {
	t.Helper()
	state := auth.NewState()
	f := newFeed(t, state)
	f.tenantCreated(fuzzHome, "msp", "", identityv1.KindProvider)
	f.tenantCreated(fuzzClient, "contoso", fuzzHome, identityv1.KindClient)
	f.tenantCreated(fuzzSuspended, "fabrikam", fuzzHome, identityv1.KindClient)
	f.tenantSuspended(fuzzSuspended, fuzzNow.Add(-time.Hour))
	f.tenantCreated(fuzzForeign, "tailspin", "t_01K94F7AT0HYPPCWB1G3FX2M1J", identityv1.KindClient)
	f.apply(fuzzHome, fuzzGone, identityv1.TypeUserOffboarded, identityv1.UserOffboarded{UserID: fuzzGone, At: fuzzNow.Add(-time.Hour)})
	apiToken = auth.APITokenPrefix + fuzzTokenULID + "_" + base64.RawURLEncoding.EncodeToString([]byte("a fixed secret of 32 bytes......"))
	f.apiTokenCreated(fuzzHome, identityv1.APITokenIDPrefix+fuzzTokenULID, apiToken, time.Time{}, "tickets:read")

	a = auth.NewAuthenticator(auth.Config{
		Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{fuzzSigner.KID: fuzzKey.Public().(ed25519.PublicKey)}),
		State: state,
		Now:   func() time.Time { return fuzzNow },
	})
	claims := func(sub string, iat time.Time) auth.Claims {
		return auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: auth.Issuer, Audience: jwt.ClaimStrings{auth.Audience}, Subject: sub,
				IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat),
				ExpiresAt: jwt.NewNumericDate(iat.Add(15 * time.Minute)), ID: "01K94F7AT0HYPPCWB1G3FX2M1J",
			},
			Tenant: fuzzHome, SessionID: "s_01K94F7AT0HYPPCWB1G3FX2M1J", Roles: []string{auth.RoleAdmin},
			Grants:   map[string]string{fuzzClient: auth.RoleAgent, fuzzSuspended: auth.RoleAgent, fuzzForeign: auth.RoleAgent},
			Operator: true, Email: "ada@example.com",
		}
	}
	signed := func(c auth.Claims) string {
		tok, err := fuzzSigner.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	user = signed(claims(fuzzUser, fuzzNow.Add(-time.Minute)))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims(fuzzUser, fuzzNow))
	none.Header["kid"] = fuzzSigner.KID
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	refused = []string{
		signed(claims(fuzzGone, fuzzNow.Add(-time.Minute))), // offboarded
		signed(claims(fuzzUser, fuzzNow.Add(-time.Hour))),   // expired
		noneTok,
	}
	return a, user, apiToken, refused
}

// FuzzAuthenticate: no Authorization or X-Acting-Tenant value panics, and
// only the two credentials the world minted validly are ever accepted,
// acting only where they may.
func FuzzAuthenticate(f *testing.F) {
	a, user, apiToken, refused := fuzzWorld(f)
	for _, acting := range []string{"", fuzzHome, "msp", fuzzClient, "contoso", fuzzSuspended, "fabrikam", fuzzForeign, "t_other", " contoso "} {
		f.Add("Bearer "+user, acting)
		f.Add("Bearer "+apiToken, acting)
	}
	for _, tok := range refused {
		f.Add("Bearer "+tok, "")
	}
	f.Add("bearer "+user, "")
	f.Add("Bearer "+segment(user, 1, func(s string) string { return flip(s, 10) }), "")
	f.Add("Bearer "+segment(user, 2, func(s string) string { return s[:len(s)-1] + "B" }), "")
	// The user's token with other unused bits in the signature's last
	// character: the same signature bytes, accepted before the parser
	// decoded strictly.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	f.Add("Bearer "+user[:len(user)-1]+string(alphabet[strings.IndexByte(alphabet, user[len(user)-1])^1]), "")
	f.Add("Bearer "+apiToken[:len(apiToken)-1]+"B", "")
	f.Add("Bearer odk_", "")
	f.Add("Basic dXNlcjpwYXNz", "")
	f.Add("", "")
	f.Add("Bearer a.b.c", "x")

	f.Fuzz(func(t *testing.T, authorization, acting string) {
		p, err := authenticate(a, authorization, acting)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) && !errors.Is(err, auth.ErrNoSuchTenant) {
				t.Fatalf("err = %v, want ErrUnauthenticated or ErrNoSuchTenant", err)
			}
			if p.ID != "" {
				t.Fatalf("principal %+v returned with error %v", p, err)
			}
			return
		}
		_, rest, _ := strings.Cut(authorization, " ")
		switch tok := strings.TrimSpace(rest); tok {
		case user:
			if p.Kind != auth.KindUser || p.ID != fuzzUser || p.HomeTenant != fuzzHome {
				t.Fatalf("user token: principal %+v", p)
			}
			switch {
			case p.Tenant == fuzzHome && !p.Acting && p.Operator:
			case p.Tenant == fuzzClient && p.Acting && !p.Operator && len(p.Roles) == 1 && p.Roles[0] == auth.RoleAgent:
			default:
				t.Fatalf("user token acting %q: principal %+v; only the home tenant and contoso are allowed", acting, p)
			}
		case apiToken:
			if p.Kind != auth.KindAPIToken || p.Tenant != fuzzHome || p.Acting || p.ID != identityv1.APITokenIDPrefix+fuzzTokenULID {
				t.Fatalf("API token acting %q: principal %+v", acting, p)
			}
		default:
			t.Fatalf("accepted a credential nobody minted: Authorization %q, X-Acting-Tenant %q: %+v", authorization, acting, p)
		}
	})
}

// FuzzParseAPIToken: no input panics, and whatever is accepted is shaped
// odk_<26 Crockford characters>_<43 base64url characters>, with the id
// at_<the same 26>.
func FuzzParseAPIToken(f *testing.F) {
	f.Add("odk_" + fuzzTokenULID + "_" + strings.Repeat("A", 43))
	f.Add("odk_" + fuzzTokenULID + "_" + strings.Repeat("-", 42) + "_")
	f.Add("odk_" + fuzzTokenULID + "_" + strings.Repeat("A", 42))
	f.Add("odk_" + strings.ToLower(fuzzTokenULID) + "_" + strings.Repeat("A", 43))
	f.Add("odk_")
	f.Add("")
	f.Add("at_" + fuzzTokenULID)
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := auth.ParseAPIToken(s)
		if !ok {
			if id != "" {
				t.Fatalf("ParseAPIToken(%q) = %q, false", s, id)
			}
			return
		}
		if !strings.HasPrefix(s, auth.APITokenPrefix) || len(s) != len(auth.APITokenPrefix)+26+1+43 || s[30] != '_' {
			t.Fatalf("ParseAPIToken accepted %q", s)
		}
		if len(id) != len(identityv1.APITokenIDPrefix)+26 || id != identityv1.APITokenIDPrefix+s[4:30] {
			t.Fatalf("ParseAPIToken(%q) id = %q", s, id)
		}
		for _, c := range id[3:] {
			if !strings.ContainsRune("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c) {
				t.Fatalf("id %q has %q, not Crockford base32", id, c)
			}
		}
		if _, err := base64.RawURLEncoding.DecodeString(s[31:]); err != nil {
			t.Fatalf("accepted secret %q: %v", s[31:], err)
		}
	})
}
