package events_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/opsdesk/opsdesk/api/events"
	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	intakev1 "github.com/opsdesk/opsdesk/api/events/intake/v1"
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

// contextPackage is one context package's event types and embedded schemas;
// Dir is its directory below api/events.
type contextPackage struct {
	Dir     string
	Types   []events.EventType
	Schemas fs.FS
}

// packages lists every context package. A new context package adds itself
// here.
func packages() []contextPackage {
	return []contextPackage{
		{Dir: "ticket/v1", Types: ticketv1.EventTypes(), Schemas: ticketv1.Schemas},
		{Dir: "identity/v1", Types: identityv1.EventTypes(), Schemas: identityv1.Schemas},
		{Dir: "intake/v1", Types: intakev1.EventTypes(), Schemas: intakev1.Schemas},
	}
}

// contracts gathers every event type of every context package.
func contracts(t *testing.T) []contract {
	t.Helper()
	var out []contract
	seen := map[string]bool{}
	for _, p := range packages() {
		for _, et := range p.Types {
			if seen[et.Type] {
				t.Fatalf("%s registered twice", et.Type)
			}
			seen[et.Type] = true
			b, err := fs.ReadFile(p.Schemas, et.Schema)
			if err != nil {
				t.Fatalf("%s: schema %s: %v", et.Type, et.Schema, err)
			}
			out = append(out, contract{Type: et.Type, New: et.New, Example: et.Example, Schema: b, File: p.Dir + "/" + et.Schema})
		}
	}
	if len(out) == 0 {
		t.Fatal("no event types registered")
	}
	return out
}

// contractFor returns the contract of one ce-type.
func contractFor(t *testing.T, typ string) contract {
	t.Helper()
	for _, c := range contracts(t) {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("no contract for %s", typ)
	return contract{}
}

// TestEverySchemaFileIsRegistered checks no embedded schema is left without
// an event type (a typo in EventType.Schema would otherwise hide one).
func TestEverySchemaFileIsRegistered(t *testing.T) {
	for _, p := range packages() {
		files, err := fs.Glob(p.Schemas, "*.schema.json")
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		for _, et := range p.Types {
			used[et.Schema] = true
		}
		for _, f := range files {
			if !used[f] {
				t.Errorf("%s/%s: no event type names this schema", p.Dir, f)
			}
		}
	}
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
				Schema     string                     `json:"$schema"`
				ID         string                     `json:"$id"`
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
			if want := "https://opsdesk.dev/schemas/events/" + c.File; sch.ID != want {
				t.Errorf("schema $id %q, want %q", sch.ID, want)
			}
			if sch.Schema != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("schema $schema %q, want draft 2020-12", sch.Schema)
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
	c := contractFor(t, ticketv1.TypeTicketCreated)
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

// mutation changes an example payload (a pointer) before it is validated.
type mutation struct {
	name   string
	mutate func(any)
}

// mut adapts a typed mutation of a *T payload.
func mut[T any](name string, f func(*T)) mutation {
	return mutation{name, func(v any) { f(v.(*T)) }}
}

// checkMutations validates each mutated example of typ against its schema
// and wants it accepted or rejected.
func checkMutations(t *testing.T, typ string, accept bool, ms ...mutation) {
	t.Helper()
	c := contractFor(t, typ)
	s := compile(t, c)
	for _, m := range ms {
		t.Run(typ+"/"+m.name, func(t *testing.T) {
			e := c.Example()
			m.mutate(e)
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			err = validate(s, b)
			if accept && err != nil {
				t.Fatalf("rejected %s: %v", b, err)
			}
			if !accept && err == nil {
				t.Fatalf("accepted %s", b)
			}
		})
	}
}

// TestIdentitySchemasRejectBadValues spot-checks the identity schemas'
// constraints.
func TestIdentitySchemasRejectBadValues(t *testing.T) {
	type tc = identityv1.TenantCreated
	checkMutations(t, identityv1.TypeTenantCreated, false,
		mut("bad tenant id", func(e *tc) { e.TenantID = "t_01k94fjac06ahqfz5qk487kf97" }),
		mut("ticket id as tenant", func(e *tc) { e.TenantID = "tk_01K94FJAC06AHQFZ5QK487KF97" }),
		mut("ULID with I", func(e *tc) { e.TenantID = "t_01K94FJAC06AHQFZ5QK487KFI7" }),
		mut("upper-case slug", func(e *tc) { e.Slug = "Northwind" }),
		mut("slug with trailing hyphen", func(e *tc) { e.Slug = "northwind-" }),
		mut("slug of 41", func(e *tc) { e.Slug = strings.Repeat("a", 41) }),
		mut("unknown kind", func(e *tc) { e.Kind = "reseller" }),
		mut("department without parent", func(e *tc) { e.ParentID = "" }),
		mut("provider with parent", func(e *tc) { e.Kind = identityv1.KindProvider }),
		mut("enterprise with parent", func(e *tc) { e.Kind = identityv1.KindEnterprise }),
		mut("bad parent id", func(e *tc) { e.ParentID = "u_01K94FEN600NX9YM94KCH3DVV7" }),
		mut("empty name", func(e *tc) { e.Name = "" }),
		mut("long name", func(e *tc) { e.Name = strings.Repeat("x", 201) }),
		mut("offset as time zone", func(e *tc) { e.TimeZone = "+02:00" }),
		mut("empty time zone", func(e *tc) { e.TimeZone = "" }),
		mut("long time zone", func(e *tc) { e.TimeZone = strings.Repeat("A", 65) }),
		mut("POSIX locale", func(e *tc) { e.Locale = "en_US.UTF-8" }),
		mut("empty locale", func(e *tc) { e.Locale = "" }),
	)
	type uo = identityv1.UserOnboarded
	checkMutations(t, identityv1.TypeUserOnboarded, false,
		mut("no roles", func(e *uo) { e.Roles = []string{} }),
		mut("nil roles", func(e *uo) { e.Roles = nil }),
		mut("unknown role", func(e *uo) { e.Roles = []string{"root"} }),
		mut("duplicate role", func(e *uo) { e.Roles = []string{"agent", "agent"} }),
		mut("bad group id", func(e *uo) { e.Groups = []string{"networking"} }),
		mut("duplicate group", func(e *uo) { e.Groups = []string{e.Groups[0], e.Groups[0]} }),
		mut("bad email", func(e *uo) { e.Email = "ada" }),
		mut("long email", func(e *uo) { e.Email = strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 128) + "example" }),
		mut("bad user id", func(e *uo) { e.UserID = "u_nope" }),
	)
	checkMutations(t, identityv1.TypeUserGroupsChanged, false,
		// A nil slice marshals as null: producers send [] for no groups.
		mut("null groups", func(e *identityv1.UserGroupsChanged) { e.Groups = nil }),
	)
	checkMutations(t, identityv1.TypeUserAccessGranted, false,
		mut("unknown role", func(e *identityv1.UserAccessGranted) { e.Role = "owner" }),
		mut("bad client tenant", func(e *identityv1.UserAccessGranted) { e.ClientTenantID = "northwind" }),
	)
	checkMutations(t, identityv1.TypeUserSuspended, false,
		mut("long reason", func(e *identityv1.UserSuspended) { e.Reason = strings.Repeat("x", 201) }),
	)
	checkMutations(t, identityv1.TypePasswordChanged, false,
		mut("unknown reason", func(e *identityv1.PasswordChanged) { e.Reason = "forgotten" }),
	)
	checkMutations(t, identityv1.TypeSessionRevoked, false,
		mut("empty reason", func(e *identityv1.SessionRevoked) { e.Reason = "" }),
		mut("bad session id", func(e *identityv1.SessionRevoked) { e.SessionID = "01K94F7AT0HYPPCWB1G3FX2M1J" }),
	)
	checkMutations(t, identityv1.TypeSessionsRevoked, false,
		mut("empty reason", func(e *identityv1.SessionsRevoked) { e.Reason = "" }),
	)
	type prr = identityv1.PasswordResetRequested
	checkMutations(t, identityv1.TypePasswordResetRequested, false,
		mut("padded token", func(e *prr) { e.SealedToken += "==" }),
		mut("std base64 token", func(e *prr) { e.SealedToken = "ab+/cd" }),
		mut("empty token", func(e *prr) { e.SealedToken = "" }),
		mut("bad reset id", func(e *prr) { e.ResetID = "pr_" }),
	)
	checkMutations(t, identityv1.TypeEmailClaimed, false,
		mut("not lower-cased", func(e *identityv1.EmailClaimed) { e.Email = "Ada.Lovelace@northwind.example" }),
	)
	type gc = identityv1.GroupCreated
	checkMutations(t, identityv1.TypeGroupCreated, false,
		mut("tier 0", func(e *gc) { e.Tier = 0 }),
		mut("tier 4", func(e *gc) { e.Tier = 4 }),
		mut("null skills", func(e *gc) { e.Skills = nil }),
		mut("upper-case skill", func(e *gc) { e.Skills = []string{"M365"} }),
		mut("empty skill", func(e *gc) { e.Skills = []string{""} }),
		mut("long skill", func(e *gc) { e.Skills = []string{strings.Repeat("a", 65)} }),
		mut("duplicate skill", func(e *gc) { e.Skills = []string{"vpn", "vpn"} }),
	)
	type atc = identityv1.APITokenCreated
	checkMutations(t, identityv1.TypeAPITokenCreated, false,
		mut("no scopes", func(e *atc) { e.Scopes = []string{} }),
		mut("bad scope", func(e *atc) { e.Scopes = []string{"tickets"} }),
		mut("upper-case hash", func(e *atc) { e.SecretHash = strings.ToUpper(e.SecretHash) }),
		mut("short hash", func(e *atc) { e.SecretHash = e.SecretHash[:63] }),
		mut("bad token id", func(e *atc) { e.TokenID = "t_01K94F95D0PVG7SZKRKNDGY4EW" }),
		mut("bad creator", func(e *atc) { e.CreatedBy = "admin" }),
	)

	// Malformed timestamps are caught because formats are asserted.
	for _, typ := range []string{identityv1.TypeAPITokenCreated, identityv1.TypeSessionsRevoked} {
		c := contractFor(t, typ)
		b, _ := json.Marshal(c.Example())
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if s, ok := v.(string); !ok || !strings.HasPrefix(s, "2025-") && !strings.HasPrefix(s, "2026-") {
				continue
			}
			m[k] = "yesterday"
			bad, _ := json.Marshal(m)
			if err := validate(compile(t, c), bad); err == nil {
				t.Errorf("%s: accepted %s yesterday: %s", typ, k, bad)
			}
			m[k] = v
		}
	}
}

// TestIdentitySchemasAcceptEdgeValues checks the constraints are not
// tighter than the Go types and the domain allow.
func TestIdentitySchemasAcceptEdgeValues(t *testing.T) {
	type tc = identityv1.TenantCreated
	checkMutations(t, identityv1.TypeTenantCreated, true,
		mut("root provider, not operator", func(e *tc) {
			e.Kind, e.ParentID, e.Operator = identityv1.KindProvider, "", false
		}),
		mut("root enterprise", func(e *tc) { e.Kind, e.ParentID = identityv1.KindEnterprise, "" }),
		mut("client of a provider", func(e *tc) { e.Kind = identityv1.KindClient }),
		mut("one-letter slug", func(e *tc) { e.Slug = "a" }),
		mut("slug of 40", func(e *tc) { e.Slug = strings.Repeat("a", 40) }),
		mut("UTC", func(e *tc) { e.TimeZone = "UTC" }),
		mut("three-part zone", func(e *tc) { e.TimeZone = "America/Argentina/Buenos_Aires" }),
		mut("Etc zone", func(e *tc) { e.TimeZone = "Etc/GMT+5" }),
		mut("hyphenated zone", func(e *tc) { e.TimeZone = "America/Port-au-Prince" }),
		mut("script locale", func(e *tc) { e.Locale = "zh-Hant-TW" }),
		mut("language-only locale", func(e *tc) { e.Locale = "fr" }),
	)
	checkMutations(t, identityv1.TypeUserOnboarded, true,
		mut("no groups", func(e *identityv1.UserOnboarded) { e.Groups = nil }),
		mut("every role", func(e *identityv1.UserOnboarded) {
			e.Roles = []string{identityv1.RoleRequester, identityv1.RoleAgent, identityv1.RoleSupervisor, identityv1.RoleAdmin}
		}),
	)
	checkMutations(t, identityv1.TypeUserGroupsChanged, true,
		mut("left every group", func(e *identityv1.UserGroupsChanged) { e.Groups = []string{} }),
	)
	checkMutations(t, identityv1.TypeUserSuspended, true,
		mut("no reason", func(e *identityv1.UserSuspended) { e.Reason = "" }),
	)
	checkMutations(t, identityv1.TypeGroupCreated, true,
		mut("no skills", func(e *identityv1.GroupCreated) { e.Skills = []string{} }),
		mut("tier 3", func(e *identityv1.GroupCreated) { e.Tier = 3 }),
	)
	checkMutations(t, identityv1.TypeAPITokenCreated, true,
		mut("never expires", func(e *identityv1.APITokenCreated) { e.ExpiresAt = time.Time{} }),
		mut("nested scope", func(e *identityv1.APITokenCreated) { e.Scopes = []string{"admin:dead_letters:replay"} }),
	)
	for _, r := range []string{identityv1.PasswordReasonSet, identityv1.PasswordReasonReset, identityv1.PasswordReasonChanged} {
		checkMutations(t, identityv1.TypePasswordChanged, true,
			mut(r, func(e *identityv1.PasswordChanged) { e.Reason = r }))
	}
}

// TestTicketSchemasRejectBadValues spot-checks the ticket lifecycle,
// collaboration and intake settings schemas' constraints.
func TestTicketSchemasRejectBadValues(t *testing.T) {
	type tc = ticketv1.TicketCreated
	checkMutations(t, ticketv1.TypeTicketCreated, false,
		mut("upper-case tag", func(e *tc) { e.Tags = []string{"Printer"} }),
		mut("tag with a space", func(e *tc) { e.Tags = []string{"floor 3"} }),
		mut("long tag", func(e *tc) { e.Tags = []string{strings.Repeat("a", 65)} }),
		mut("duplicate tag", func(e *tc) { e.Tags = []string{"printer", "printer"} }),
		mut("51 tags", func(e *tc) { e.Tags = numbered("t", 51) }),
		mut("101 config items", func(e *tc) { e.ConfigItems = numbered("ci", 101) }),
		mut("empty config item", func(e *tc) { e.ConfigItems = []string{""} }),
		mut("config item with a space", func(e *tc) { e.ConfigItems = []string{"ci 1"} }),
		mut("bad watcher", func(e *tc) { e.Watchers = []string{"grace@example.com"} }),
		mut("duplicate watcher", func(e *tc) { e.Watchers = []string{e.Watchers[0], e.Watchers[0]} }),
		mut("custom fields not an object", func(e *tc) { e.CustomFields = json.RawMessage(`["a"]`) }),
		mut("bad follow-up", func(e *tc) { e.FollowUpOf = "OPS-1001" }),
		mut("message id in angle brackets", func(e *tc) { e.MessageID = "<abc@mail.example.com>" }),
		mut("message id with a space", func(e *tc) { e.MessageID = "abc @mail.example.com" }),
		mut("long category", func(e *tc) { e.Category = strings.Repeat("x", 201) }),
	)
	type tu = ticketv1.TicketUpdated
	checkMutations(t, ticketv1.TypeTicketUpdated, false,
		mut("nothing set", func(e *tu) { *e = ticketv1.TicketUpdated{} }),
		mut("priority alone", func(e *tu) { *e = ticketv1.TicketUpdated{Priority: new(ticketv1.PriorityP1)} }),
		mut("priority with the title only", func(e *tu) { e.Impact, e.Urgency = nil, nil }),
		mut("empty title", func(e *tu) { e.Title = new("") }),
		mut("unknown impact", func(e *tu) { e.Impact = new("extreme") }),
		mut("bad priority", func(e *tu) { e.Priority = new("P0") }),
		mut("null tags", func(e *tu) { e.Tags = new([]string(nil)) }),
		mut("bad tag", func(e *tu) { e.Tags = new([]string{"-printer"}) }),
		mut("bad watcher", func(e *tu) { e.Watchers = new([]string{"u_nope"}) }),
		mut("custom fields not an object", func(e *tu) { e.CustomFields = json.RawMessage(`42`) }),
	)
	checkMutations(t, ticketv1.TypeTicketOpened, false,
		mut("unknown from", func(e *ticketv1.TicketOpened) { e.From = "assigned" }),
		mut("empty from", func(e *ticketv1.TicketOpened) { e.From = "" }),
		mut("upper-case from", func(e *ticketv1.TicketOpened) { e.From = "NEW" }),
	)
	checkMutations(t, ticketv1.TypeTicketWorkStarted, false,
		mut("unknown cause", func(e *ticketv1.TicketWorkStarted) { e.Cause = "timer" }),
	)
	type tp = ticketv1.TicketPended
	checkMutations(t, ticketv1.TypeTicketPended, false,
		mut("unknown reason", func(e *tp) { e.Reason = "awaiting_godot" }),
		mut("no reason", func(e *tp) { e.Reason = "" }),
		mut("long note", func(e *tp) { e.Note = strings.Repeat("x", 10001) }),
	)
	type tr = ticketv1.TicketResolved
	checkMutations(t, ticketv1.TypeTicketResolved, false,
		mut("unknown code", func(e *tr) { e.Code = "solved" }),
		mut("no note", func(e *tr) { e.Note = "" }),
		mut("bad from", func(e *tr) { e.From = "done" }),
	)
	checkMutations(t, ticketv1.TypeTicketClosed, false,
		mut("unknown reason", func(e *ticketv1.TicketClosed) { e.Reason = "timeout" }),
	)
	checkMutations(t, ticketv1.TypeTicketReopened, false,
		mut("unknown cause", func(e *ticketv1.TicketReopened) { e.Cause = "alerts_fired" }),
		mut("long reason", func(e *ticketv1.TicketReopened) { e.Reason = strings.Repeat("x", 1001) }),
	)
	type cm = ticketv1.TicketCommented
	checkMutations(t, ticketv1.TypeTicketCommented, false,
		mut("empty body", func(e *cm) { e.Body = "" }),
		mut("body over 64 KiB", func(e *cm) { e.Body = strings.Repeat("x", 65537) }),
		mut("bad comment id", func(e *cm) { e.CommentID = "c_01k94he9a82s0rq7946kj6brag" }),
		mut("attachment id as comment id", func(e *cm) { e.CommentID = "at_01K94HE9A82S0RQ7946KJ6BRAG" }),
		mut("unknown role", func(e *cm) { e.AuthorRole = "admin" }),
		mut("internal note by requester", func(e *cm) { e.AuthorRole = ticketv1.AuthorRequester }),
		mut("empty channel", func(e *cm) { e.Channel = "" }),
		mut("long channel", func(e *cm) { e.Channel = strings.Repeat("x", 33) }),
		mut("bad attachment id", func(e *cm) { e.AttachmentIDs = []string{"bl_01K94K1HY86BKRZBE1MR3CP3XK"} }),
	)
	checkMutations(t, ticketv1.TypeTicketFirstResponded, false,
		mut("bad agent", func(e *ticketv1.TicketFirstResponded) { e.AgentID = "grace" }),
	)
	type aa = ticketv1.TicketAttachmentAdded
	checkMutations(t, ticketv1.TypeTicketAttachmentAdded, false,
		mut("upper-case sha256", func(e *aa) { e.SHA256 = strings.ToUpper(e.SHA256) }),
		mut("short sha256", func(e *aa) { e.SHA256 = e.SHA256[:63] }),
		mut("negative size", func(e *aa) { e.Size = -1 }),
		mut("bad blob id", func(e *aa) { e.BlobID = "01K94K1HY86BKRZBE1MR3CP3XK" }),
		mut("bad attachment id", func(e *aa) { e.AttachmentID = "at_x" }),
		mut("empty filename", func(e *aa) { e.Filename = "" }),
		mut("filename with a directory", func(e *aa) { e.Filename = "../etc/passwd" }),
		mut("filename with a backslash", func(e *aa) { e.Filename = `C:\fuser.jpg` }),
		mut("filename with NUL", func(e *aa) { e.Filename = "a\x00.jpg" }),
		mut("long filename", func(e *aa) { e.Filename = strings.Repeat("x", 256) }),
		mut("content type without subtype", func(e *aa) { e.ContentType = "image" }),
	)
	checkMutations(t, ticketv1.TypeTicketLinked, false,
		mut("unknown kind", func(e *ticketv1.TicketLinked) { e.Kind = "blocks" }),
		mut("number as target", func(e *ticketv1.TicketLinked) { e.Target = e.TargetNumber }),
		mut("bad target number", func(e *ticketv1.TicketLinked) { e.TargetNumber = "ops-1038" }),
	)
	checkMutations(t, ticketv1.TypeTicketUnlinked, false,
		mut("unknown kind", func(e *ticketv1.TicketUnlinked) { e.Kind = "sibling" }),
	)
	checkMutations(t, ticketv1.TypeTicketMerged, false,
		mut("bad into", func(e *ticketv1.TicketMerged) { e.Into = "OPS-1038" }),
		mut("empty requester", func(e *ticketv1.TicketMerged) { e.Requester = "" }),
	)
	type sr = ticketv1.TicketSatisfactionRated
	checkMutations(t, ticketv1.TypeTicketSatisfactionRated, false,
		mut("rating 0", func(e *sr) { e.Rating = 0 }),
		mut("rating 6", func(e *sr) { e.Rating = 6 }),
		mut("resolution 0", func(e *sr) { e.Resolution = 0 }),
		mut("long comment", func(e *sr) { e.Comment = strings.Repeat("x", 2001) }),
		mut("bad rater", func(e *sr) { e.RaterID = "ada@example.com" }),
	)
	type ar = ticketv1.TicketAlertReceived
	checkMutations(t, ticketv1.TypeTicketAlertReceived, false,
		mut("empty fingerprint", func(e *ar) { e.Fingerprint = "" }),
		mut("empty severity", func(e *ar) { e.Severity = "" }),
		mut("raw severity", func(e *ar) { e.Severity = "warning" }),
		mut("long fingerprint", func(e *ar) { e.Fingerprint = strings.Repeat("f", 129) }),
		mut("long source", func(e *ar) { e.Source = strings.Repeat("s", 65) }),
		mut("65 labels", func(e *ar) {
			e.Labels = map[string]string{}
			for _, n := range numbered("l", 65) {
				e.Labels[n] = "x"
			}
		}),
		mut("empty label name", func(e *ar) { e.Labels[""] = "x" }),
		mut("long title", func(e *ar) { e.Title = strings.Repeat("x", 201) }),
		mut("relative url", func(e *ar) { e.URL = "/alerts/1" }),
	)
	checkMutations(t, ticketv1.TypeTicketRequesterIdentified, false,
		mut("no requester", func(e *ticketv1.TicketRequesterIdentified) { e.RequesterID = "" }),
	)
	type su = intakev1.SettingsUpdated
	checkMutations(t, intakev1.TypeSettingsUpdated, false,
		mut("negative reopen window", func(e *su) { e.ReopenWindowDays = -1 }),
		mut("reopen window over a year", func(e *su) { e.ReopenWindowDays = 366 }),
		mut("auto close over a year", func(e *su) { e.AutoCloseDays = 366 }),
		mut("unknown policy", func(e *su) { e.UnknownSenders = "drop" }),
		mut("bad address", func(e *su) { e.InboundAddresses = []string{"help"} }),
		mut("duplicate address", func(e *su) { e.InboundAddresses = []string{"help@acme.example", "help@acme.example"} }),
		mut("21 addresses", func(e *su) {
			e.InboundAddresses = nil
			for _, n := range numbered("help", 21) {
				e.InboundAddresses = append(e.InboundAddresses, n+"@acme.example")
			}
		}),
		mut("schema not an object", func(e *su) { e.CustomFieldsSchema = json.RawMessage(`"object"`) }),
	)

	// Malformed timestamps are caught because formats are asserted.
	for _, typ := range []string{ticketv1.TypeTicketResolved, ticketv1.TypeTicketAlertReceived, intakev1.TypeSettingsUpdated} {
		c := contractFor(t, typ)
		b, _ := json.Marshal(c.Example())
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if s, ok := v.(string); !ok || !strings.HasPrefix(s, "2025-") {
				continue
			}
			m[k] = "yesterday"
			bad, _ := json.Marshal(m)
			if err := validate(compile(t, c), bad); err == nil {
				t.Errorf("%s: accepted %s yesterday: %s", typ, k, bad)
			}
			m[k] = v
		}
	}
}

// TestTicketSchemasAcceptEdgeValues checks the ticket schemas are not
// tighter than the Go types and the domain allow.
func TestTicketSchemasAcceptEdgeValues(t *testing.T) {
	type tc = ticketv1.TicketCreated
	checkMutations(t, ticketv1.TypeTicketCreated, true,
		mut("none of the new fields", func(e *tc) {
			e.Category, e.Tags, e.ConfigItems, e.Watchers = "", nil, nil, nil
			e.CustomFields, e.FollowUpOf, e.MessageID = nil, "", ""
		}),
		mut("50 tags", func(e *tc) { e.Tags = numbered("t", 50) }),
		mut("namespaced tag", func(e *tc) { e.Tags = []string{"env:prod", "site/berlin-2", "v1.2_x"} }),
		mut("empty custom fields", func(e *tc) { e.CustomFields = json.RawMessage(`{}`) }),
	)
	type tu = ticketv1.TicketUpdated
	checkMutations(t, ticketv1.TypeTicketUpdated, true,
		mut("only the title", func(e *tu) { *e = ticketv1.TicketUpdated{Title: new("Printer fixed?")} }),
		mut("description cleared", func(e *tu) { *e = ticketv1.TicketUpdated{Description: new("")} }),
		mut("category cleared", func(e *tu) { *e = ticketv1.TicketUpdated{Category: new("")} }),
		mut("every tag removed", func(e *tu) { *e = ticketv1.TicketUpdated{Tags: new([]string{})} }),
		mut("impact, priority unchanged", func(e *tu) { *e = ticketv1.TicketUpdated{Impact: new(ticketv1.LevelLow)} }),
		mut("urgency and priority", func(e *tu) {
			*e = ticketv1.TicketUpdated{Urgency: new(ticketv1.LevelLow), Priority: new(ticketv1.PriorityP4)}
		}),
		mut("custom fields only", func(e *tu) { *e = ticketv1.TicketUpdated{CustomFields: json.RawMessage(`{}`)} }),
	)
	for _, s := range []string{
		ticketv1.StatusNew, ticketv1.StatusOpen, ticketv1.StatusInProgress, ticketv1.StatusPending,
		ticketv1.StatusResolved, ticketv1.StatusClosed, ticketv1.StatusCancelled,
	} {
		checkMutations(t, ticketv1.TypeTicketCancelled, true,
			mut("from "+s, func(e *ticketv1.TicketCancelled) { e.From = s }))
	}
	for _, k := range []string{
		ticketv1.LinkParent, ticketv1.LinkChild, ticketv1.LinkDuplicateOf, ticketv1.LinkDuplicatedBy,
		ticketv1.LinkCausedBy, ticketv1.LinkCauses, ticketv1.LinkRelated, ticketv1.LinkFollowUpOf, ticketv1.LinkFollowedUpBy,
	} {
		checkMutations(t, ticketv1.TypeTicketLinked, true,
			mut(k, func(e *ticketv1.TicketLinked) { e.Kind = k }))
	}
	for _, r := range []string{ticketv1.CloseManual, ticketv1.CloseAuto, ticketv1.CloseMerged} {
		checkMutations(t, ticketv1.TypeTicketClosed, true,
			mut(r, func(e *ticketv1.TicketClosed) { e.Reason = r }))
	}
	type cm = ticketv1.TicketCommented
	checkMutations(t, ticketv1.TypeTicketCommented, true,
		mut("public reply by an unknown requester by mail", func(e *cm) {
			e.Internal, e.AuthorID, e.AuthorRole, e.Channel = false, "", ticketv1.AuthorRequester, ticketv1.ChannelEmail
			e.Author = "Ada Lovelace <ada@example.com>"
		}),
		mut("system note", func(e *cm) { e.AuthorID, e.AuthorRole, e.Author = "", ticketv1.AuthorSystem, "OpsDesk" }),
		mut("body of 64 KiB", func(e *cm) { e.Body = strings.Repeat("x", 65536) }),
		mut("no attachments", func(e *cm) { e.AttachmentIDs = nil }),
	)
	type aa = ticketv1.TicketAttachmentAdded
	checkMutations(t, ticketv1.TypeTicketAttachmentAdded, true,
		mut("empty file", func(e *aa) { e.Size = 0 }),
		mut("sniffed text", func(e *aa) { e.ContentType = "text/plain; charset=utf-8" }),
		mut("vendor type", func(e *aa) {
			e.ContentType = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
		}),
		mut("public, listed, loose", func(e *aa) { e.Internal, e.Inline, e.CommentID = false, false, "" }),
	)
	for r := 1; r <= 5; r++ {
		checkMutations(t, ticketv1.TypeTicketSatisfactionRated, true,
			mut(strconv.Itoa(r), func(e *ticketv1.TicketSatisfactionRated) { e.Rating = r }))
	}
	checkMutations(t, ticketv1.TypeTicketAlertReceived, true,
		mut("bare alert", func(e *ticketv1.TicketAlertReceived) { e.GroupKey, e.Labels, e.URL = "", nil, "" }),
	)
	type su = intakev1.SettingsUpdated
	checkMutations(t, intakev1.TypeSettingsUpdated, true,
		mut("zero days", func(e *su) { e.ReopenWindowDays, e.AutoCloseDays = 0, 0 }),
		mut("a year", func(e *su) { e.ReopenWindowDays, e.AutoCloseDays = 365, 365 }),
		mut("no custom fields, no addresses", func(e *su) { e.CustomFieldsSchema, e.InboundAddresses = nil, nil }),
		mut("reject", func(e *su) { e.UnknownSenders = intakev1.UnknownSendersReject }),
	)
}

// numbered returns n distinct valid tokens prefix0, prefix1, ...
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
