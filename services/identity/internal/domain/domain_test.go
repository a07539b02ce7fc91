package domain_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // time zone checks must not depend on the host's zoneinfo

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// now is a command's time: not UTC and with nanoseconds, so every test
// also checks that events carry UTC times truncated to microseconds
// (nowUTC), as the event store keeps them.
var (
	now    = time.Date(2025, 11, 3, 9, 12, 45, 123456789, time.FixedZone("CET", 3600))
	nowUTC = time.Date(2025, 11, 3, 8, 12, 45, 123456000, time.UTC)
)

// Ids shared by the tests (valid ULIDs with their prefixes). The group ids
// sort as group2 < group1 < group3, so tests see lists being sorted.
const (
	tenantID  = "t_01K94FJAC06AHQFZ5QK487KF97"
	parentID  = "t_01K94FJAC03MHPVFVTXXKT1Y4Y"
	clientID  = "t_01K94FJAC0CZSJW7JMM6S5VC8D"
	client2ID = "t_01K94FJAC0Q4STE6NC0X96NWDC"
	userID    = "u_01K94FEN600NX9YM94KCH3DVV7"
	adminID   = "u_01K94FGFS0Q4STE6NC0X96NWDC"
	group1    = "g_01K94F95D0E7R4NPSGMS720VZC"
	group2    = "g_01K94F95D09BAV3925GPJQ7PQG"
	group3    = "g_01K94F95D0MS5K33GN4CCVDWCV"
	tokenID   = "at_01K94F95D0PVG7SZKRKNDGY4EW"
	sessionID = "s_01K94F7AT0HYPPCWB1G3FX2M1J"
	resetID   = "pr_01K94F95D088VCTBTBB9GB4M7M"
)

func ptr[T any](v T) *T { return &v }

// then is what a decide function must return: events (none when empty), or
// an error of one kind.
type then struct {
	events    []any
	err       error    // errors.Is target (ErrNotFound, ErrAlreadyExists)
	conflict  bool     // a *domain.ConflictError
	badFields []string // a *domain.ValidationError naming these fields, in order
}

func (w then) check(t *testing.T, got []any, err error) {
	t.Helper()
	if err != nil && got != nil {
		t.Fatalf("events %#v returned with error %v", got, err)
	}
	var (
		ve *domain.ValidationError
		ce *domain.ConflictError
	)
	switch {
	case w.err != nil:
		if !errors.Is(err, w.err) {
			t.Fatalf("err = %v (%T), want %v", err, err, w.err)
		}
	case w.conflict:
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v (%T), want *ConflictError", err, err)
		}
		if ce.Reason == "" || ce.Error() != ce.Reason {
			t.Fatalf("conflict reason %q, Error() %q", ce.Reason, ce.Error())
		}
	case w.badFields != nil:
		if !errors.As(err, &ve) {
			t.Fatalf("err = %v (%T), want *ValidationError on %v", err, err, w.badFields)
		}
		var names []string
		for _, f := range ve.Fields {
			names = append(names, f.Field)
			if f.Message == "" {
				t.Errorf("field %s has no message", f.Field)
			}
			if !strings.Contains(ve.Error(), f.Field+" "+f.Message) {
				t.Errorf("Error() %q does not name %s", ve.Error(), f.Field)
			}
		}
		if !reflect.DeepEqual(names, w.badFields) {
			t.Fatalf("invalid fields = %v, want %v (%v)", names, w.badFields, err)
		}
	default:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if len(w.events) == 0 {
			if len(got) != 0 {
				t.Fatalf("events = %#v, want none", got)
			}
			return
		}
		if !reflect.DeepEqual(got, w.events) {
			t.Fatalf("events =\n %#v\nwant\n %#v", got, w.events)
		}
	}
	// Domain errors are distinct kinds: ports map each to one status.
	if w.err != nil || w.conflict || w.badFields != nil {
		kinds := 0
		for _, is := range []bool{
			errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrAlreadyExists),
			errors.As(err, &ce), errors.As(err, &ve),
		} {
			if is {
				kinds++
			}
		}
		if kinds != 1 {
			t.Fatalf("err %v is %d kinds of domain error, want 1", err, kinds)
		}
	}
}

func TestValidationErrorListsEveryField(t *testing.T) {
	err := &domain.ValidationError{Fields: []domain.FieldError{
		{Field: "name", Message: "must not be blank"},
		{Field: "roles.1", Message: "is listed twice"},
	}}
	if got, want := err.Error(), "invalid: name must not be blank; roles.1 is listed twice"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestEmailClaimID(t *testing.T) {
	// The id is stored as the claim's subject: it must never change, or a
	// taken address would look free. em_ + first 16 bytes of SHA-256 of
	// "ada@example.com", in hex.
	const want = identityv1.EmailClaimPrefix + "b5fc85e55755f9e0d030a10ab4429b6b"
	for _, email := range []string{
		"ada@example.com", "Ada@Example.com ", "  ADA@EXAMPLE.COM\t", "\nada@example.COM",
	} {
		if got := domain.EmailClaimID(email); got != want {
			t.Errorf("EmailClaimID(%q) = %q, want %q", email, got, want)
		}
	}
	for _, other := range []string{"ada@example.org", "ada.lovelace@example.com", "bob@example.com", "ada@example.com."} {
		if got := domain.EmailClaimID(other); got == want {
			t.Errorf("EmailClaimID(%q) = %q, the same as ada@example.com", other, got)
		}
	}
	if a, b := domain.EmailClaimID("a@example.com"), domain.EmailClaimID("b@example.com"); a == b || len(a) != 3+32 {
		t.Errorf("EmailClaimID: %q, %q: want distinct em_ + 32 hex digits", a, b)
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got := domain.NormalizeEmail("  Ada.Lovelace@Example.COM \n"); got != "ada.lovelace@example.com" {
		t.Fatalf("NormalizeEmail = %q", got)
	}
}

func TestSlugClaimID(t *testing.T) {
	if got := domain.SlugClaimID("northwind-it"); got != "sl_northwind-it" {
		t.Fatalf("SlugClaimID = %q, want sl_northwind-it", got)
	}
	if domain.SlugClaimID("a") == domain.SlugClaimID("b") {
		t.Fatal("different slugs share a claim")
	}
}

func TestFoldClaim(t *testing.T) {
	tests := []struct {
		name  string
		given []any
		want  string
	}{
		{name: "no events: free", want: ""},
		{name: "slug claimed by a tenant", given: []any{identityv1.SlugClaimed{Slug: "northwind", TenantID: tenantID}}, want: tenantID},
		{name: "e-mail claimed by a user", given: []any{identityv1.EmailClaimed{Email: "ada@example.com", UserID: userID}}, want: userID},
		{name: "other events do not claim", given: []any{identityv1.TenantCreated{TenantID: tenantID}}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := domain.FoldClaim(tt.given); got.Holder != tt.want {
				t.Fatalf("Holder = %q, want %q", got.Holder, tt.want)
			}
		})
	}
}

func TestValidSlug(t *testing.T) {
	valid := []string{"a", "7", "northwind", "northwind-it", "a-b-c", "x1", strings.Repeat("a", 40), "globals", "admins"}
	invalid := []string{
		"", "-", "Northwind", "northWind", "-northwind", "northwind-", "north_wind", "north.wind", "north wind",
		"nörthwind", strings.Repeat("a", 41),
		"global", "admin", "api", "www", "system", "opsdesk",
	}
	for _, s := range valid {
		if !domain.ValidSlug(s) {
			t.Errorf("ValidSlug(%q) = false, want true", s)
		}
	}
	for _, s := range invalid {
		if domain.ValidSlug(s) {
			t.Errorf("ValidSlug(%q) = true, want false", s)
		}
	}
}
