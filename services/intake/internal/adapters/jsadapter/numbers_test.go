package jsadapter_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/jsadapter"
)

func TestNumbersUniqueAcrossAllocators(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Conn(t)
	ctx := context.Background()
	if err := natsx.EnsureCounterStream(ctx, js, jsadapter.NumbersStream, []string{jsadapter.NumbersSubjectPrefix + ".>"}, 1); err != nil {
		t.Fatal(err)
	}
	// Two allocators (two replicas) with small blocks, so blocks interleave.
	_, js2 := srv.Conn(t)
	a := jsadapter.NewNumbers(js, 4, 5*time.Second, nil)
	b := jsadapter.NewNumbers(js2, 4, 5*time.Second, nil)

	const perAllocator = 60
	var (
		mu   sync.Mutex
		seen = map[int64]bool{}
		wg   sync.WaitGroup
	)
	for _, alloc := range []*jsadapter.Numbers{a, b} {
		for range perAllocator {
			wg.Go(func() {
				n, err := alloc.Next(ctx, "acme")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if seen[n] {
					t.Errorf("number %d handed out twice", n)
				}
				seen[n] = true
			})
		}
	}
	wg.Wait()
	if len(seen) != 2*perAllocator {
		t.Fatalf("%d distinct numbers, want %d", len(seen), 2*perAllocator)
	}
	// Both allocators used whole blocks, so with 4 | 60 there are no gaps.
	for i := int64(1); i <= 2*perAllocator; i++ {
		if !seen[i] {
			t.Fatalf("number %d missing: blocks were not used up", i)
		}
	}
	// Tenants have their own counters.
	if n, err := a.Next(ctx, "globex"); err != nil || n != 1 {
		t.Fatalf("first globex number = %d, %v; want 1", n, err)
	}
	// A fresh allocator (a restarted process) continues after every reserved
	// block: the rest of a's and b's blocks become gaps, never duplicates.
	c := jsadapter.NewNumbers(js, 4, 5*time.Second, nil)
	if n, err := c.Next(ctx, "acme"); err != nil || n != 2*perAllocator+1 {
		t.Fatalf("after restart = %d, %v; want %d", n, err, 2*perAllocator+1)
	}
}

func TestNumbersFailFast(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := srv.Conn(t)
	down := jsadapter.NewNumbers(js, 4, 5*time.Second, func() bool { return false })
	start := time.Now()
	if _, err := down.Next(context.Background(), "acme"); !errors.Is(err, es.ErrUnavailable) {
		t.Fatalf("disconnected: %v, want ErrUnavailable", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("fail-fast was not fast")
	}
	// No counter stream: the increment fails and says unavailable.
	n := jsadapter.NewNumbers(js, 4, time.Second, nil)
	if _, err := n.Next(context.Background(), "acme"); !errors.Is(err, es.ErrUnavailable) {
		t.Fatalf("no stream: %v, want ErrUnavailable", err)
	}
	if _, err := n.Next(context.Background(), "a.b"); !errors.Is(err, es.ErrInvalidKey) {
		t.Fatalf("bad tenant: %v, want ErrInvalidKey", err)
	}
}
