package identityv1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
	"testing"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// typeConstants parses identity.go for the Type* = "opsdesk.identity...."
// constants, so a new event type cannot be declared without being listed.
func typeConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "identity.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{} // constant name -> ce-type
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Type") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(v, "opsdesk.identity.") {
					out[n.Name] = v
				}
			}
		}
	}
	return out
}

// TestEventTypesListsEveryTypeOnce checks every Type* constant appears in
// EventTypes exactly once, with the schema file named after the ce-type and
// a payload struct named after the constant (TypeTenantCreated ->
// TenantCreated).
func TestEventTypesListsEveryTypeOnce(t *testing.T) {
	consts := typeConstants(t)
	if len(consts) != 24 {
		t.Errorf("found %d Type* constants in identity.go, want 24 (update this count when adding one)", len(consts))
	}
	byType := map[string]string{}
	for name, typ := range consts {
		if other, dup := byType[typ]; dup {
			t.Errorf("%s and %s are both %q", name, other, typ)
		}
		byType[typ] = name
	}

	seen := map[string]int{}
	for _, et := range identityv1.EventTypes() {
		seen[et.Type]++
		name, ok := byType[et.Type]
		if !ok {
			t.Errorf("EventTypes lists %q, which is no Type* constant", et.Type)
			continue
		}
		event, ok := strings.CutPrefix(et.Type, "opsdesk.identity.")
		if !ok || !strings.HasSuffix(event, ".v1") {
			t.Errorf("%s: ce-type %q is not opsdesk.identity.<event>.v1", name, et.Type)
		}
		if want := event + ".schema.json"; et.Schema != want {
			t.Errorf("%s: schema file %q, want %q", name, et.Schema, want)
		}
		if et.New == nil || et.Example == nil {
			t.Errorf("%s: New and Example must be set", name)
			continue
		}
		payload := reflect.TypeOf(et.New())
		if payload.Kind() != reflect.Pointer || payload.Elem().Kind() != reflect.Struct {
			t.Errorf("%s: New returns %v, want a pointer to a struct", name, payload)
			continue
		}
		if want := strings.TrimPrefix(name, "Type"); payload.Elem().Name() != want {
			t.Errorf("%s: New returns *%s, want *%s", name, payload.Elem().Name(), want)
		}
		if ex := reflect.TypeOf(et.Example()); ex != payload {
			t.Errorf("%s: Example returns %v, New %v", name, ex, payload)
		}
	}
	for typ, name := range byType {
		switch seen[typ] {
		case 1:
		case 0:
			t.Errorf("%s (%s) is missing from EventTypes", name, typ)
		default:
			t.Errorf("%s (%s) is listed %d times in EventTypes", name, typ, seen[typ])
		}
	}
}

// TestExamplesAreFullyPopulated checks every example sets every field, so
// the contract test exercises each property of each schema.
func TestExamplesAreFullyPopulated(t *testing.T) {
	for _, et := range identityv1.EventTypes() {
		v := reflect.ValueOf(et.Example()).Elem()
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Errorf("%s: example leaves %s zero", et.Type, v.Type().Field(i).Name)
			}
		}
	}
}
