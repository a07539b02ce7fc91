// Package eventstest checks a context package's event registry against its
// source: every ce-type constant listed once in EventTypes, schema files
// and payload structs named after it, examples fully populated. Each
// context package's tests call it.
package eventstest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/opsdesk/opsdesk/api/events"
)

// TypeConstants parses the non-test Go files of dir for Type* string
// constants whose value starts with prefix ("opsdesk.ticket."), so a new
// event type cannot be declared without being listed. It returns constant
// name -> ce-type; Type* constants with other values (ticket types such as
// TypeIncident) are skipped.
func TypeConstants(t testing.TB, dir, prefix string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	out := map[string]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
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
					if strings.HasPrefix(v, prefix) {
						out[n.Name] = v
					}
				}
			}
		}
	}
	return out
}

// CheckEventTypes checks that every constant of consts is listed in types
// exactly once, with the ce-type prefix+<event>.v1, the schema file
// schemaPrefix+<event>.v1.schema.json, and New and Example returning a
// pointer to the struct named after the constant (TypeTicketCreated ->
// TicketCreated).
func CheckEventTypes(t testing.TB, consts map[string]string, types []events.EventType, prefix, schemaPrefix string) {
	t.Helper()
	byType := map[string]string{}
	for name, typ := range consts {
		if other, dup := byType[typ]; dup {
			t.Errorf("%s and %s are both %q", name, other, typ)
		}
		byType[typ] = name
	}
	seen := map[string]int{}
	for _, et := range types {
		seen[et.Type]++
		name, ok := byType[et.Type]
		if !ok {
			t.Errorf("EventTypes lists %q, which is no Type* constant", et.Type)
			continue
		}
		event, ok := strings.CutPrefix(et.Type, prefix)
		if !ok || !strings.HasSuffix(event, ".v1") {
			t.Errorf("%s: ce-type %q is not %s<event>.v1", name, et.Type, prefix)
		}
		if want := schemaPrefix + event + ".schema.json"; et.Schema != want {
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

// CheckExamplesPopulated checks every example sets every field, so the
// contract test exercises each property of each schema.
func CheckExamplesPopulated(t testing.TB, types []events.EventType) {
	t.Helper()
	for _, et := range types {
		v := reflect.ValueOf(et.Example()).Elem()
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Errorf("%s: example leaves %s zero", et.Type, v.Type().Field(i).Name)
			}
		}
	}
}
