package auth

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// UsageSubject is where verifiers announce that an API token was used, for
// its last-used time in identity. It is a plain NATS subject, not a stream:
// the time is advisory (to the minute, and a process crash may lose the last
// minute's), which is not worth a stream per service.
const UsageSubject = "opsdesk.usage.api_token"

// Usage is the body of a message on UsageSubject.
type Usage struct {
	TokenID string    `json:"token_id"`
	Tenant  string    `json:"tenant_id"`
	At      time.Time `json:"at"`
}

// UsageReporter publishes API token use, at most once a minute per token and
// process; its Report is an Authenticator's OnAPITokenUse.
type UsageReporter struct {
	nc *nats.Conn

	mu   sync.Mutex
	last map[string]time.Time
}

// NewUsageReporter returns a reporter publishing on nc.
func NewUsageReporter(nc *nats.Conn) *UsageReporter {
	return &UsageReporter{nc: nc, last: map[string]time.Time{}}
}

// Report announces that tokenID was used at at, unless it was announced in
// the last minute.
func (u *UsageReporter) Report(tokenID, tenant string, at time.Time) {
	u.mu.Lock()
	if prev, ok := u.last[tokenID]; ok && at.Sub(prev) < time.Minute {
		u.mu.Unlock()
		return
	}
	u.last[tokenID] = at
	u.mu.Unlock()
	b, _ := json.Marshal(Usage{TokenID: tokenID, Tenant: tenant, At: at.UTC()})
	_ = u.nc.Publish(UsageSubject, b) // best effort, see UsageSubject
}
