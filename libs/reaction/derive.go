package reaction

import (
	"crypto/sha256"
	"strconv"
	"strings"

	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/es"
)

// DeriveID returns a ULID-shaped id (26 Crockford base32 characters) that
// depends only on causeID and purpose: a reaction that runs again on a
// redelivery appends its event with the same id, and JetStream's dedup
// (Nats-Msg-Id) stores it once. purpose tells apart several events one
// reaction emits for the same cause ("assign", "notify-requester").
//
// When causeID is itself a ULID (optionally type-prefixed, "tk_01H..."), the
// derived id keeps its timestamp, so it still sorts next to its cause.
func DeriveID(causeID, purpose string) string {
	// Length-prefixed, so ("a", "bc") and ("ab", "c") differ.
	sum := sha256.Sum256([]byte(strconv.Itoa(len(causeID)) + ":" + causeID + "|" + purpose))
	var id ulid.ULID
	copy(id[:], sum[:16])
	raw := causeID
	if i := strings.LastIndexByte(raw, '_'); i >= 0 {
		raw = raw[i+1:]
	}
	if cause, err := ulid.ParseStrict(raw); err == nil {
		copy(id[:6], cause[:6]) // the 48-bit millisecond timestamp
	}
	return id.String()
}

// FollowUp returns e as a consequence of cause: its ID derived from cause.ID
// and purpose (see DeriveID), CausationID cause.ID, CorrelationID cause's
// (or cause.ID when cause has none), and Tenant cause's when e has none.
func FollowUp(cause es.Event, purpose string, e es.Event) es.Event {
	e.ID = DeriveID(cause.ID, purpose)
	e.CausationID = cause.ID
	e.CorrelationID = cause.CorrelationID
	if e.CorrelationID == "" {
		e.CorrelationID = cause.ID
	}
	if e.Tenant == "" {
		e.Tenant = cause.Tenant
	}
	return e
}
