package natsx

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Connection defaults. NATS' own defaults suit long-lived clients on a LAN;
// ours make a restarted server visible to callers within seconds.
const (
	// reconnectWait is short because a restarted local server is back in
	// well under a second, and while we reconnect appends fail with 503.
	reconnectWait = 250 * time.Millisecond
	// pingInterval and maxPingsOut bound how long a silently dead server
	// (no TCP reset, e.g. a partitioned VM) goes unnoticed: about 30 s
	// instead of the default 4 minutes.
	pingInterval = 10 * time.Second
	maxPingsOut  = 3
	dialTimeout  = 5 * time.Second
)

// Connect dials NATS at url with name as the client name shown in server
// monitoring. The connection reconnects forever (a service outlives NATS
// restarts rather than exiting), and disconnects, reconnects and
// asynchronous errors are logged through slog.Default(). opts are applied
// after the defaults, so callers can override any of them; for the
// all-in-one binary pass nats.InProcessServer(srv) to skip TCP entirely.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	log := slog.Default().With("nats_client", name)
	all := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.Timeout(dialTimeout),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed the connection ourselves
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("nats connection closed", "error", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "error", err)
		}),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	return nc, nil
}
