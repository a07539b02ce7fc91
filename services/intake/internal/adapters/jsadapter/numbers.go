// Package jsadapter holds intake's outbound adapters on NATS JetStream: the
// per-tenant ticket number allocator and the fail-fast guard around the
// event store.
package jsadapter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
)

// Ticket number counters: stream NumbersStream holds one counter per tenant
// on subject NumbersSubjectPrefix.<tenant>.
const (
	NumbersStream        = "TICKET_NUMBERS"
	NumbersSubjectPrefix = "ticketno"
)

var tracer = otel.Tracer("opsdesk/intake")

// DefaultBlock is how many numbers one counter increment reserves.
const DefaultBlock = 32

// Numbers allocates human ticket numbers, unique per tenant, from a
// JetStream counter (hi/lo): one increment of the tenant's counter by Block
// reserves Block numbers that this process then hands out locally, so most
// creates do not touch the counter at all.
//
// Uniqueness holds across processes and restarts because every block comes
// from an atomic increment. The cost: numbers reserved but not handed out
// when the process stops or crashes are never used, leaving gaps; and with
// several replicas, numbers are not in creation order across replicas.
// Numbers are unique labels, not a count.
type Numbers struct {
	js        jetstream.JetStream
	block     int64
	timeout   time.Duration
	connected func() bool

	mu      sync.Mutex
	tenants map[string]*tenantBlock
}

// tenantBlock is the unused rest of a tenant's reserved block. lock is a
// one-slot semaphore rather than a mutex so waiters honour their context
// while another request refills the block.
type tenantBlock struct {
	lock      chan struct{}
	next, end int64 // next number to hand out, last reserved; next > end: empty
}

// NewNumbers returns an allocator reserving block numbers at a time (at
// least 1), giving up on the counter after timeout. connected, when not nil,
// reports whether NATS is reachable: while it is not, Next fails at once
// with es.ErrUnavailable instead of waiting for the timeout.
func NewNumbers(js jetstream.JetStream, block int64, timeout time.Duration, connected func() bool) *Numbers {
	if block < 1 {
		block = 1
	}
	return &Numbers{js: js, block: block, timeout: timeout, connected: connected, tenants: map[string]*tenantBlock{}}
}

func (n *Numbers) tenant(t string) *tenantBlock {
	n.mu.Lock()
	defer n.mu.Unlock()
	tb, ok := n.tenants[t]
	if !ok {
		tb = &tenantBlock{lock: make(chan struct{}, 1), next: 1, end: 0}
		n.tenants[t] = tb
	}
	return tb
}

// Next returns the tenant's next number. Failing to reach the counter wraps
// es.ErrUnavailable.
func (n *Numbers) Next(ctx context.Context, tenant string) (int64, error) {
	if !es.ValidToken(tenant) {
		return 0, fmt.Errorf("%w: tenant %q", es.ErrInvalidKey, tenant)
	}
	tb := n.tenant(tenant)
	select {
	case tb.lock <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: waiting for ticket number: %v", es.ErrUnavailable, ctx.Err())
	}
	defer func() { <-tb.lock }()

	if tb.next > tb.end {
		if n.connected != nil && !n.connected() {
			return 0, fmt.Errorf("%w: reserve ticket numbers: not connected to NATS", es.ErrUnavailable)
		}
		total, err := n.reserve(ctx, tenant)
		if err != nil {
			return 0, err
		}
		tb.next, tb.end = total-n.block+1, total
	}
	v := tb.next
	tb.next++
	return v, nil
}

// reserve increments the tenant's counter by one block and returns the new
// total, the last number of the block.
func (n *Numbers) reserve(ctx context.Context, tenant string) (int64, error) {
	subject := NumbersSubjectPrefix + "." + tenant
	ctx, span := tracer.Start(ctx, NumbersStream+" increment", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", subject),
			attribute.Int64("opsdesk.block", n.block),
		))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	total, err := natsx.CounterAdd(ctx, n.js, subject, n.block)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return 0, fmt.Errorf("%w: reserve ticket numbers for %s: %v", es.ErrUnavailable, tenant, err)
	}
	return total, nil
}
