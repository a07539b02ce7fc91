package events_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// contract is one event type together with the schemas it was registered
// with, whatever its context package.
type contract struct {
	Type    string
	New     func() any
	Example func() any
	Schema  []byte
	File    string
}

// contracts gathers every event type of every context package. A new
// context package adds its EventTypes here.
func contracts(t *testing.T) []contract {
	t.Helper()
	var out []contract
	for _, et := range ticketv1.EventTypes() {
		b, err := ticketv1.Schemas.ReadFile(et.Schema)
		if err != nil {
			t.Fatalf("%s: schema %s: %v", et.Type, et.Schema, err)
		}
		out = append(out, contract{Type: et.Type, New: et.New, Example: et.Example, Schema: b, File: "ticket/v1/" + et.Schema})
	}
	if len(out) == 0 {
		t.Fatal("no event types registered")
	}
	return out
}

func compile(t *testing.T, c contract) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.Schema))
	if err != nil {
		t.Fatalf("%s: parse schema: %v", c.Type, err)
	}
	comp := jsonschema.NewCompiler()
	comp.AssertFormat() // date-time etc. are checked, not just annotations
	url := "mem://" + c.File
	if err := comp.AddResource(url, doc); err != nil {
		t.Fatalf("%s: add schema: %v", c.Type, err)
	}
	s, err := comp.Compile(url)
	if err != nil {
		t.Fatalf("%s: compile schema: %v", c.Type, err)
	}
	return s
}

func validate(s *jsonschema.Schema, b []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

var typeRE = regexp.MustCompile(`^opsdesk\.[a-z]+\.[a-z_]+\.v[0-9]+$`)

// TestEventsRoundTripThroughSchemas checks every Go event type against its
// JSON Schema: the example validates, decodes back to the same value, and
// the schema names exactly the Go type's fields.
func TestEventsRoundTripThroughSchemas(t *testing.T) {
	for _, c := range contracts(t) {
		t.Run(c.Type, func(t *testing.T) {
			if !typeRE.MatchString(c.Type) {
				t.Errorf("type %q does not follow opsdesk.<context>.<event>.v<N>", c.Type)
			}
			s := compile(t, c)

			example := c.Example()
			b, err := json.Marshal(example)
			if err != nil {
				t.Fatalf("marshal example: %v", err)
			}
			if err := validate(s, b); err != nil {
				t.Fatalf("example does not match its schema: %v\n%s", err, b)
			}
			back := c.New()
			if err := json.Unmarshal(b, back); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !reflect.DeepEqual(example, back) {
				t.Fatalf("round trip changed the event:\n got %#v\nwant %#v", back, example)
			}

			// A zero payload must not pass: the schema really constrains.
			zero, _ := json.Marshal(c.New())
			if err := validate(s, zero); err == nil {
				t.Errorf("zero payload %s validates; the schema asserts nothing", zero)
			}

			var sch struct {
				Title      string                     `json:"title"`
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
			if err := json.Unmarshal(c.Schema, &sch); err != nil {
				t.Fatal(err)
			}
			if sch.Title != c.Type {
				t.Errorf("schema title %q, want the ce-type %q", sch.Title, c.Type)
			}
			all, required := jsonFields(reflect.TypeOf(example).Elem())
			props := make([]string, 0, len(sch.Properties))
			for p := range sch.Properties {
				props = append(props, p)
			}
			sort.Strings(props)
			sort.Strings(sch.Required)
			if !slices.Equal(props, all) {
				t.Errorf("schema properties %v, Go fields %v", props, all)
			}
			if !slices.Equal(sch.Required, required) {
				t.Errorf("schema required %v, Go fields without omitempty %v", sch.Required, required)
			}
		})
	}
}

// TestSchemaRejectsBadValues spot-checks that constraints are enforced, so
// consumers can rely on them.
func TestSchemaRejectsBadValues(t *testing.T) {
	c := contracts(t)[0]
	s := compile(t, c)
	cases := map[string]func(*ticketv1.TicketCreated){
		"unknown type":     func(e *ticketv1.TicketCreated) { e.Type = "outage" },
		"unknown impact":   func(e *ticketv1.TicketCreated) { e.Impact = "extreme" },
		"bad priority":     func(e *ticketv1.TicketCreated) { e.Priority = "P0" },
		"empty title":      func(e *ticketv1.TicketCreated) { e.Title = "" },
		"long title":       func(e *ticketv1.TicketCreated) { e.Title = strings.Repeat("x", 201) },
		"bad ticket id":    func(e *ticketv1.TicketCreated) { e.TicketID = "tk_nope" },
		"bad number":       func(e *ticketv1.TicketCreated) { e.Number = "1042" },
		"empty requester":  func(e *ticketv1.TicketCreated) { e.Requester = "" },
		"long description": func(e *ticketv1.TicketCreated) { e.Description = strings.Repeat("x", 10001) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			e := c.Example().(*ticketv1.TicketCreated)
			mutate(e)
			b, _ := json.Marshal(e)
			if err := validate(s, b); err == nil {
				t.Fatalf("accepted %s", b)
			}
		})
	}
	// A malformed timestamp is caught because formats are asserted.
	b, _ := json.Marshal(c.Example())
	b = bytes.Replace(b, []byte(`"2025-11-03T09:12:45.123456Z"`), []byte(`"yesterday"`), 1)
	if err := validate(s, b); err == nil {
		t.Fatalf("accepted created_at yesterday: %s", b)
	}
}

// TestAsyncAPIListsEveryEvent checks the AsyncAPI document names every event
// type and points at its schema file.
func TestAsyncAPIListsEveryEvent(t *testing.T) {
	raw, err := os.ReadFile("../asyncapi/opsdesk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AsyncAPI   string `yaml:"asyncapi"`
		Components struct {
			Messages map[string]struct {
				Name    string `yaml:"name"`
				Payload struct {
					Ref string `yaml:"$ref"`
				} `yaml:"payload"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse asyncapi: %v", err)
	}
	if !strings.HasPrefix(doc.AsyncAPI, "3.") {
		t.Errorf("asyncapi version %q, want 3.x", doc.AsyncAPI)
	}
	refs := map[string]string{}
	for _, m := range doc.Components.Messages {
		refs[m.Name] = m.Payload.Ref
	}
	for _, c := range contracts(t) {
		ref, ok := refs[c.Type]
		if !ok {
			t.Errorf("asyncapi has no message named %s", c.Type)
			continue
		}
		if want := "../events/" + c.File; ref != want {
			t.Errorf("%s payload $ref %q, want %q", c.Type, ref, want)
		}
		if _, err := os.Stat(strings.TrimPrefix(ref, "../events/")); err != nil {
			t.Errorf("%s payload $ref %q: %v", c.Type, ref, err)
		}
	}
}

// jsonFields returns the JSON names of a struct's fields, and those without
// omitempty (which the schema must require), both sorted.
func jsonFields(t reflect.Type) (all, required []string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	sort.Strings(all)
	sort.Strings(required)
	return all, required
}
