package identityv1_test

import (
	"testing"

	"github.com/opsdesk/opsdesk/api/events/eventstest"
	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// TestEventTypesListsEveryTypeOnce checks every Type* constant appears in
// EventTypes exactly once, with the schema file named after the ce-type and
// a payload struct named after the constant (TypeTenantCreated ->
// TenantCreated).
func TestEventTypesListsEveryTypeOnce(t *testing.T) {
	consts := eventstest.TypeConstants(t, ".", "opsdesk.identity.")
	if len(consts) != 24 {
		t.Errorf("found %d Type* constants in identity.go, want 24 (update this count when adding one)", len(consts))
	}
	eventstest.CheckEventTypes(t, consts, identityv1.EventTypes(), "opsdesk.identity.", "")
}

// TestExamplesAreFullyPopulated checks every example sets every field, so
// the contract test exercises each property of each schema.
func TestExamplesAreFullyPopulated(t *testing.T) {
	eventstest.CheckExamplesPopulated(t, identityv1.EventTypes())
}
