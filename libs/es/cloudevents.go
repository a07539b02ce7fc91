package es

import (
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/opsdesk/opsdesk/api/events"
)

// Header is a set of message headers, shaped like nats.Header and
// http.Header so either converts without copying.
type Header = map[string][]string

// ErrMalformedEvent is returned by DecodeHeaders for a message that lacks a
// required CloudEvents attribute.
var ErrMalformedEvent = errors.New("es: malformed event envelope")

// EncodeHeaders writes the event's CloudEvents attributes in binary mode,
// with Nats-Msg-Id set to the event id so JetStream dedupes retries.
func EncodeHeaders(e Event) Header {
	h := Header{}
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set(events.HeaderSpecVersion, events.SpecVersion)
	set(events.HeaderID, e.ID)
	set(events.HeaderMsgID, e.ID)
	set(events.HeaderType, e.Type)
	set(events.HeaderSource, e.Source)
	set(events.HeaderSubject, e.AggregateID)
	set(events.HeaderTime, e.Time.UTC().Format(time.RFC3339Nano))
	set(events.HeaderContentType, events.ContentType)
	set(events.HeaderTenant, e.Tenant)
	set(events.HeaderActor, e.Actor)
	set(events.HeaderCorrelationID, e.CorrelationID)
	set(events.HeaderCausationID, e.CausationID)
	set(events.HeaderTraceParent, e.TraceParent)
	return h
}

// get reads a header whether or not it was canonicalised on the way
// (NATS keeps header case; HTTP and some clients canonicalise).
func get(h Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	if v := h[textproto.CanonicalMIMEHeaderKey(k)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// DecodeHeaders rebuilds an event from a stored message: its subject,
// headers, body and stream sequence. It fails with ErrMalformedEvent when
// ce-id, ce-type or ce-time is missing or invalid, so callers can dead-letter
// the message instead of applying a half-empty event.
func DecodeHeaders(subject string, h Header, data []byte, seq uint64) (Event, error) {
	e := Event{
		ID:            get(h, events.HeaderID),
		Type:          get(h, events.HeaderType),
		Source:        get(h, events.HeaderSource),
		Tenant:        get(h, events.HeaderTenant),
		AggregateID:   get(h, events.HeaderSubject),
		Actor:         get(h, events.HeaderActor),
		CorrelationID: get(h, events.HeaderCorrelationID),
		CausationID:   get(h, events.HeaderCausationID),
		TraceParent:   get(h, events.HeaderTraceParent),
		Data:          data,
		Subject:       subject,
		Sequence:      seq,
	}
	if e.ID == "" || e.Type == "" {
		return e, fmt.Errorf("%w: subject %s seq %d lacks ce-id or ce-type", ErrMalformedEvent, subject, seq)
	}
	ts := get(h, events.HeaderTime)
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return e, fmt.Errorf("%w: subject %s seq %d: ce-time %q", ErrMalformedEvent, subject, seq, ts)
	}
	e.Time = t
	return e, nil
}

// TraceID extracts the trace id from a W3C traceparent
// ("00-<trace-id>-<span-id>-<flags>"), or "" when there is none.
func TraceID(traceparent string) string {
	if len(traceparent) >= 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		return traceparent[3:35]
	}
	return ""
}
