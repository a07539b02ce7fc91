package ticketv1_test

import (
	"testing"

	"github.com/opsdesk/opsdesk/api/events/eventstest"
	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// TestEventTypesListsEveryTypeOnce checks every opsdesk.ticket.* constant
// of the package (ticket.go, lifecycle.go, any later file) appears in
// EventTypes exactly once, with its schema file and payload struct named
// after it.
func TestEventTypesListsEveryTypeOnce(t *testing.T) {
	consts := eventstest.TypeConstants(t, ".", "opsdesk.ticket.")
	if len(consts) != 19 {
		t.Errorf("found %d Type* constants in the package, want 19 (update this count when adding one)", len(consts))
	}
	eventstest.CheckEventTypes(t, consts, ticketv1.EventTypes(), "opsdesk.ticket.", "ticket.")
}

// TestExamplesAreFullyPopulated checks every example sets every field.
func TestExamplesAreFullyPopulated(t *testing.T) {
	eventstest.CheckExamplesPopulated(t, ticketv1.EventTypes())
}
