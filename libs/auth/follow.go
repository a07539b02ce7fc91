package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// Follower keeps a State up to date from the IDENTITY stream, through an
// ordered consumer that starts at the first event (the stream holds few
// events per user, and API tokens and suspensions never expire from it).
// The State is ready once it has caught up with the stream as it was when
// following started; until then requests are answered 503 rather than
// judged on stale facts.
type Follower struct {
	js    jetstream.JetStream
	state *State
	log   *slog.Logger
	ready atomic.Bool
}

// NewFollower returns a Follower feeding state from js.
func NewFollower(js jetstream.JetStream, state *State, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.Default()
	}
	return &Follower{js: js, state: state, log: log.With("module", "auth")}
}

// Ready is nil once the State has caught up.
func (f *Follower) Ready() error {
	if !f.ready.Load() {
		return errors.New("auth: identity events not caught up yet")
	}
	return nil
}

// Run follows the stream until ctx ends. A missing stream (identity has not
// started yet) leaves nothing to know: the State is ready, and Run keeps
// looking for the stream.
func (f *Follower) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := f.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			f.ready.Store(true)
		} else {
			f.log.WarnContext(ctx, "following identity events failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	return nil
}

func (f *Follower) follow(ctx context.Context) error {
	stream, err := f.js.Stream(ctx, identityv1.Stream)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	target := info.State.LastSeq
	from := f.state.LastSequence() + 1
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return err
	}
	if f.state.LastSequence() >= target {
		f.ready.Store(true)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return err
	}
	defer msgs.Stop()
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	for {
		m, err := msgs.Next()
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		e, err := es.DecodeHeaders(m.Subject(), es.Header(m.Headers()), m.Data(), md.Sequence.Stream)
		if err == nil {
			err = f.state.Apply(e)
		}
		if err != nil {
			// A verifier goes on: one bad event must not lock everyone out.
			f.log.ErrorContext(ctx, "identity event skipped", "seq", md.Sequence.Stream, "subject", m.Subject(), "err", err)
		}
		if md.Sequence.Stream >= target {
			f.ready.Store(true)
		}
	}
}
