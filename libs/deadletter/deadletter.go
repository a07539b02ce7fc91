// Package deadletter moves messages that keep failing out of the way, into
// the DLQ stream, with the error that stopped them, so they never block the
// consumer behind them. Dead letters can be listed and replayed.
//
// Layout: stream DLQ, subjects dlq.<consumer>.<original-subject>. Each dead
// letter keeps the original body and headers and adds the Opsdesk-Dlq-*
// headers below.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and headers of dead letters.
const (
	Stream        = "DLQ"
	SubjectPrefix = "dlq"

	HeaderError      = "Opsdesk-Dlq-Error"      // why the message failed
	HeaderConsumer   = "Opsdesk-Dlq-Consumer"   // the projection or reaction that gave up
	HeaderStream     = "Opsdesk-Dlq-Stream"     // original stream
	HeaderSubject    = "Opsdesk-Dlq-Subject"    // original subject
	HeaderSequence   = "Opsdesk-Dlq-Sequence"   // original stream sequence
	HeaderAttempts   = "Opsdesk-Dlq-Attempts"   // deliveries (projections) or handler runs (reactions) before giving up
	HeaderDeliveries = "Opsdesk-Dlq-Deliveries" // JetStream delivery count of the original when it gave up, if known
	HeaderTime       = "Opsdesk-Dlq-Time"       // when it was dead-lettered (RFC 3339)

	headerPrefix = "Opsdesk-Dlq-"
)

// MaxAge is how long a dead letter is kept before JetStream expires it. A
// month gives operators time to notice, fix and replay.
const MaxAge = 30 * 24 * time.Hour

// maxErrorLen bounds the error header: a recovered panic carries a stack
// trace, and headers count against the server's max payload.
const maxErrorLen = 4096

// ErrNotFound is returned (wrapped) when a dead letter does not exist, or no
// replay function is registered for the consumer that gave up on it.
var ErrNotFound = errors.New("deadletter: not found")

// ErrNotReplayable is returned (wrapped) by Replay when the dead letter's
// original message is not a well-formed event, so no handler can take it;
// such a letter can only be inspected and discarded.
var ErrNotReplayable = errors.New("deadletter: original message is not a valid event")

// ErrInvalidConsumer is returned (wrapped) when a consumer name is not a
// single NATS subject token.
var ErrInvalidConsumer = errors.New("deadletter: invalid consumer name")

// EnsureStream creates or updates the DLQ stream: file storage, subjects
// dlq.>, kept for MaxAge, direct get on. Unlike the event streams it allows
// deleting messages, because a replayed dead letter is removed.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas <= 0 {
		replicas = 1
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "OpsDesk dead letters: messages a consumer gave up on, with the error",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      MaxAge,
		Replicas:    replicas,
		// Dedup window for the derived Nats-Msg-Id: a message dead-lettered
		// twice (its ack was lost) is stored once.
		Duplicates:  2 * time.Minute,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", Stream, err)
	}
	return nil
}

// Original is the message a consumer gave up on, as stored in its stream.
type Original struct {
	Stream   string
	Subject  string
	Sequence uint64 // stream sequence
	Header   map[string][]string
	Data     []byte
	// Deliveries is the JetStream delivery count when the consumer gave up
	// (0 when unknown).
	Deliveries uint64
}

// Publish moves msg, which consumer gave up on after attempts deliveries
// because of cause, to the DLQ stream. The dead letter keeps the original body
// and headers; its Nats-Msg-Id is derived from the original stream and
// sequence, so dead-lettering the same message twice stores it once.
func Publish(ctx context.Context, js jetstream.JetStream, consumer string, msg jetstream.Msg, cause error, attempts int) error {
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("dead-letter: metadata: %w", err)
	}
	return PublishOriginal(ctx, js, consumer, Original{
		Stream:     md.Stream,
		Subject:    msg.Subject(),
		Sequence:   md.Sequence.Stream,
		Header:     msg.Headers(),
		Data:       msg.Data(),
		Deliveries: md.NumDelivered,
	}, cause, attempts)
}

// PublishOriginal is Publish for callers that no longer hold the
// jetstream.Msg (the reaction router works on Watermill messages): it
// dead-letters the message described by o. It returns an error, and the
// caller must then not ack the original, when the DLQ did not confirm.
func PublishOriginal(ctx context.Context, js jetstream.JetStream, consumer string, o Original, cause error, attempts int) error {
	if !validToken(consumer) {
		return fmt.Errorf("dead-letter: %w: %q", ErrInvalidConsumer, consumer)
	}
	if cause == nil {
		cause = errors.New("unknown error")
	}
	out := nats.NewMsg(SubjectPrefix + "." + consumer + "." + o.Subject)
	out.Data = o.Data
	for k, v := range o.Header {
		// JetStream control headers of the original must not apply again, and
		// stale dead-letter headers must not mix with the new ones.
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, headerPrefix) {
			continue
		}
		out.Header[k] = v
	}
	out.Header.Set(HeaderError, truncate(cause.Error(), maxErrorLen))
	out.Header.Set(HeaderConsumer, consumer)
	out.Header.Set(HeaderStream, o.Stream)
	out.Header.Set(HeaderSubject, o.Subject)
	out.Header.Set(HeaderSequence, strconv.FormatUint(o.Sequence, 10))
	out.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	if o.Deliveries > 0 {
		out.Header.Set(HeaderDeliveries, strconv.FormatUint(o.Deliveries, 10))
	}
	out.Header.Set(HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	id := fmt.Sprintf("dlq-%s-%s-%d", consumer, o.Stream, o.Sequence)
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID(id), jetstream.WithExpectStream(Stream)); err != nil {
		return fmt.Errorf("dead-letter %s seq %d: %w", o.Stream, o.Sequence, err)
	}
	return nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…(truncated)"
}

// validToken reports whether s is one NATS subject token: non-empty, without
// '.', '*', '>' or whitespace.
func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	return !strings.ContainsAny(s, ".*> \t\r\n")
}
