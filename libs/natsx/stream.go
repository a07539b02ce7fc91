// Package natsx holds the NATS mechanics shared by every service: connecting,
// provisioning streams idempotently, the embedded server of the all-in-one
// binary, and W3C trace-context propagation through message headers.
package natsx

import "time"

// StreamConfig is how an event stream is provisioned. Event streams are the
// source of truth, so they are file-backed, limits-retained with no max age,
// and deny delete and purge.
type StreamConfig struct {
	Name     string   // e.g. TICKETS
	Subjects []string // e.g. ticket.>
	// Replicas is 1 in development and 3 in production (R3 across failure domains).
	Replicas int
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id for dedup
	// of retried appends; at least two minutes.
	DuplicateWindow time.Duration
}
