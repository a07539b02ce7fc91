// Package codec converts between the event store's envelopes (es.Event) and
// the typed ticket payloads of api/events/ticket/v1 that the domain folds.
package codec

import (
	"errors"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// ErrUnknownType is returned for an event type this version does not know.
var ErrUnknownType = es.ErrUnknownType

var tickets = es.NewCodec(ticketv1.EventTypes())

// Decode returns the typed payload of a ticket event, as a value (e.g.
// ticketv1.TicketCreated). An unknown type wraps ErrUnknownType; a body that
// does not decode is an error naming the event.
func Decode(e es.Event) (any, error) { return tickets.Decode(e) }

// Encode returns the ce-type and JSON body of a payload (a value or a
// pointer to one of the registered types).
func Encode(payload any) (string, []byte, error) { return tickets.Encode(payload) }

// DecodeAllKnown decodes a history for folding: an event of a type this
// version does not know stays in as an opaque value, so the fold still
// counts it as a version; a known event that does not decode is an error.
func DecodeAllKnown(history []es.Event) ([]any, error) {
	out := make([]any, len(history))
	for i, e := range history {
		p, err := tickets.Decode(e)
		switch {
		case errors.Is(err, ErrUnknownType):
			out[i] = struct{}{}
		case err != nil:
			return nil, err
		default:
			out[i] = p
		}
	}
	return out, nil
}
