package codec_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/intake/internal/codec"
)

func TestRoundTrip(t *testing.T) {
	for _, et := range ticketv1.EventTypes() {
		want := reflect.ValueOf(et.Example()).Elem().Interface()
		for _, in := range []any{want, et.Example()} { // value and pointer
			typ, data, err := codec.Encode(in)
			if err != nil || typ != et.Type {
				t.Fatalf("Encode(%T) = %q, %v", in, typ, err)
			}
			got, err := codec.Decode(es.Event{ID: "e1", Type: typ, Data: data, Time: time.Now()})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip = %#v, want %#v", got, want)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := codec.Decode(es.Event{Type: "opsdesk.ticket.exploded.v1", Data: []byte(`{}`)}); !errors.Is(err, codec.ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := codec.Decode(es.Event{Type: ticketv1.TypeTicketCreated, Data: []byte(`{"title":`)}); err == nil {
		t.Fatal("truncated body decoded")
	}
	if _, _, err := codec.Encode(struct{ X int }{1}); !errors.Is(err, codec.ErrUnknownType) {
		t.Fatalf("Encode unknown payload: %v", err)
	}
	if _, _, err := codec.Encode(nil); !errors.Is(err, codec.ErrUnknownType) {
		t.Fatalf("Encode nil: %v", err)
	}
}
