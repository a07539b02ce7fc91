// Package natstest starts a real embedded JetStream server for tests: its
// own store in t.TempDir(), a random port, shut down at cleanup. Tests use
// it instead of mocks, and can stop and restart it to exercise outages.
package natstest

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/embedded"
)

// Server is an embedded JetStream server owned by one test.
type Server struct {
	dir  string
	port int

	mu  sync.Mutex
	srv *server.Server
}

// quiet drops the server's own log lines: test output should show the
// test's failures, not the server's startup banner.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Start runs a JetStream server in t.TempDir() on a random port and shuts
// it down when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Config{Dir: dir, Host: "127.0.0.1", Port: -1, Logger: quiet})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s := &Server{dir: dir, port: embedded.Port(srv), srv: srv}
	t.Cleanup(s.Shutdown)
	return s
}

// URL is the client URL of the server; it stays the same across Restart.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Conn opens a new client connection (reconnecting forever, as services
// do) and its JetStream context; the connection is closed at cleanup.
func (s *Server) Conn(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := natsx.Connect(s.URL(), t.Name())
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// Server returns the running nats-server (nil while shut down).
func (s *Server) Server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Shutdown stops the server and waits until it has released its port and
// store; the data stays for Restart. Calling it twice is fine.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// Restart starts the server again on the same port and store directory,
// so clients reconnect to it and find their streams. A running server is
// shut down first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := embedded.Start(embedded.Config{Dir: s.dir, Host: "127.0.0.1", Port: s.port, Logger: quiet})
	if err != nil {
		t.Fatalf("natstest: restart on port %d: %v", s.port, err)
	}
	s.srv = srv
}
