// Package es is the event-store contract every OpsDesk service writes through:
// events, aggregate keys, the Store interface with optimistic concurrency, and
// the load-decide-append loop that retries a command on a concurrent write.
//
// The JetStream adapter lives in es/jsstore; es/estest is the conformance suite
// every Store implementation must pass.
package es

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ErrConcurrency is returned by Store.Append when the aggregate has moved on
// since it was loaded (the expected last sequence no longer matches).
var ErrConcurrency = errors.New("es: concurrent update of aggregate")

// ErrUnavailable is returned when the event store cannot be reached or did
// not answer in time; the write may or may not have been stored, and a retry
// with the same event ids is safe. Ports answer 503 with Retry-After.
var ErrUnavailable = errors.New("es: event store unavailable")

// ErrInvalidKey is returned when a tenant or aggregate id is not a safe
// NATS subject token.
var ErrInvalidKey = errors.New("es: invalid aggregate key")

// Key names one aggregate: its subject is <context>.<tenant>.<id>, where the
// context is fixed by the Store.
type Key struct {
	Tenant string
	ID     string
}

// tokenRE allows the characters of prefixed ULIDs and slugs; it excludes the
// NATS subject metacharacters '.', '*', '>' and whitespace.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidToken reports whether s can be used as one subject token.
func ValidToken(s string) bool { return tokenRE.MatchString(s) }

// Validate checks that both parts of the key are subject-safe tokens.
func (k Key) Validate() error {
	if !ValidToken(k.Tenant) {
		return fmt.Errorf("%w: tenant %q", ErrInvalidKey, k.Tenant)
	}
	if !ValidToken(k.ID) {
		return fmt.Errorf("%w: id %q", ErrInvalidKey, k.ID)
	}
	return nil
}

// Subject is the NATS subject of the aggregate within context ctx.
func (k Key) Subject(context string) string { return context + "." + k.Tenant + "." + k.ID }

// KeyIn reads the aggregate of an event of context from its subject
// <context>.<tenant>.<id>, which the store guarantees, rather than from
// headers a producer could get wrong. Another shape is an error naming the
// event (consumers dead-letter it).
func (e Event) KeyIn(context string) (Key, error) {
	parts := strings.Split(e.Subject, ".")
	if len(parts) != 3 || parts[0] != context || !ValidToken(parts[1]) || !ValidToken(parts[2]) {
		return Key{}, fmt.Errorf("event %s: subject %q is not %s.<tenant>.<id>", e.ID, e.Subject, context)
	}
	return Key{Tenant: parts[1], ID: parts[2]}, nil
}

// Event is one domain event with its CloudEvents envelope. Fields below
// "Set by the store" are filled when an event is loaded or consumed.
type Event struct {
	ID            string    // ce-id, a ULID; also Nats-Msg-Id, so retries dedupe
	Type          string    // ce-type, e.g. opsdesk.ticket.created.v1
	Source        string    // ce-source, e.g. /services/intake
	Tenant        string    // ce-tenant
	AggregateID   string    // ce-subject
	Time          time.Time // ce-time
	Actor         string    // ce-actor: who caused it
	CorrelationID string    // ce-correlationid
	CausationID   string    // ce-causationid
	Data          []byte    // JSON payload

	// Set by the store.
	Subject     string // NATS subject
	Sequence    uint64 // stream sequence
	Version     uint64 // 1-based position within the aggregate (set by Load)
	TraceParent string // W3C traceparent stored with the event
}

// Store appends and loads the events of the aggregates of one context.
type Store interface {
	// Append stores events as one atomic batch at the end of the aggregate,
	// provided its last stored event has stream sequence expected (0 for an
	// aggregate with no events). It returns the stream sequence of the last
	// event stored. A concurrent writer yields ErrConcurrency. Retrying an
	// append with the same event ids stores them once.
	Append(ctx context.Context, key Key, expected uint64, events []Event) (uint64, error)
	// Load returns the aggregate's events in order and the stream sequence of
	// the last one (0 and no events for an unknown aggregate).
	Load(ctx context.Context, key Key) ([]Event, uint64, error)
}

// Write is one aggregate's share of a multi-aggregate append: its events go
// at the end of the aggregate provided its last stored event has stream
// sequence Expected (0 for an aggregate with no events).
type Write struct {
	Key      Key
	Expected uint64
	Events   []Event
}

// MultiAppender is a Store that can append to several aggregates as one
// atomic step: every write is stored, or none is. Commands that must keep a
// rule across aggregates use it, e.g. claiming a unique e-mail address
// (a claim aggregate whose id is derived from the address, appended at
// expected sequence 0) together with the user that takes it.
type MultiAppender interface {
	Store
	// AppendAll stores every write or none and returns, for each write, the
	// stream sequence of its last event. If any aggregate has moved on it
	// returns ErrConcurrency and stores nothing. Keys must be distinct and
	// every write must hold events. Retrying with the same event ids stores
	// them once.
	AppendAll(ctx context.Context, writes []Write) ([]uint64, error)
}

// Decide is the pure part of a command: given the aggregate's history it
// returns the new events, or a domain error.
type Decide func(history []Event) ([]Event, error)

// Result is what a successful command produced.
type Result struct {
	Events   []Event // the events appended (none when the command was a no-op)
	Sequence uint64  // stream sequence of the last event: the consistency token
	Version  uint64  // aggregate version after the command
}

// DefaultAttempts bounds load-decide-append retries on ErrConcurrency.
const DefaultAttempts = 5

// Execute runs load-decide-append, retrying on ErrConcurrency up to attempts
// times in total (DefaultAttempts when attempts <= 0). When every attempt
// conflicts it returns an error wrapping ErrConcurrency, which ports map to 409.
func Execute(ctx context.Context, s Store, key Key, attempts int, decide Decide) (Result, error) {
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if err := key.Validate(); err != nil {
		return Result{}, err
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		history, last, err := s.Load(ctx, key)
		if err != nil {
			return Result{}, fmt.Errorf("load %s: %w", key.ID, err)
		}
		events, err := decide(history)
		if err != nil {
			return Result{}, err
		}
		version := uint64(len(history))
		if len(events) == 0 {
			return Result{Sequence: last, Version: version}, nil
		}
		seq, err := s.Append(ctx, key, last, events)
		if errors.Is(err, ErrConcurrency) {
			lastErr = err
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("append %s: %w", key.ID, err)
		}
		return Result{Events: events, Sequence: seq, Version: version + uint64(len(events))}, nil
	}
	return Result{}, fmt.Errorf("after %d attempts: %w", attempts, lastErr)
}
