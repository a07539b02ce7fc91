// Package domain holds the identity context's aggregates: tenants, users,
// groups and API tokens, each a fold of its events and pure decide
// functions that turn a command into new events or a domain error. No I/O.
package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// Errors of the decide functions. Ports map them: validation 400, not found
// 404, conflicts 409.
var (
	// ErrNotFound: the aggregate has no events (or another tenant's).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a create found the aggregate (or its unique claim)
	// taken.
	ErrAlreadyExists = errors.New("already exists")
)

// ConflictError is a command that the aggregate's state refuses, e.g.
// suspending a suspended user. Reason is for the client.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return e.Reason }

func conflict(format string, args ...any) error {
	return &ConflictError{Reason: fmt.Sprintf(format, args...)}
}

// FieldError names one invalid field of a command.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of a command.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// fields collects field errors while a command is checked.
type fields []FieldError

func (f *fields) bad(field, format string, args ...any) {
	*f = append(*f, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f fields) err() error {
	if len(f) == 0 {
		return nil
	}
	return &ValidationError{Fields: f}
}

// Limits and formats shared by the aggregates.
const (
	MaxName   = 200
	MaxEmail  = 320
	MaxReason = 200
	MaxSkills = 50
)

var (
	slugRE   = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)
	localeRE = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	skillRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	emailRE  = regexp.MustCompile(`^[^\s@<>(),;:"\[\]\\]+@[^\s@<>(),;:"\[\]\\]+\.[^\s@<>(),;:"\[\]\\]+$`)
	// tzRE is the events' time_zone pattern: time.LoadLocation also knows
	// legacy names outside it (EST5EDT, GMT+0, W-SU), which the v1 schemas
	// refuse.
	tzRE = regexp.MustCompile(`^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$`)
	// reserved slugs would shadow routes or the global claim token.
	reservedSlugs = []string{"global", "admin", "api", "www", "system", "opsdesk"}
)

// ValidSlug reports whether s can be a tenant slug.
func ValidSlug(s string) bool { return slugRE.MatchString(s) && !slices.Contains(reservedSlugs, s) }

// NormalizeEmail lower-cases and trims an address: e-mail addresses are
// unique per tenant regardless of case.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// EmailClaimID is the id of the aggregate that claims an address within a
// tenant: em_ and 32 hex digits of the SHA-256 of the normalized address.
func EmailClaimID(email string) string {
	sum := sha256.Sum256([]byte(NormalizeEmail(email)))
	return identityv1.EmailClaimPrefix + hex.EncodeToString(sum[:16])
}

// SlugClaimID is the id of the aggregate (under the global tenant token)
// that claims a slug installation-wide.
func SlugClaimID(slug string) string { return identityv1.SlugClaimPrefix + slug }

func checkName(f *fields, field, s string) {
	switch {
	case strings.TrimSpace(s) == "":
		f.bad(field, "must not be blank")
	case utf8.RuneCountInString(s) > MaxName:
		f.bad(field, "must be at most %d characters", MaxName)
	case strings.ContainsFunc(s, unicode.IsControl):
		f.bad(field, "must be a single line without control characters")
	}
}

func checkEmail(f *fields, field, s string) {
	if len(s) > MaxEmail || !emailRE.MatchString(s) {
		f.bad(field, "must be an e-mail address")
	}
}

func checkTimeZone(f *fields, field, tz string) {
	if tz == "" || len(tz) > 64 || tz == "Local" || !tzRE.MatchString(tz) {
		f.bad(field, "must be an IANA time zone such as Europe/Berlin")
		return
	}
	if _, err := time.LoadLocation(tz); err != nil {
		f.bad(field, "is not a known IANA time zone")
	}
}

func checkLocale(f *fields, field, l string) {
	if len(l) < 2 || len(l) > 35 || !localeRE.MatchString(l) {
		f.bad(field, "must be a BCP 47 language tag such as en or de-CH")
	}
}

func checkRoles(f *fields, field string, roles []string, need bool) {
	if need && len(roles) == 0 {
		f.bad(field, "must name at least one role")
	}
	seen := map[string]bool{}
	for i, r := range roles {
		switch {
		case !validRole(r):
			f.bad(fmt.Sprintf("%s.%d", field, i), "must be one of requester, agent, supervisor, admin")
		case seen[r]:
			f.bad(fmt.Sprintf("%s.%d", field, i), "is listed twice")
		}
		seen[r] = true
	}
}

func validRole(r string) bool {
	switch r {
	case identityv1.RoleRequester, identityv1.RoleAgent, identityv1.RoleSupervisor, identityv1.RoleAdmin:
		return true
	}
	return false
}

func checkReason(f *fields, reason string) {
	if utf8.RuneCountInString(reason) > MaxReason || strings.ContainsFunc(reason, unicode.IsControl) {
		f.bad("reason", "must be at most %d characters on one line", MaxReason)
	}
}

func checkIDs(f *fields, field, prefix string, ids []string) {
	seen := map[string]bool{}
	for i, id := range ids {
		switch {
		case !validID(prefix, id):
			f.bad(fmt.Sprintf("%s.%d", field, i), "must be an id starting with %s", prefix)
		case seen[id]:
			f.bad(fmt.Sprintf("%s.%d", field, i), "is listed twice")
		}
		seen[id] = true
	}
}

var ulidRE = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

func validID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	return ok && ulidRE.MatchString(rest)
}

// sorted returns a sorted copy without duplicates, never nil (events carry
// lists as JSON arrays, never null).
func sorted(in []string) []string {
	out := append([]string{}, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

// at normalizes a command's time as events store it.
func at(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
