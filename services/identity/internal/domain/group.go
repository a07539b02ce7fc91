package domain

import (
	"fmt"
	"slices"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// Group is the state of a support group (team).
type Group struct {
	ID, Name string
	Tier     int
	Skills   []string
	Deleted  bool
	Version  uint64
}

// Exists reports whether the group was created and not deleted.
func (g Group) Exists() bool { return g.ID != "" && !g.Deleted }

// FoldGroup rebuilds a group from its events' payloads.
func FoldGroup(events []any) Group {
	var g Group
	for _, e := range events {
		switch p := e.(type) {
		case identityv1.GroupCreated:
			g = Group{ID: p.GroupID, Name: p.Name, Tier: p.Tier, Skills: sorted(p.Skills)}
		case identityv1.GroupUpdated:
			g.Name, g.Tier, g.Skills = p.Name, p.Tier, sorted(p.Skills)
		case identityv1.GroupDeleted:
			g.Deleted = true
		}
		g.Version++
	}
	return g
}

func checkGroup(f *fields, name string, tier int, skills []string) {
	checkName(f, "name", name)
	if tier < 1 || tier > 3 {
		f.bad("tier", "must be 1, 2 or 3")
	}
	if len(skills) > MaxSkills {
		f.bad("skills", "must list at most %d skills", MaxSkills)
	}
	seen := map[string]bool{}
	for i, s := range skills {
		switch {
		case !skillRE.MatchString(s):
			f.bad(fmt.Sprintf("skills.%d", i), "must be 1 to 64 of a-z, 0-9, ., _ and -")
		case seen[s]:
			f.bad(fmt.Sprintf("skills.%d", i), "is listed twice")
		}
		seen[s] = true
	}
}

// DecideCreateGroup returns GroupCreated.
func DecideCreateGroup(g Group, id, name string, tier int, skills []string, now time.Time) ([]any, error) {
	if g.ID != "" {
		return nil, ErrAlreadyExists
	}
	var f fields
	checkGroup(&f, name, tier, skills)
	if err := f.err(); err != nil {
		return nil, err
	}
	return []any{identityv1.GroupCreated{GroupID: id, Name: name, Tier: tier, Skills: sorted(skills), CreatedAt: at(now)}}, nil
}

// UpdateGroup changes a group; nil fields stay.
type UpdateGroup struct {
	Name   *string
	Tier   *int
	Skills *[]string
	At     time.Time
}

// DecideUpdateGroup returns GroupUpdated, or nothing if nothing changes.
func DecideUpdateGroup(g Group, c UpdateGroup) ([]any, error) {
	if !g.Exists() {
		return nil, ErrNotFound
	}
	next := identityv1.GroupUpdated{GroupID: g.ID, Name: g.Name, Tier: g.Tier, Skills: g.Skills, At: at(c.At)}
	if c.Name != nil {
		next.Name = *c.Name
	}
	if c.Tier != nil {
		next.Tier = *c.Tier
	}
	if c.Skills != nil {
		next.Skills = *c.Skills
	}
	var f fields
	checkGroup(&f, next.Name, next.Tier, next.Skills)
	if err := f.err(); err != nil {
		return nil, err
	}
	next.Skills = sorted(next.Skills)
	if next.Name == g.Name && next.Tier == g.Tier && slices.Equal(next.Skills, g.Skills) {
		return nil, nil
	}
	return []any{next}, nil
}

// DecideDeleteGroup removes a group.
func DecideDeleteGroup(g Group, now time.Time) ([]any, error) {
	if !g.Exists() {
		return nil, ErrNotFound
	}
	return []any{identityv1.GroupDeleted{GroupID: g.ID, At: at(now)}}, nil
}
