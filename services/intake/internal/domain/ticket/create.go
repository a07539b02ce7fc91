package ticket

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"unicode/utf8"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Limits of a ticket's text fields, in characters (as the API counts them).
const (
	MaxTitle       = 200
	MaxDescription = 10000
	MaxRequester   = 320
	MaxChannel     = 32
)

// Create is the command that logs a new ticket. ID and Number are allocated
// by the caller; At is the time of the command.
type Create struct {
	ID          string
	Number      string
	Type        string
	Title       string
	Description string
	Impact      string
	Urgency     string
	Requester   string
	// RequesterID is the requester's user id, when known.
	RequesterID string
	Channel     string
	// Classification; optional.
	Category     string
	Tags         []string
	ConfigItems  []string
	Watchers     []string
	CustomFields json.RawMessage
	// FollowUpOf is the ticket this one follows up; MessageID the mail
	// that opened it.
	FollowUpOf string
	MessageID  string
	At         time.Time
}

// FieldError names one invalid field of a command.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of a command. Ports answer 400.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid ticket: " + strings.Join(parts, "; ")
}

var ticketTypes = map[string]bool{
	ticketv1.TypeIncident: true, ticketv1.TypeServiceRequest: true,
	ticketv1.TypeProblem: true, ticketv1.TypeChange: true,
}

var levels = map[string]bool{ticketv1.LevelLow: true, ticketv1.LevelMedium: true, ticketv1.LevelHigh: true}

// Validate checks the fields the caller supplies (not the allocated id,
// number and time) and returns a *ValidationError listing every bad field,
// or nil. Callers run it before allocating a number, so that a bad command
// does not use one up.
func (c Create) Validate() error {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }

	if !ticketTypes[c.Type] {
		bad("type", "must be one of incident, service_request, problem, change")
	}
	var title fields
	checkTitle(&title, c.Title)
	errs = append(errs, title...)
	var text fields
	text.maxLen("description", c.Description, MaxDescription)
	text.maxLen("requester", c.Requester, 1<<20) // length checked below; NUL and UTF-8 here
	errs = append(errs, text...)
	if !levels[c.Impact] {
		bad("impact", "must be one of low, medium, high")
	}
	if !levels[c.Urgency] {
		bad("urgency", "must be one of low, medium, high")
	}
	switch n := utf8.RuneCountInString(c.Requester); {
	case strings.TrimSpace(c.Requester) == "":
		bad("requester", "must not be blank")
	case n > MaxRequester:
		bad("requester", fmt.Sprintf("must be at most %d characters", MaxRequester))
	}
	if c.RequesterID != "" && (!strings.HasPrefix(c.RequesterID, "u_") || len(c.RequesterID) != 28) {
		bad("requester_id", "must be a user id, u_<ULID>")
	}
	if c.Channel == "" || len(c.Channel) > MaxChannel {
		bad("channel", fmt.Sprintf("must be 1 to %d characters", MaxChannel))
	}
	var class fields
	checkClassification(&class, &c.Category, NormalizeTags(c.Tags), c.ConfigItems, c.Watchers, c.CustomFields)
	errs = append(errs, class...)
	if len(errs) > 0 {
		return &ValidationError{Fields: errs}
	}
	return nil
}

// DecideCreate checks the command against the ticket's current state and
// returns the TicketCreated event, ErrAlreadyExists, or a *ValidationError
// listing every bad field. The API validates the same rules first; they are
// repeated here because they are the aggregate's invariants whatever the
// port (email, import) that sends the command.
func DecideCreate(t Ticket, c Create) ([]any, error) {
	if t.Exists() {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyExists, t.ID)
	}
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	if !strings.HasPrefix(c.ID, IDPrefix) || len(c.ID) == len(IDPrefix) {
		bad("id", "must be "+IDPrefix+"<ULID>")
	}
	if !strings.HasPrefix(c.Number, NumberPrefix) || len(c.Number) == len(NumberPrefix) {
		bad("number", "must be "+NumberPrefix+"<n>")
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err.(*ValidationError).Fields...)
	}
	if c.At.IsZero() {
		bad("created_at", "must be set")
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Fields: errs}
	}
	priority, _ := Priority(c.Impact, c.Urgency) // both levels checked above
	return []any{ticketv1.TicketCreated{
		TicketID:    c.ID,
		Number:      c.Number,
		Type:        c.Type,
		Title:       c.Title,
		Description: c.Description,
		Impact:      c.Impact,
		Urgency:     c.Urgency,
		Priority:    priority,
		Requester:   c.Requester,
		RequesterID: c.RequesterID,
		Channel:     c.Channel,
		// Postgres keeps microseconds: truncating here makes the event, the
		// read model and keyset cursors agree on the exact instant.
		CreatedAt:    c.At.UTC().Truncate(time.Microsecond),
		Category:     c.Category,
		Tags:         NormalizeTags(c.Tags),
		ConfigItems:  sortedSet(c.ConfigItems),
		Watchers:     sortedSet(c.Watchers),
		CustomFields: customFields(c.CustomFields),
		FollowUpOf:   c.FollowUpOf,
		MessageID:    c.MessageID,
	}}, nil
}

// customFields stores an empty object as no custom fields.
func customFields(raw json.RawMessage) json.RawMessage {
	if raw == nil || jsonEqual(raw, json.RawMessage(`{}`)) {
		return nil
	}
	return compact(raw)
}

// Clip cuts s to at most n characters, marking a cut with "…", for text
// that must fit a field rather than be refused (a subject, quoted text).
func Clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// FollowUp is the create command of a follow-up of old: same requester,
// type and classification, linked to old, with text saying why. The caller
// allocates ID and Number as for any create.
func FollowUp(old Ticket, description, channel string, at time.Time) Create {
	return Create{
		Type: old.Type, Title: Clip("Follow-up to "+old.Number+": "+old.Title, MaxTitle), Description: Clip(description, MaxDescription), Impact: old.Impact, Urgency: old.Urgency,
		Requester: old.Requester, RequesterID: old.RequesterID, Channel: channel,
		Category: old.Category, Tags: old.Tags, ConfigItems: old.ConfigItems, Watchers: old.Watchers,
		FollowUpOf: old.ID, At: at,
	}
}

// DecideFollowUp creates the follow-up c of old and links old to it.
func DecideFollowUp(old Ticket, c Create) (forNew, forOld []any, err error) {
	if !old.Exists() {
		return nil, nil, ErrNotFound
	}
	forNew, err = DecideCreate(Ticket{}, c)
	if err != nil {
		return nil, nil, err
	}
	forNew = append(forNew, ticketv1.TicketLinked{Kind: ticketv1.LinkFollowUpOf, Target: old.ID, TargetNumber: old.Number})
	return forNew, []any{ticketv1.TicketLinked{Kind: ticketv1.LinkFollowedUpBy, Target: c.ID, TargetNumber: c.Number}}, nil
}
