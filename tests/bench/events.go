package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/api/events"
	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// The ticket every request creates: a realistic, mid-sized incident.
const (
	ticketTitle       = "Printer on floor 3 is offline"
	ticketDescription = "Nobody on floor 3 can print since 9:00. The printer shows error E-204 and the queue is stuck with 14 jobs."
	ticketRequester   = "ada.lovelace@example.com"
)

// requestBody is the JSON body of POST /v1/tickets.
func requestBody(i int) []byte {
	b, _ := json.Marshal(map[string]string{
		"type":        ticketv1.TypeIncident,
		"title":       fmt.Sprintf("%s #%d", ticketTitle, i),
		"description": ticketDescription,
		"impact":      ticketv1.LevelMedium,
		"urgency":     ticketv1.LevelHigh,
		"requester":   ticketRequester,
	})
	return b
}

// benchTenants are the tenants the load spreads over: several, so the
// per-tenant number counter is not one hot key, few enough that each
// tenant's number block is reused.
var benchTenants = []string{"t_bench_a", "t_bench_b", "t_bench_c", "t_bench_d"}

// syntheticEvent builds the TicketCreated event intake would append for
// ticket i of tenant, with the same envelope (ce-* headers, traceparent),
// so published directly it is indistinguishable from an intake write.
func syntheticEvent(tenant string, i int, now time.Time) es.Event {
	id := "tk_" + ulid.Make().String()
	data, _ := json.Marshal(ticketv1.TicketCreated{
		TicketID:    id,
		Number:      fmt.Sprintf("OPS-%d", i+1),
		Type:        ticketv1.TypeIncident,
		Title:       fmt.Sprintf("%s #%d", ticketTitle, i),
		Description: ticketDescription,
		Impact:      ticketv1.LevelMedium,
		Urgency:     ticketv1.LevelHigh,
		Priority:    ticketv1.PriorityP2,
		Requester:   ticketRequester,
		Channel:     ticketv1.ChannelAPI,
		CreatedAt:   now,
	})
	return es.Event{
		ID:            ulid.Make().String(),
		Type:          ticketv1.TypeTicketCreated,
		Source:        ticketv1.Source,
		Tenant:        tenant,
		AggregateID:   id,
		Time:          now,
		Actor:         "anonymous",
		CorrelationID: ulid.Make().String(),
		Data:          data,
		TraceParent:   randomTraceParent(),
	}
}

// eventMsg is the message the event store publishes for e (single-event
// append to a new aggregate).
func eventMsg(e es.Event) *nats.Msg {
	h := nats.Header(es.EncodeHeaders(e))
	h.Set(events.HeaderExpectedLastSubjectSeq, "0")
	return &nats.Msg{
		Subject: es.Key{Tenant: e.Tenant, ID: e.AggregateID}.Subject(ticketv1.Context),
		Header:  h,
		Data:    e.Data,
	}
}

func randomTraceParent() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// EventSize is the size of one ticket-created message on the wire.
type EventSize struct {
	HeaderBytes int `json:"header_bytes"`
	DataBytes   int `json:"data_bytes"`
	TotalBytes  int `json:"total_bytes"`
	// Source says where the measured message came from.
	Source string `json:"source"`
}

// headerBytes is the size of h in the NATS wire format
// ("NATS/1.0\r\n", "Key: value\r\n" per value, "\r\n").
func headerBytes(h nats.Header) int {
	n := len("NATS/1.0\r\n") + 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

func sizeOf(h nats.Header, data []byte, source string) EventSize {
	hb := headerBytes(h)
	return EventSize{HeaderBytes: hb, DataBytes: len(data), TotalBytes: hb + len(data), Source: source}
}

// msgTemplate is a stored ticket-created message whose headers and body
// the raw baseline republishes under fresh ids.
type msgTemplate struct {
	header nats.Header
	data   []byte
}

// newTemplate strips the headers the publish options set again.
func newTemplate(h nats.Header, data []byte) msgTemplate {
	h = maps.Clone(h)
	for _, k := range []string{events.HeaderMsgID, events.HeaderExpectedLastSubjectSeq, events.HeaderExpectedStream} {
		h.Del(k)
		delete(h, k)
	}
	for k, v := range h {
		h[k] = slices.Clone(v)
	}
	return msgTemplate{header: h, data: data}
}

// msg returns a copy of the template for a new aggregate id on subject.
func (t msgTemplate) msg(subject, eventID, aggregateID string) *nats.Msg {
	h := make(nats.Header, len(t.header)+2)
	for k, v := range t.header {
		h[k] = v // values are not modified below, only replaced
	}
	h[events.HeaderID] = []string{eventID}
	h[events.HeaderSubject] = []string{aggregateID}
	return &nats.Msg{Subject: subject, Header: h, Data: t.data}
}
