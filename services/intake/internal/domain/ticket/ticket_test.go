package ticket_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

var at = time.Date(2025, 11, 3, 9, 12, 45, 123456789, time.FixedZone("CET", 3600))

func validCreate() ticket.Create {
	return ticket.Create{
		ID:          "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE",
		Number:      "OPS-7",
		Type:        ticketv1.TypeIncident,
		Title:       "Printer offline",
		Description: "Floor 3 cannot print.",
		Impact:      ticketv1.LevelMedium,
		Urgency:     ticketv1.LevelHigh,
		Requester:   "ada@example.com",
		Channel:     ticketv1.ChannelAPI,
		At:          at,
	}
}

func created() ticketv1.TicketCreated {
	return ticketv1.TicketCreated{
		TicketID:    "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE",
		Number:      "OPS-7",
		Type:        ticketv1.TypeIncident,
		Title:       "Printer offline",
		Description: "Floor 3 cannot print.",
		Impact:      ticketv1.LevelMedium,
		Urgency:     ticketv1.LevelHigh,
		Priority:    ticketv1.PriorityP2,
		Requester:   "ada@example.com",
		Channel:     ticketv1.ChannelAPI,
		CreatedAt:   time.Date(2025, 11, 3, 8, 12, 45, 123456000, time.UTC),
	}
}

func TestDecideCreate(t *testing.T) {
	tests := []struct {
		name      string
		given     []any
		when      func(*ticket.Create)
		then      []any
		err       error    // errors.Is target
		badFields []string // fields a *ValidationError must name, in order
	}{
		{
			name: "new ticket is created with derived priority and UTC microsecond time",
			when: func(*ticket.Create) {},
			then: []any{created()},
		},
		{
			name: "empty description is fine",
			when: func(c *ticket.Create) { c.Description = "" },
			then: []any{func() ticketv1.TicketCreated { e := created(); e.Description = ""; return e }()},
		},
		{
			name: "title of exactly 200 characters, multibyte",
			when: func(c *ticket.Create) { c.Title = strings.Repeat("é", 200) },
			then: []any{func() ticketv1.TicketCreated { e := created(); e.Title = strings.Repeat("é", 200); return e }()},
		},
		{
			name:  "an existing ticket cannot be created again",
			given: []any{created()},
			when:  func(*ticket.Create) {},
			err:   ticket.ErrAlreadyExists,
		},
		{
			name:      "unknown impact",
			when:      func(c *ticket.Create) { c.Impact = "extreme" },
			badFields: []string{"impact"},
		},
		{
			name:      "unknown type and urgency",
			when:      func(c *ticket.Create) { c.Type = "outage"; c.Urgency = "" },
			badFields: []string{"type", "urgency"},
		},
		{
			name:      "blank title",
			when:      func(c *ticket.Create) { c.Title = "   " },
			badFields: []string{"title"},
		},
		{
			name:      "title too long",
			when:      func(c *ticket.Create) { c.Title = strings.Repeat("x", 201) },
			badFields: []string{"title"},
		},
		{
			name:      "title with a newline",
			when:      func(c *ticket.Create) { c.Title = "a\nb" },
			badFields: []string{"title"},
		},
		{
			name:      "description too long",
			when:      func(c *ticket.Create) { c.Description = strings.Repeat("x", 10001) },
			badFields: []string{"description"},
		},
		{
			name:      "missing requester",
			when:      func(c *ticket.Create) { c.Requester = "" },
			badFields: []string{"requester"},
		},
		{
			name:      "requester too long",
			when:      func(c *ticket.Create) { c.Requester = strings.Repeat("r", 321) },
			badFields: []string{"requester"},
		},
		{
			name:      "missing allocation and time",
			when:      func(c *ticket.Create) { c.ID = "tk_"; c.Number = "7"; c.Channel = ""; c.At = time.Time{} },
			badFields: []string{"id", "number", "channel", "created_at"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCreate()
			tt.when(&c)
			got, err := ticket.DecideCreate(ticket.Fold(tt.given), c)
			switch {
			case tt.err != nil:
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
			case tt.badFields != nil:
				var ve *ticket.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want *ValidationError", err)
				}
				var fields []string
				for _, f := range ve.Fields {
					fields = append(fields, f.Field)
					if f.Message == "" {
						t.Errorf("field %s has no message", f.Field)
					}
				}
				if !reflect.DeepEqual(fields, tt.badFields) {
					t.Fatalf("fields = %v, want %v", fields, tt.badFields)
				}
			default:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got, tt.then) {
					t.Fatalf("events =\n %#v\nwant\n %#v", got, tt.then)
				}
			}
			if err != nil && got != nil {
				t.Fatalf("events %v returned with error %v", got, err)
			}
		})
	}
}

func TestPriorityMatrix(t *testing.T) {
	want := map[[2]string]string{
		{"high", "high"}: "P1", {"high", "medium"}: "P2", {"high", "low"}: "P3",
		{"medium", "high"}: "P2", {"medium", "medium"}: "P3", {"medium", "low"}: "P4",
		{"low", "high"}: "P3", {"low", "medium"}: "P4", {"low", "low"}: "P5",
	}
	for in, p := range want {
		got, ok := ticket.Priority(in[0], in[1])
		if !ok || got != p {
			t.Errorf("Priority(impact %s, urgency %s) = %q, %v; want %q", in[0], in[1], got, ok, p)
		}
	}
	for _, in := range [][2]string{{"extreme", "high"}, {"high", ""}, {"HIGH", "high"}} {
		if p, ok := ticket.Priority(in[0], in[1]); ok {
			t.Errorf("Priority(%q, %q) = %q, want not ok", in[0], in[1], p)
		}
	}
}

func TestEvolve(t *testing.T) {
	e := created()
	tests := []struct {
		name  string
		given []any
		want  ticket.Ticket
	}{
		{name: "no history is no ticket", want: ticket.Ticket{}},
		{
			name:  "created",
			given: []any{e},
			want: ticket.Ticket{
				ID: e.TicketID, Number: e.Number, Type: e.Type, Status: ticket.StatusNew,
				Title: e.Title, Description: e.Description, Impact: e.Impact, Urgency: e.Urgency,
				Priority: e.Priority, Requester: e.Requester, Channel: e.Channel,
				CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt, Version: 1,
			},
		},
		{
			name:  "pointer payloads fold the same, unknown events still count",
			given: []any{&e, struct{}{}},
			want: ticket.Ticket{
				ID: e.TicketID, Number: e.Number, Type: e.Type, Status: ticket.StatusNew,
				Title: e.Title, Description: e.Description, Impact: e.Impact, Urgency: e.Urgency,
				Priority: e.Priority, Requester: e.Requester, Channel: e.Channel,
				CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt, Version: 2,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ticket.Fold(tt.given)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Fold = %+v\nwant   %+v", got, tt.want)
			}
			if got.Exists() != (tt.want.Version > 0) {
				t.Fatalf("Exists = %v", got.Exists())
			}
		})
	}
}

func TestValidateChecksOnlyCallerFields(t *testing.T) {
	c := validCreate()
	c.ID, c.Number, c.At = "", "", time.Time{} // allocated later by the caller
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate before allocation: %v", err)
	}
	c.Impact = "extreme"
	var ve *ticket.ValidationError
	if err := c.Validate(); !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "impact" {
		t.Fatalf("Validate = %v, want impact invalid", err)
	}
}
