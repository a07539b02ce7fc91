// Package events holds the contracts shared by every OpsDesk service: the
// CloudEvents envelope carried in NATS headers, and (in sub-packages, one per
// bounded context and version) the event payload types and their JSON Schemas.
package events

// CloudEvents 1.0 binary-mode attributes as NATS header names. The NATS
// protocol binding maps each attribute to a "ce-" prefixed header; the payload
// is the message body (content-type application/json).
const (
	HeaderSpecVersion   = "ce-specversion"
	HeaderID            = "ce-id"
	HeaderType          = "ce-type"
	HeaderSource        = "ce-source"
	HeaderSubject       = "ce-subject"
	HeaderTime          = "ce-time"
	HeaderDataSchema    = "ce-dataschema"
	HeaderContentType   = "content-type"
	HeaderTenant        = "ce-tenant"
	HeaderCorrelationID = "ce-correlationid"
	HeaderCausationID   = "ce-causationid"
	HeaderActor         = "ce-actor"

	// W3C trace context, propagated so one trace follows a ticket across services.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"

	// JetStream's own headers that the event store sets.
	HeaderMsgID                  = "Nats-Msg-Id"
	HeaderExpectedLastSubjectSeq = "Nats-Expected-Last-Subject-Sequence"
	HeaderExpectedStream         = "Nats-Expected-Stream"

	SpecVersion = "1.0"
	ContentType = "application/json"
)
