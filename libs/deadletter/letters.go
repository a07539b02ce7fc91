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

	"github.com/opsdesk/opsdesk/libs/es"
)

// DefaultLimit is how many letters List returns when asked for limit <= 0.
const DefaultLimit = 100

// listBatch is how many letters one pull of List fetches.
const listBatch = 256

// Letter is one dead letter as stored in the DLQ stream.
type Letter struct {
	Seq         uint64    // sequence in the DLQ stream: what Replay and Discard take
	Consumer    string    // the projection or reaction that gave up
	Stream      string    // original stream
	Subject     string    // original subject
	Error       string    // why it failed, last error
	OriginalSeq uint64    // original stream sequence
	Attempts    int       // deliveries or handler runs before giving up
	Deliveries  uint64    // JetStream delivery count of the original when it gave up (0 if unknown)
	Time        time.Time // when it was dead-lettered
	// Event is the original event, decoded from the letter's headers and
	// body with its original Subject and Sequence. For a malformed original
	// it holds whatever could be read, and Malformed says what is wrong.
	Event     es.Event
	Malformed string
}

// List returns the newest limit dead letters (DefaultLimit when limit <= 0)
// of consumer, or of every consumer when consumer is "", oldest first. It
// reads with an ordered consumer, so it needs no durable state.
func List(ctx context.Context, js jetstream.JetStream, consumer string, limit int) ([]Letter, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	filter := SubjectPrefix + ".>"
	if consumer != "" {
		if !validToken(consumer) {
			return nil, fmt.Errorf("list dead letters: %w: %q", ErrInvalidConsumer, consumer)
		}
		filter = SubjectPrefix + "." + consumer + ".>"
	}
	cons, err := js.OrderedConsumer(ctx, Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return []Letter{}, nil // no DLQ yet: nothing was ever dead-lettered
	}
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	// Keep only the newest limit letters in a ring: the DLQ is small (it
	// expires after MaxAge), so one pass over it is fine.
	ring := make([]Letter, 0, min(limit, listBatch))
	next := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		batch, err := cons.FetchNoWait(listBatch)
		if err != nil {
			return nil, fmt.Errorf("list dead letters: fetch: %w", err)
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("list dead letters: metadata: %w", err)
			}
			l := parse(md.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data(), md.Timestamp)
			if len(ring) < limit {
				ring = append(ring, l)
			} else {
				ring[next] = l
				next = (next + 1) % limit
			}
			done = md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("list dead letters: fetch: %w", err)
		}
		if done || got < listBatch {
			break
		}
	}
	return append(ring[next:], ring[:next]...), nil
}

// Get returns the dead letter at DLQ sequence seq, or an error wrapping
// ErrNotFound.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	stream, err := js.Stream(ctx, Stream)
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, notFound(err))
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, notFound(err))
	}
	if !strings.HasPrefix(raw.Subject, SubjectPrefix+".") {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	return parse(raw.Sequence, raw.Subject, raw.Header, raw.Data, raw.Time), nil
}

// Discard removes the dead letter at DLQ sequence seq without replaying it,
// for letters that can never succeed (see ErrNotReplayable).
func Discard(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	stream, err := js.Stream(ctx, Stream)
	if err != nil {
		return fmt.Errorf("discard dead letter %d: %w", seq, notFound(err))
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		return fmt.Errorf("discard dead letter %d: %w", seq, notFound(err))
	}
	return nil
}

// notFound maps JetStream's "no such stream/message" errors to ErrNotFound
// and keeps the cause for the log.
func notFound(err error) error {
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 404 {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	// Deleting a missing message fails with "message deletion unsuccessful"
	// and the server's reason only as text (err_code 10057, "no message found").
	if errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(err.Error(), "no message found") {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// parse reads a stored dead letter. The original event is decoded from the
// headers without the Opsdesk-Dlq-* ones.
func parse(seq uint64, subject string, h nats.Header, data []byte, stored time.Time) Letter {
	get := func(k string) string { return h.Get(k) }
	l := Letter{
		Seq:      seq,
		Consumer: get(HeaderConsumer),
		Stream:   get(HeaderStream),
		Subject:  get(HeaderSubject),
		Error:    get(HeaderError),
		Time:     stored,
	}
	if l.Consumer == "" {
		// Fall back to the subject layout dlq.<consumer>.<original>.
		if parts := strings.SplitN(subject, ".", 3); len(parts) == 3 {
			l.Consumer = parts[1]
			if l.Subject == "" {
				l.Subject = parts[2]
			}
		}
	}
	l.OriginalSeq, _ = strconv.ParseUint(get(HeaderSequence), 10, 64)
	l.Attempts, _ = strconv.Atoi(get(HeaderAttempts))
	l.Deliveries, _ = strconv.ParseUint(get(HeaderDeliveries), 10, 64)
	if t, err := time.Parse(time.RFC3339Nano, get(HeaderTime)); err == nil {
		l.Time = t
	}
	e, err := es.DecodeHeaders(l.Subject, originalHeader(h), data, l.OriginalSeq)
	l.Event = e
	if err != nil {
		l.Malformed = err.Error()
	}
	return l
}

// originalHeader is h without the dead-letter headers: what the original
// message carried.
func originalHeader(h nats.Header) es.Header {
	out := make(es.Header, len(h))
	for k, v := range h {
		if !strings.HasPrefix(k, headerPrefix) {
			out[k] = v
		}
	}
	return out
}
