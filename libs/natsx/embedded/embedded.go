// Package embedded runs nats-server with JetStream inside the process, for
// the all-in-one binary and for tests (through natsx/natstest).
//
// Clients in the same process can skip TCP with
//
//	nc, err := natsx.Connect("", "opsdesk", nats.InProcessServer(srv))
//
// while external tools still reach the server on Host:Port.
package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config is how the embedded server runs.
type Config struct {
	// Dir is the JetStream store directory; it must survive restarts for
	// the streams to.
	Dir string
	// Host is the listen address; 127.0.0.1 unless the server must be
	// reachable from other machines.
	Host string
	// Port is the client port; -1 picks a free one (read it back with
	// srv.Addr()). 0 means the NATS default 4222.
	Port int
	// SyncAlways fsyncs every write before it is acknowledged: an
	// acknowledged event survives power loss, at a throughput cost.
	SyncAlways bool
	// SyncInterval is how often JetStream fsyncs when SyncAlways is off
	// (server default 2 minutes). A process crash loses nothing either way;
	// a power loss or kernel crash can lose what was written since.
	SyncInterval time.Duration
	// MaxStore caps JetStream file storage in bytes (0: server default,
	// a share of the disk).
	MaxStore int64
	// Logger receives the server's warnings and errors (notices at debug
	// level); nil means slog.Default().
	Logger *slog.Logger
}

// readyTimeout bounds startup: JetStream recovers its streams before the
// server accepts clients, which on a large store can take a few seconds.
const readyTimeout = 10 * time.Second

// Start runs a nats-server with JetStream and returns once it accepts
// clients. The caller must Shutdown it (and WaitForShutdown before reusing
// Dir in the same process).
func Start(cfg Config) (*server.Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("embedded nats: store directory is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName:        "opsdesk-embedded",
		Host:              cfg.Host,
		Port:              cfg.Port,
		JetStream:         true,
		StoreDir:          cfg.Dir,
		JetStreamMaxStore: cfg.MaxStore,
		SyncAlways:        cfg.SyncAlways,
		SyncInterval:      cfg.SyncInterval,
		// The host process owns signals (Ctrl-C stops every module in order).
		NoSigs: true,
		// No monitoring, cluster or leafnode ports: the all-in-one is one node.
		HTTPPort: 0,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	srv.SetLoggerV2(&slogAdapter{log: log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: not ready for connections after %s (store %s)", readyTimeout, cfg.Dir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: JetStream did not start (store %s)", cfg.Dir)
	}
	return srv, nil
}

// Port returns the client port srv listens on (useful after Port -1).
func Port(srv *server.Server) int {
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// slogAdapter routes nats-server logs to slog. The server is chatty at
// notice level (banner, every stream recovered), so notices go to debug.
type slogAdapter struct{ log *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.log.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  {}
