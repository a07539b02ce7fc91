package deploy_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opsdesk/opsdesk/libs/config"
)

// sections are the services' configuration sections: their variables are
// the env tags of a struct in the service's package, with the prefix the
// binaries give the section (cmd/opsdesk/services.go and each service's
// cmd/<name>/main.go). Add each new service's sections here.
var sections = []struct{ prefix, dir, typ string }{
	{"OPSDESK_INTAKE_", "services/intake", "Config"},
	{"OPSDESK_IDENTITY_", "services/identity", "Config"},
	{"OPSDESK_BOOTSTRAP_", "services/identity", "Bootstrap"},
}

// secretSettings are the settings that hold a secret: a deployment file
// takes them from a Secret or the operator's environment, never a literal.
var secretSettings = []string{"OPSDESK_SECRET_KEY", "OPSDESK_BOOTSTRAP_ADMIN_PASSWORD"}

// sectionEnvVars lists the variables of every section, read from the
// services' source (go/parser): the tests module does not link every
// service, and a struct tag is what the configuration actually reads.
var sectionEnvVars = sync.OnceValues(func() ([]string, error) {
	var out []string
	for _, s := range sections {
		tags, err := envTags(filepath.Join(root, s.dir), s.typ)
		if err != nil {
			return nil, err
		}
		if len(tags) == 0 {
			return nil, fmt.Errorf("%s.%s has no env tags", s.dir, s.typ)
		}
		for _, tag := range tags {
			out = append(out, s.prefix+tag)
		}
	}
	return out, nil
})

// envTags returns the env tags of the fields of struct type typ in the Go
// package in dir (test files excluded), as caarlos0/env reads them: the
// name before any comma, "-" and untagged fields skipped.
func envTags(dir, typ string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if ts.Name.Name != typ || !ok {
					continue
				}
				var tags []string
				for _, field := range st.Fields.List {
					if field.Tag == nil {
						continue
					}
					raw, err := strconv.Unquote(field.Tag.Value)
					if err != nil {
						return nil, err
					}
					name, _, _ := strings.Cut(reflect.StructTag(raw).Get("env"), ",")
					if name != "" && name != "-" {
						tags = append(tags, name)
					}
				}
				return tags, nil
			}
		}
	}
	return nil, fmt.Errorf("no struct type %s in %s", typ, dir)
}

// checkEnvName fails for an OPSDESK_*, DATABASE_URL or OTEL_* variable that
// the configuration does not read: a misspelt variable is silently ignored
// at run time, so it is caught here. Shared settings come from
// config.EnvVars, the services' sections from their structs.
func checkEnvName(t *testing.T, where, name string) {
	t.Helper()
	if !strings.HasPrefix(name, "OPSDESK_") && !strings.HasPrefix(name, "OTEL_") && name != "DATABASE_URL" {
		return
	}
	if slices.Contains(config.EnvVars(), name) {
		return
	}
	vars, err := sectionEnvVars()
	if err != nil {
		t.Fatalf("service settings: %v", err)
	}
	if !slices.Contains(vars, name) {
		t.Errorf("%s sets %s, which OpsDesk does not read (known: %s, %s)", where, name,
			strings.Join(config.EnvVars(), ", "), strings.Join(vars, ", "))
	}
}

func TestEnvNamesAreKnown(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"OPSDESK_HTTP_ADDR", "DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OPSDESK_SECRET_KEY", "OPSDESK_AUTH_JWKS_URL"} {
		if !slices.Contains(config.EnvVars(), name) {
			t.Fatalf("config.EnvVars() lacks %s; the checks below would pass vacuously", name)
		}
	}
	vars, err := sectionEnvVars()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"OPSDESK_INTAKE_READ_WAIT", "OPSDESK_IDENTITY_ACCESS_TTL", "OPSDESK_BOOTSTRAP_TENANT",
		"OPSDESK_BOOTSTRAP_ADMIN_EMAIL", "OPSDESK_BOOTSTRAP_ADMIN_PASSWORD"} {
		if !slices.Contains(vars, name) {
			t.Errorf("service settings lack %s (have %v)", name, vars)
		}
	}
	// Fields without a variable (env:"-", untagged) are not settings.
	for _, name := range []string{"OPSDESK_BOOTSTRAP_DEMO", "OPSDESK_IDENTITY_REPLICAS"} {
		if slices.Contains(vars, name) {
			t.Errorf("service settings include %s, which no binary reads", name)
		}
	}
	// The prefixes are the ones the binaries load the sections with.
	for _, s := range sections {
		for _, file := range []string{"cmd/opsdesk/services.go", filepath.Join(s.dir, "cmd", filepath.Base(s.dir), "main.go")} {
			b, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), strconv.Quote(s.prefix)) {
				t.Errorf("%s does not load a section with prefix %s", file, s.prefix)
			}
		}
	}
}
