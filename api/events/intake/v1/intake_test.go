package intakev1_test

import (
	"testing"

	"github.com/opsdesk/opsdesk/api/events/eventstest"
	intakev1 "github.com/opsdesk/opsdesk/api/events/intake/v1"
)

func TestEventTypesListsEveryTypeOnce(t *testing.T) {
	consts := eventstest.TypeConstants(t, ".", "opsdesk.intake.")
	if len(consts) != 3 {
		t.Errorf("found %d Type* constants, want 1 (update this count when adding one)", len(consts))
	}
	eventstest.CheckEventTypes(t, consts, intakev1.EventTypes(), "opsdesk.intake.", "intake.")
}

func TestExamplesAreFullyPopulated(t *testing.T) {
	eventstest.CheckExamplesPopulated(t, intakev1.EventTypes())
}
