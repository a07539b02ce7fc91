package domain_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

func groupCreated() identityv1.GroupCreated {
	return identityv1.GroupCreated{GroupID: group1, Name: "Service Desk", Tier: 1, Skills: []string{"m365", "vpn"}, CreatedAt: nowUTC}
}

var groupDeleted = identityv1.GroupDeleted{GroupID: group1, At: nowUTC}

// skills returns n distinct valid skills.
func skills(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("skill-%02d", i)
	}
	return out
}

func TestDecideCreateGroup(t *testing.T) {
	type create struct {
		name   string
		tier   int
		skills []string
	}
	valid := create{name: "Service Desk", tier: 1, skills: []string{"vpn", "m365"}}
	with := func(edit func(*create)) create { c := valid; edit(&c); return c }
	created := func(edit func(*identityv1.GroupCreated)) identityv1.GroupCreated {
		e := groupCreated()
		edit(&e)
		return e
	}
	tests := []struct {
		name  string
		given []any
		when  create
		then
	}{
		{name: "new group, skills sorted", when: valid, then: then{events: []any{groupCreated()}}},
		{
			name: "no skills: an empty list",
			when: with(func(c *create) { c.skills = nil }),
			then: then{events: []any{created(func(e *identityv1.GroupCreated) { e.Skills = []string{} })}},
		},
		{
			name: "tier 3 and skill formats",
			when: with(func(c *create) { c.tier, c.skills = 3, []string{"sap.basis", "m_365", "0day", strings.Repeat("a", 64)} }),
			then: then{events: []any{created(func(e *identityv1.GroupCreated) {
				e.Tier, e.Skills = 3, []string{"0day", strings.Repeat("a", 64), "m_365", "sap.basis"}
			})}},
		},
		{
			name: "tier 2 with 50 skills",
			when: with(func(c *create) { c.tier, c.skills = 2, skills(50) }),
			then: then{events: []any{created(func(e *identityv1.GroupCreated) { e.Tier, e.Skills = 2, skills(50) })}},
		},
		{name: "an existing group", given: []any{groupCreated()}, when: valid, then: then{err: domain.ErrAlreadyExists}},
		{name: "a deleted group's id is not reused", given: []any{groupCreated(), groupDeleted}, when: valid, then: then{err: domain.ErrAlreadyExists}},
		{name: "tier 0", when: with(func(c *create) { c.tier = 0 }), then: then{badFields: []string{"tier"}}},
		{name: "tier 4", when: with(func(c *create) { c.tier = 4 }), then: then{badFields: []string{"tier"}}},
		{name: "negative tier", when: with(func(c *create) { c.tier = -1 }), then: then{badFields: []string{"tier"}}},
		{name: "upper-case skill", when: with(func(c *create) { c.skills = []string{"vpn", "VPN"} }), then: then{badFields: []string{"skills.1"}}},
		{name: "skill starting with a dash", when: with(func(c *create) { c.skills = []string{"-vpn"} }), then: then{badFields: []string{"skills.0"}}},
		{name: "empty skill", when: with(func(c *create) { c.skills = []string{""} }), then: then{badFields: []string{"skills.0"}}},
		{name: "skill with a space", when: with(func(c *create) { c.skills = []string{"m365", "vpn", "active directory"} }), then: then{badFields: []string{"skills.2"}}},
		{name: "skill too long", when: with(func(c *create) { c.skills = []string{strings.Repeat("a", 65)} }), then: then{badFields: []string{"skills.0"}}},
		{name: "duplicate skill by index", when: with(func(c *create) { c.skills = []string{"vpn", "m365", "vpn"} }), then: then{badFields: []string{"skills.2"}}},
		{name: "too many skills", when: with(func(c *create) { c.skills = skills(51) }), then: then{badFields: []string{"skills"}}},
		{
			name: "too many skills, one of them malformed",
			when: with(func(c *create) { c.skills = skills(51); c.skills[3] = "X" }),
			then: then{badFields: []string{"skills", "skills.3"}},
		},
		{name: "blank name", when: with(func(c *create) { c.name = " " }), then: then{badFields: []string{"name"}}},
		{name: "name too long", when: with(func(c *create) { c.name = strings.Repeat("n", 201) }), then: then{badFields: []string{"name"}}},
		{
			name: "every field wrong, in order",
			when: create{name: "", tier: 9, skills: []string{"ok", "Bad", "ok"}},
			then: then{badFields: []string{"name", "tier", "skills.1", "skills.2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideCreateGroup(domain.FoldGroup(tt.given), group1, tt.when.name, tt.when.tier, tt.when.skills, now)
			tt.check(t, got, err)
		})
	}
}

func TestDecideUpdateGroup(t *testing.T) {
	updated := func(name string, tier int, skills ...string) identityv1.GroupUpdated {
		if skills == nil {
			skills = []string{}
		}
		return identityv1.GroupUpdated{GroupID: group1, Name: name, Tier: tier, Skills: skills, At: nowUTC}
	}
	tests := []struct {
		name  string
		given []any
		when  domain.UpdateGroup
		then
	}{
		{name: "nothing given: no events", given: []any{groupCreated()}},
		{
			name:  "the same values, skills in another order: no events",
			given: []any{groupCreated()},
			when:  domain.UpdateGroup{Name: ptr("Service Desk"), Tier: ptr(1), Skills: ptr([]string{"vpn", "m365"})},
		},
		{
			name:  "name only keeps tier and skills",
			given: []any{groupCreated()},
			when:  domain.UpdateGroup{Name: ptr("Service Desk Berlin")},
			then:  then{events: []any{updated("Service Desk Berlin", 1, "m365", "vpn")}},
		},
		{
			name:  "tier only",
			given: []any{groupCreated()},
			when:  domain.UpdateGroup{Tier: ptr(2)},
			then:  then{events: []any{updated("Service Desk", 2, "m365", "vpn")}},
		},
		{
			name:  "skills only, sorted",
			given: []any{groupCreated()},
			when:  domain.UpdateGroup{Skills: ptr([]string{"sap.basis", "networking", "m365"})},
			then:  then{events: []any{updated("Service Desk", 1, "m365", "networking", "sap.basis")}},
		},
		{
			name:  "skills cleared",
			given: []any{groupCreated()},
			when:  domain.UpdateGroup{Skills: ptr([]string{})},
			then:  then{events: []any{updated("Service Desk", 1)}},
		},
		{
			name:  "compares with the state after earlier updates",
			given: []any{groupCreated(), updated("L2", 2, "vpn")},
			when:  domain.UpdateGroup{Name: ptr("L2"), Tier: ptr(2), Skills: ptr([]string{"vpn"})},
		},
		{name: "bad tier", given: []any{groupCreated()}, when: domain.UpdateGroup{Tier: ptr(0)}, then: then{badFields: []string{"tier"}}},
		{name: "blank name", given: []any{groupCreated()}, when: domain.UpdateGroup{Name: ptr("")}, then: then{badFields: []string{"name"}}},
		{name: "bad skill", given: []any{groupCreated()}, when: domain.UpdateGroup{Skills: ptr([]string{"vpn", "V P N"})}, then: then{badFields: []string{"skills.1"}}},
		{name: "duplicate skill", given: []any{groupCreated()}, when: domain.UpdateGroup{Skills: ptr([]string{"vpn", "vpn"})}, then: then{badFields: []string{"skills.1"}}},
		{name: "too many skills", given: []any{groupCreated()}, when: domain.UpdateGroup{Skills: ptr(skills(51))}, then: then{badFields: []string{"skills"}}},
		{name: "a deleted group", given: []any{groupCreated(), groupDeleted}, when: domain.UpdateGroup{Name: ptr("x")}, then: then{err: domain.ErrNotFound}},
		{name: "a missing group", when: domain.UpdateGroup{Name: ptr("x")}, then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.when
			c.At = now
			g := domain.FoldGroup(tt.given)
			before := append([]string(nil), g.Skills...)
			got, err := domain.DecideUpdateGroup(g, c)
			tt.check(t, got, err)
			if !reflect.DeepEqual(append([]string(nil), g.Skills...), before) {
				t.Fatalf("deciding changed the state's skills: %v, was %v", g.Skills, before)
			}
		})
	}
}

func TestDecideDeleteGroup(t *testing.T) {
	tests := []struct {
		name  string
		given []any
		then
	}{
		{name: "an existing group", given: []any{groupCreated()}, then: then{events: []any{groupDeleted}}},
		{name: "an updated group", given: []any{groupCreated(), identityv1.GroupUpdated{GroupID: group1, Name: "L2", Tier: 2, At: nowUTC}}, then: then{events: []any{groupDeleted}}},
		{name: "a deleted group", given: []any{groupCreated(), groupDeleted}, then: then{err: domain.ErrNotFound}},
		{name: "a missing group", then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideDeleteGroup(domain.FoldGroup(tt.given), now)
			tt.check(t, got, err)
		})
	}
}

func TestFoldGroup(t *testing.T) {
	base := domain.Group{ID: group1, Name: "Service Desk", Tier: 1, Skills: []string{"m365", "vpn"}, Version: 1}
	tests := []struct {
		name   string
		given  []any
		want   domain.Group
		exists bool
	}{
		{name: "no events: no group"},
		{name: "created", given: []any{groupCreated()}, want: base, exists: true},
		{
			name:  "skills from the event are sorted",
			given: []any{identityv1.GroupCreated{GroupID: group1, Name: "Service Desk", Tier: 1, Skills: []string{"vpn", "m365"}}},
			want:  base, exists: true,
		},
		{
			name:   "updated",
			given:  []any{groupCreated(), identityv1.GroupUpdated{GroupID: group1, Name: "L2", Tier: 2, Skills: []string{"sap", "networking"}}},
			want:   domain.Group{ID: group1, Name: "L2", Tier: 2, Skills: []string{"networking", "sap"}, Version: 2},
			exists: true,
		},
		{
			name:  "deleted",
			given: []any{groupCreated(), groupDeleted},
			want:  domain.Group{ID: group1, Name: "Service Desk", Tier: 1, Skills: []string{"m365", "vpn"}, Deleted: true, Version: 2},
		},
		{
			name:   "unknown events count as versions",
			given:  []any{groupCreated(), struct{}{}},
			want:   domain.Group{ID: group1, Name: "Service Desk", Tier: 1, Skills: []string{"m365", "vpn"}, Version: 2},
			exists: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := domain.FoldGroup(tt.given)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("FoldGroup = %+v\nwant       %+v", got, tt.want)
			}
			if got.Exists() != tt.exists {
				t.Fatalf("Exists = %v, want %v", got.Exists(), tt.exists)
			}
		})
	}
}
