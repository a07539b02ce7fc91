package secret_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsdesk/opsdesk/libs/secret"
)

func TestSealOpen(t *testing.T) {
	k := secret.Generate()
	sealed := k.Seal([]byte("reset-token-123"), []byte("u_1"))
	got, err := k.Open(sealed, []byte("u_1"))
	if err != nil || string(got) != "reset-token-123" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if again := k.Seal([]byte("reset-token-123"), []byte("u_1")); again == sealed {
		t.Fatal("two seals of the same value are equal: the nonce is not random")
	}
	for name, open := range map[string]func() ([]byte, error){
		"other aad":     func() ([]byte, error) { return k.Open(sealed, []byte("u_2")) },
		"other key":     func() ([]byte, error) { return secret.Generate().Open(sealed, []byte("u_1")) },
		"other purpose": func() ([]byte, error) { return k.Derive("a").Open(sealed, []byte("u_1")) },
		"tampered":      func() ([]byte, error) { return k.Open(flip(sealed), []byte("u_1")) },
		"truncated":     func() ([]byte, error) { return k.Open(sealed[:10], []byte("u_1")) },
		"not base64":    func() ([]byte, error) { return k.Open("***", []byte("u_1")) },
	} {
		if _, err := open(); !errors.Is(err, secret.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func flip(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestDeriveSeparatesPurposes(t *testing.T) {
	k := secret.Generate()
	a, b := k.Derive("identity/signing-keys"), k.Derive("identity/password-reset")
	if a == b || a == k {
		t.Fatal("derived keys are not distinct")
	}
	if k.Derive("identity/signing-keys") != a {
		t.Fatal("Derive is not deterministic")
	}
}

func TestParseAndHide(t *testing.T) {
	k := secret.Generate()
	back, err := secret.Parse(k.Encode())
	if err != nil || back != k {
		t.Fatalf("Parse(Encode) = %v", err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("A", 100)} {
		if _, err := secret.Parse(bad); !errors.Is(err, secret.ErrInvalid) {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, k.Encode()) || strings.Contains(s, k.Encode()[:8]) {
			t.Fatalf("printing the key shows it: %s", s)
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "secret.key")
	k, created, err := secret.LoadOrCreate(file)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created %v, %v", created, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	again, created, err := secret.LoadOrCreate(file)
	if err != nil || created || again != k {
		t.Fatalf("second LoadOrCreate: created %v, same %v, %v", created, again == k, err)
	}
	if err := os.WriteFile(file, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := secret.LoadOrCreate(file); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}
