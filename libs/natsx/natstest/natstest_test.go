package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
)

// Restart brings the server back on the same URL with the same streams, and
// an existing client connection reconnects to it.
func TestRestartKeepsPortAndData(t *testing.T) {
	srv := natstest.Start(t)
	url := srv.URL()
	nc, js := srv.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.1", []byte("kept")); err != nil {
		t.Fatal(err)
	}

	srv.Shutdown()
	if srv.Server() != nil {
		t.Fatal("server still set after Shutdown")
	}
	srv.Shutdown() // twice is fine
	srv.Restart(t)
	if srv.URL() != url {
		t.Fatalf("URL changed from %s to %s", url, srv.URL())
	}

	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for !nc.IsConnected() {
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatal("client did not reconnect within 10s")
		}
	}
	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if string(m.Data) != "kept" {
		t.Fatalf("after restart: message %q, want %q", m.Data, "kept")
	}
}
