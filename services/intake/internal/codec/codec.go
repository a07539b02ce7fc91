// Package codec converts between the event store's envelopes (es.Event) and
// the typed ticket payloads of api/events/ticket/v1 that the domain folds.
package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// ErrUnknownType is returned for an event type this version does not know.
var ErrUnknownType = errors.New("unknown event type")

var (
	byType    = map[string]func() any{}
	byPayload = map[reflect.Type]string{}
)

func init() {
	for _, et := range ticketv1.EventTypes() {
		byType[et.Type] = et.New
		byPayload[reflect.TypeOf(et.New()).Elem()] = et.Type
	}
}

// Decode returns the typed payload of a ticket event, as a value (e.g.
// ticketv1.TicketCreated). An unknown type wraps ErrUnknownType; a body that
// does not decode is an error naming the event.
func Decode(e es.Event) (any, error) {
	newPayload, ok := byType[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q (event %s)", ErrUnknownType, e.Type, e.ID)
	}
	p := newPayload()
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("decode %s event %s: %w", e.Type, e.ID, err)
	}
	return reflect.ValueOf(p).Elem().Interface(), nil
}

// Encode returns the ce-type and JSON body of a payload (a value or a
// pointer to one of the registered types).
func Encode(payload any) (string, []byte, error) {
	t := reflect.TypeOf(payload)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	typ, ok := byPayload[t]
	if !ok {
		return "", nil, fmt.Errorf("%w: payload %T", ErrUnknownType, payload)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return typ, data, nil
}
