package query_test

import (
	"errors"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
)

func TestCursorRoundTrip(t *testing.T) {
	c := query.Cursor{CreatedAt: time.Date(2025, 11, 3, 9, 0, 0, 123456000, time.UTC), ID: "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE"}
	got, err := query.DecodeCursor(c.Encode())
	if err != nil || !got.CreatedAt.Equal(c.CreatedAt) || got.ID != c.ID {
		t.Fatalf("DecodeCursor(Encode(%+v)) = %+v, %v", c, got, err)
	}
}

func TestDecodeCursorRejectsForeignInput(t *testing.T) {
	for _, s := range []string{
		"", "!!", "bm90LWpzb24", // not JSON
		"e30",                                    // {}
		"eyJ0IjoiMjAyNS0xMS0wM1QwOTowMDowMFoifQ", // no id
		"eyJ0IjoieWVzdGVyZGF5IiwiaSI6InRrXzEifQ", // bad time
		"eyJ0IjoiMjAyNS0xMS0wM1QwOTowMDowMFoiLCJpIjoidGtfMSJ9=", // padding is not ours
	} {
		if _, err := query.DecodeCursor(s); !errors.Is(err, query.ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", s, err)
		}
	}
}

// FuzzDecodeCursor feeds the cursor parser what a client can send: it must
// never panic, refuse with ErrBadCursor, and whatever it accepts must
// survive its own round trip.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(query.Cursor{CreatedAt: time.Date(2025, 11, 3, 9, 0, 0, 123456000, time.UTC), ID: "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE"}.Encode())
	f.Add("")
	f.Add("not-base64!")
	f.Add("eyJ0IjoiMjAyNS0xMS0wM1QwOTowMDowMFoiLCJpIjoiIn0")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := query.DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, query.ErrBadCursor) {
				t.Fatalf("DecodeCursor(%q) error %v does not wrap ErrBadCursor", s, err)
			}
			return
		}
		again, err := query.DecodeCursor(c.Encode())
		if err != nil || !again.CreatedAt.Equal(c.CreatedAt) || again.ID != c.ID {
			t.Fatalf("accepted %q as %+v, but its re-encoding gives %+v, %v", s, c, again, err)
		}
	})
}
