package es

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/opsdesk/opsdesk/api/events"
)

// ErrUnknownType is returned by Codec.Decode for an event type the codec
// does not know.
var ErrUnknownType = errors.New("es: unknown event type")

// Codec converts between events and the typed payloads of one context's
// contracts (api/events/<context>/v1).
type Codec struct {
	byType    map[string]func() any
	byPayload map[reflect.Type]string
}

// NewCodec returns a codec for types (e.g. identityv1.EventTypes()).
func NewCodec(types []events.EventType) *Codec {
	c := &Codec{byType: map[string]func() any{}, byPayload: map[reflect.Type]string{}}
	for _, et := range types {
		c.byType[et.Type] = et.New
		c.byPayload[reflect.TypeOf(et.New()).Elem()] = et.Type
	}
	return c
}

// Decode returns the typed payload of e as a value (not a pointer). An
// unknown type wraps ErrUnknownType; a body that does not decode is an
// error naming the event.
func (c *Codec) Decode(e Event) (any, error) {
	newPayload, ok := c.byType[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q (event %s)", ErrUnknownType, e.Type, e.ID)
	}
	p := newPayload()
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("decode %s event %s: %w", e.Type, e.ID, err)
	}
	return reflect.ValueOf(p).Elem().Interface(), nil
}

// DecodeAll decodes a history, skipping types the codec does not know (a
// newer version's events are not this version's business).
func (c *Codec) DecodeAll(history []Event) ([]any, error) {
	out := make([]any, 0, len(history))
	for _, e := range history {
		p, err := c.Decode(e)
		if errors.Is(err, ErrUnknownType) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Encode returns the ce-type and JSON body of a payload (a value or a
// pointer to a registered type).
func (c *Codec) Encode(payload any) (string, []byte, error) {
	t := reflect.TypeOf(payload)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	typ, ok := c.byPayload[t]
	if !ok {
		return "", nil, fmt.Errorf("%w: payload %T", ErrUnknownType, payload)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return typ, data, nil
}
