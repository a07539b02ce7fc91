package runtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/runtime"
)

func TestBackground(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	b := &runtime.Background{Name: "probe", Work: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err() // an error after Stop is no failure
	}}
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	<-started
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run after Stop: %v, want nil", err)
	}

	// A failure while running is returned.
	boom := errors.New("boom")
	failing := &runtime.Background{Name: "probe", Work: func(context.Context) error { return boom }}
	if err := failing.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}

	// Stop is bounded by its context when Work does not stop.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := &runtime.Background{Name: "stuck", Work: func(context.Context) error { <-release; return nil }}
	go func() { _ = stuck.Run(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := stuck.Stop(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stop of stuck work = %v, want a deadline error", err)
		}
	}
	// Stop before Run is a no-op.
	if err := (&runtime.Background{}).Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
