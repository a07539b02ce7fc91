package runtime

import (
	"context"
	"fmt"
	"sync"
)

// Background is the Service of a module whose work is one function that
// runs until its context ends (a projection, consumers): Stop cancels that
// context and waits for the function to return.
type Background struct {
	// Name prefixes Stop's timeout error.
	Name string
	// Work is the module's work; an error it returns while not stopped
	// fails the module.
	Work func(ctx context.Context) error

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Run runs Work until ctx is done or Stop is called.
func (b *Background) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	b.mu.Lock()
	b.cancel, b.done = cancel, done
	b.mu.Unlock()
	defer close(done)
	defer cancel()
	if err := b.Work(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil // stopped, not failed
}

// Stop cancels Work and waits for it to return, or for ctx.
func (b *Background) Stop(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: stop: %w", b.Name, ctx.Err())
	}
}
