package jsadapter

import (
	"context"
	"fmt"

	"github.com/opsdesk/opsdesk/libs/es"
)

// FailFastStore wraps an es.Store so that, while NATS is disconnected, calls
// fail at once with es.ErrUnavailable. Without it the client library would
// buffer the publish until it reconnects or the publish times out, and the
// HTTP client would wait for nothing: a clear 503 with Retry-After is better.
type FailFastStore struct {
	es.MultiAppender
	Connected func() bool
}

// AppendAll fails fast while disconnected, else delegates.
func (s FailFastStore) AppendAll(ctx context.Context, writes []es.Write) ([]uint64, error) {
	if !s.Connected() {
		return nil, fmt.Errorf("%w: append %d aggregates: not connected to NATS", es.ErrUnavailable, len(writes))
	}
	return s.MultiAppender.AppendAll(ctx, writes)
}

// Append fails fast while disconnected, else delegates.
func (s FailFastStore) Append(ctx context.Context, key es.Key, expected uint64, events []es.Event) (uint64, error) {
	if !s.Connected() {
		return 0, fmt.Errorf("%w: append %s: not connected to NATS", es.ErrUnavailable, key.ID)
	}
	return s.MultiAppender.Append(ctx, key, expected, events)
}

// Load fails fast while disconnected, else delegates.
func (s FailFastStore) Load(ctx context.Context, key es.Key) ([]es.Event, uint64, error) {
	if !s.Connected() {
		return nil, 0, fmt.Errorf("%w: load %s: not connected to NATS", es.ErrUnavailable, key.ID)
	}
	return s.MultiAppender.Load(ctx, key)
}
