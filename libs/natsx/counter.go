package natsx

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderIncr is the header that makes a publish to a counter stream an
// increment (nats-server 2.12+, ADR-49); its value is a signed integer.
const HeaderIncr = "Nats-Incr"

// EnsureCounterStream creates or updates a counter stream (AllowMsgCounter)
// on subjects, one counter per subject. Only the last message per subject
// is kept: it carries the running total, so older increments are dead
// weight. Counters back human ticket numbers, which must never be reused, so
// the stream denies delete and purge.
//
// The counter setting cannot be changed on an existing stream, so a stream
// of that name that is not a counter stream is an error.
func EnsureCounterStream(ctx context.Context, js jetstream.JetStream, name string, subjects []string, replicas int) error {
	if name == "" || len(subjects) == 0 {
		return fmt.Errorf("ensure counter stream: name and subjects are required (got %q, %v)", name, subjects)
	}
	if replicas <= 0 {
		replicas = 1
	}
	want := jetstream.StreamConfig{
		Name:              name,
		Subjects:          subjects,
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy, // the only retention counters allow
		Discard:           jetstream.DiscardOld,   // counters reject discard-new
		MaxMsgsPerSubject: 1,
		Replicas:          replicas,
		DenyDelete:        true,
		DenyPurge:         true,
		AllowDirect:       true,
		AllowMsgCounter:   true,
	}
	s, err := ensure(ctx, js, want, func(cur jetstream.StreamConfig) (jetstream.StreamConfig, error) {
		if !cur.AllowMsgCounter {
			return cur, fmt.Errorf("exists but is not a counter stream (AllowMsgCounter cannot be changed)")
		}
		next := cur
		next.Subjects = unionSubjects(cur.Subjects, want.Subjects)
		next.Replicas = want.Replicas
		next.DenyDelete, next.DenyPurge = true, true
		next.AllowDirect = true
		return next, nil
	})
	if err != nil {
		return err
	}
	if !s.CachedInfo().Config.AllowMsgCounter {
		return fmt.Errorf("stream %s: server does not support counters (needs nats-server 2.12 or later)", name)
	}
	return nil
}

// CounterAdd adds delta to the counter on subject and returns the new total.
// The increment is atomic on the server, so concurrent callers (across
// processes) each get a distinct total.
//
// An increment is not idempotent: if the call fails ambiguously (timeout,
// reconnect) it may or may not have been applied, and retrying may skip
// numbers. Numbers stay unique; they may have gaps.
func CounterAdd(ctx context.Context, js jetstream.JetStream, subject string, delta int64) (int64, error) {
	msg := nats.NewMsg(subject)
	msg.Header.Set(HeaderIncr, strconv.FormatInt(delta, 10))
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("increment counter %s: %w", subject, err)
	}
	total, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("increment counter %s: unexpected value %q in ack: %w", subject, ack.Value, err)
	}
	return total, nil
}
