package es_test

import (
	"testing"

	"github.com/opsdesk/opsdesk/libs/es"
)

func TestKeyIn(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    es.Key
		ok      bool
	}{
		{"ticket.t_1.tk_2", es.Key{Tenant: "t_1", ID: "tk_2"}, true},
		{"identity.t_1.u_2", es.Key{}, false}, // another context
		{"ticket.t_1", es.Key{}, false},
		{"ticket.t_1.tk_2.x", es.Key{}, false},
		{"ticket..tk_2", es.Key{}, false},
		{"", es.Key{}, false},
	} {
		got, err := es.Event{ID: "e1", Subject: tc.subject}.KeyIn("ticket")
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("KeyIn(%q) = %+v, %v; want %+v, ok %v", tc.subject, got, err, tc.want, tc.ok)
		}
	}
}
