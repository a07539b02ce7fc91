package events

// EventType describes one event type of a context package (for example
// ticketv1 or identityv1): enough for a registry, a decoder, or the contract
// test that checks Go types against schemas. Each context package lists its
// event types with an EventTypes function and embeds the schemas in Schemas.
type EventType struct {
	// Type is the ce-type, e.g. opsdesk.ticket.created.v1.
	Type string
	// New returns a pointer to a zero payload to unmarshal into.
	New func() any
	// Schema is the file name of the JSON Schema in the context package's
	// Schemas.
	Schema string
	// Example returns a valid, fully populated payload as a pointer
	// (documentation and contract tests).
	Example func() any
}
