package reaction_test

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/reaction"
)

func TestDeriveIDIsDeterministicULID(t *testing.T) {
	t.Parallel()
	cause := ulid.Make().String()
	a := reaction.DeriveID(cause, "assign")
	if b := reaction.DeriveID(cause, "assign"); a != b {
		t.Fatalf("DeriveID not deterministic: %s != %s", a, b)
	}
	id, err := ulid.ParseStrict(a)
	if err != nil || len(a) != 26 {
		t.Fatalf("DeriveID = %q, not a ULID: %v", a, err)
	}
	// A ULID cause keeps its timestamp, so the derived id sorts next to it.
	if want := ulid.MustParse(cause).Time(); id.Time() != want {
		t.Fatalf("derived time %d, cause time %d", id.Time(), want)
	}
	if !es.ValidToken(a) {
		t.Fatalf("DeriveID = %q is not a subject token", a)
	}
	// Prefixed ULIDs and non-ULID causes work too.
	for _, c := range []string{"tk_" + cause, "not-a-ulid", ""} {
		if _, err := ulid.ParseStrict(reaction.DeriveID(c, "x")); err != nil {
			t.Errorf("DeriveID(%q) is not a ULID: %v", c, err)
		}
	}
}

func TestDeriveIDIsDistinct(t *testing.T) {
	t.Parallel()
	c1, c2 := ulid.Make().String(), ulid.Make().String()
	seen := map[string]string{}
	for _, in := range [][2]string{
		{c1, "assign"}, {c1, "notify"}, {c2, "assign"}, {c2, "notify"},
		{"ab", "c"}, {"a", "bc"}, // no ambiguity at the boundary
		{"", "assign"}, {c1, ""},
	} {
		id := reaction.DeriveID(in[0], in[1])
		if prev, dup := seen[id]; dup {
			t.Fatalf("DeriveID%v = DeriveID(%s) = %s", in, prev, id)
		}
		seen[id] = in[0] + "|" + in[1]
	}
}

func TestFollowUp(t *testing.T) {
	t.Parallel()
	cause := es.Event{ID: ulid.Make().String(), Tenant: "t1", CorrelationID: "corr", Time: time.Now()}
	e := reaction.FollowUp(cause, "assign", es.Event{Type: "opsdesk.triage.assigned.v1"})
	if e.ID != reaction.DeriveID(cause.ID, "assign") || e.CausationID != cause.ID || e.CorrelationID != "corr" || e.Tenant != "t1" {
		t.Fatalf("FollowUp = %+v", e)
	}
	cause.CorrelationID = ""
	if e := reaction.FollowUp(cause, "assign", es.Event{Tenant: "t2"}); e.CorrelationID != cause.ID || e.Tenant != "t2" {
		t.Fatalf("FollowUp without correlation = %+v", e)
	}
}
