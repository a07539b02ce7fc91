package ticket

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Limits of the classification fields.
const (
	MaxCategory     = 200
	MaxTags         = 50
	MaxConfigItems  = 100
	MaxWatchers     = 100
	MaxCustomFields = 16 << 10 // bytes of JSON
)

var (
	tagRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.:/-]{0,63}$`)
	itemRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	userIDRE = regexp.MustCompile(`^u_[0-9A-HJKMNP-TV-Z]{26}$`)
)

// NormalizeTags lower-cases, trims, sorts and de-duplicates tags.
func NormalizeTags(tags []string) []string {
	if tags == nil {
		return nil
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		out = append(out, strings.ToLower(strings.TrimSpace(t)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sortedSet sorts and de-duplicates ids.
func sortedSet(ids []string) []string {
	if ids == nil {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// checkClassification validates the fields a create and an update share.
func checkClassification(errs *fields, category *string, tags, items, watchers []string, custom json.RawMessage) {
	if category != nil {
		errs.maxLen("category", *category, MaxCategory)
		if strings.ContainsFunc(*category, unicode.IsControl) {
			errs.add("category", "must be a single line without control characters")
		}
	}
	if len(tags) > MaxTags {
		errs.add("tags", fmt.Sprintf("must hold at most %d tags", MaxTags))
	}
	for i, t := range tags {
		if !tagRE.MatchString(t) {
			errs.add(fmt.Sprintf("tags[%d]", i), "must be 1 to 64 of a-z 0-9 _ . : / -, starting with a letter or digit")
		}
	}
	if len(items) > MaxConfigItems {
		errs.add("config_items", fmt.Sprintf("must hold at most %d items", MaxConfigItems))
	}
	for i, id := range items {
		if !itemRE.MatchString(id) {
			errs.add(fmt.Sprintf("config_items[%d]", i), "must be a configuration item id")
		}
	}
	if len(watchers) > MaxWatchers {
		errs.add("watchers", fmt.Sprintf("must hold at most %d users", MaxWatchers))
	}
	for i, id := range watchers {
		if !userIDRE.MatchString(id) {
			errs.add(fmt.Sprintf("watchers[%d]", i), "must be a user id, u_<ULID>")
		}
	}
	if custom != nil {
		if len(custom) > MaxCustomFields {
			errs.add("custom_fields", fmt.Sprintf("must be at most %d bytes of JSON", MaxCustomFields))
		} else if t := bytes.TrimSpace(custom); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			errs.add("custom_fields", "must be a JSON object")
		}
	}
}

// Update edits a ticket's fields; nil fields stay as they are.
type Update struct {
	Title, Description, Category, Impact, Urgency *string
	Tags, ConfigItems, Watchers                   *[]string
	CustomFields                                  json.RawMessage
}

// DecideUpdate records the fields that change, re-deriving the priority
// when impact or urgency does. Nothing changing decides nothing. A closed
// or cancelled ticket is history and is not edited.
func DecideUpdate(t Ticket, u Update) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	if t.Terminal() {
		return nil, &ConflictError{Reason: "the ticket is " + t.Status + " and can no longer be edited"}
	}
	var errs fields
	if u.Title != nil {
		checkTitle(&errs, *u.Title)
	}
	if u.Description != nil {
		errs.maxLen("description", *u.Description, MaxDescription)
	}
	if u.Impact != nil && !levels[*u.Impact] {
		errs.add("impact", "must be one of low, medium, high")
	}
	if u.Urgency != nil && !levels[*u.Urgency] {
		errs.add("urgency", "must be one of low, medium, high")
	}
	var tags, items, watchers []string
	if u.Tags != nil {
		tags = NormalizeTags(*u.Tags)
	}
	if u.ConfigItems != nil {
		items = sortedSet(*u.ConfigItems)
	}
	if u.Watchers != nil {
		watchers = sortedSet(*u.Watchers)
	}
	checkClassification(&errs, u.Category, tags, items, watchers, u.CustomFields)
	if err := errs.err(); err != nil {
		return nil, err
	}

	var e ticketv1.TicketUpdated
	changed := false
	str := func(cur string, v *string) *string {
		if v == nil || *v == cur {
			return nil
		}
		changed = true
		return v
	}
	list := func(cur []string, set bool, v []string) *[]string {
		if !set || slices.Equal(cur, v) {
			return nil
		}
		changed = true
		if v == nil {
			v = []string{}
		}
		return &v
	}
	e.Title = str(t.Title, u.Title)
	e.Description = str(t.Description, u.Description)
	e.Category = str(t.Category, u.Category)
	e.Impact = str(t.Impact, u.Impact)
	e.Urgency = str(t.Urgency, u.Urgency)
	e.Tags = list(t.Tags, u.Tags != nil, tags)
	e.ConfigItems = list(t.ConfigItems, u.ConfigItems != nil, items)
	e.Watchers = list(t.Watchers, u.Watchers != nil, watchers)
	if u.CustomFields != nil && !jsonEqual(t.CustomFields, u.CustomFields) {
		e.CustomFields, changed = compact(u.CustomFields), true
	}
	if !changed {
		return nil, nil
	}
	if e.Impact != nil || e.Urgency != nil {
		impact, urgency := t.Impact, t.Urgency
		if e.Impact != nil {
			impact = *e.Impact
		}
		if e.Urgency != nil {
			urgency = *e.Urgency
		}
		if p, _ := Priority(impact, urgency); p != t.Priority {
			e.Priority = &p
		}
	}
	return []any{e}, nil
}

func checkTitle(errs *fields, title string) {
	switch n := utf8.RuneCountInString(title); {
	case strings.TrimSpace(title) == "":
		errs.add("title", "must not be blank")
	case n > MaxTitle:
		errs.add("title", fmt.Sprintf("must be at most %d characters", MaxTitle))
	case strings.ContainsFunc(title, unicode.IsControl):
		errs.add("title", "must be a single line without control characters")
	}
}

// compact returns JSON without insignificant space, so equal objects are
// stored alike.
func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x) // maps marshal with sorted keys
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
