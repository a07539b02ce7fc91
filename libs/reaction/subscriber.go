package reaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Why our own message.Subscriber rather than watermill-nats/v2 pkg/jetstream
// (v2.1.3, "beta"): its Unmarshaler contract was fixable from outside, but
// the rest was not:
//   - Subscriber.Close drains the *nats.Conn it is given, and reactions share
//     the service's connection, so stopping one router would cut off every
//     other user of that connection;
//   - when its subscription context ends, it closes the output channel while
//     the NATS callback may still be selecting on a send to it (buffered
//     messages are delivered during Drain), which can panic with "send on
//     closed channel" in a NATS goroutine and crash the process at shutdown;
//   - the message context is cancelled on shutdown, so an in-flight handler
//     cannot finish, and after its AckWaitTimeout it silently moves on to the
//     next message while the previous one is still being retried;
//   - an unmarshal error continues with a nil message (nil dereference).
// This one is small: one durable pull consumer per topic, one message at a
// time (ordered, and a failing message never lets the next one overtake it
// within a delivery), the message kept "in progress" while the handler and
// its retries run, never a nil message, and a graceful drain on Close.

// Watermill metadata keys for the JetStream facts of a message. They start
// with '_' so they cannot be mistaken for a message header.
const (
	mdStream    = "_js_stream"
	mdSubject   = "_js_subject"
	mdSequence  = "_js_seq"
	mdDelivered = "_js_delivered"
)

// subscriber implements message.Subscriber over durable JetStream pull
// consumers, created beforehand; the topic is the consumer name.
type subscriber struct {
	consumers  map[string]jetstream.Consumer
	log        *slog.Logger
	cfg        Config
	onFail     func(error)
	closing    chan struct{} // closed by Close: stop taking messages
	hard       context.Context
	hardCancel context.CancelFunc // cancels in-flight handlers when Close times out
	wg         sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex
	failed    error
}

var _ message.Subscriber = (*subscriber)(nil)

func newSubscriber(consumers map[string]jetstream.Consumer, log *slog.Logger, cfg Config, onFail func(error)) *subscriber {
	hard, cancel := context.WithCancel(context.Background())
	return &subscriber{
		consumers: consumers, log: log, cfg: cfg, onFail: onFail,
		closing: make(chan struct{}), hard: hard, hardCancel: cancel,
	}
}

// Subscribe streams the messages of the durable consumer topic names, one
// at a time, until ctx ends or Close is called.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	cons, ok := s.consumers[topic]
	if !ok {
		return nil, fmt.Errorf("no consumer configured for topic %q", topic)
	}
	select {
	case <-s.closing:
		return nil, errors.New("subscriber closed")
	default:
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(prefetch))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", topic, err)
	}
	out := make(chan *message.Message)
	stopping := make(chan struct{})
	pumpDone := make(chan struct{})
	s.wg.Add(2)
	go func() {
		// Drain (not Stop): messages already buffered come out of Next and
		// are handed back with a nak instead of waiting out AckWait.
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
		case <-pumpDone:
		}
		close(stopping)
		it.Drain()
	}()
	go func() {
		defer s.wg.Done()
		defer close(pumpDone)
		defer close(out)
		s.pump(ctx, topic, it, out, stopping)
	}()
	return out, nil
}

// pump hands messages to the router one at a time and waits for each to be
// acked or nacked before taking the next.
func (s *subscriber) pump(ctx context.Context, topic string, it jetstream.MessagesContext, out chan<- *message.Message, stopping <-chan struct{}) {
	log := s.log.With("consumer", topic)
	for {
		jm, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			select {
			case <-stopping:
			default:
				s.fail(fmt.Errorf("consumer %s stopped: %w", topic, err))
			}
			return
		}
		if err != nil {
			// Missed heartbeats, leader changes: the iterator recovers by
			// itself; terminal errors close it and end up above.
			log.Warn("reaction consumer", "err", err)
			continue
		}
		select {
		case <-stopping:
			_ = jm.Nak() // shutting down: give it back now, not after AckWait
			continue
		default:
		}
		wm := unmarshal(jm)
		// Detached from ctx: shutdown lets the message in flight finish (up to
		// CloseTimeout); only a hard stop or the handle timeout cancels it.
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HandleTimeout)
		stopHard := context.AfterFunc(s.hard, cancel)
		wm.SetContext(mctx)
		select {
		case out <- wm:
			s.await(log, jm, wm)
		case <-stopping:
			_ = jm.Nak()
		}
		stopHard()
		cancel()
	}
}

// await settles jm once the router acked or nacked wm, keeping it in
// progress meanwhile so retries and backoff do not trigger a redelivery.
func (s *subscriber) await(log *slog.Logger, jm jetstream.Msg, wm *message.Message) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-wm.Acked():
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := jm.DoubleAck(ctx); err != nil {
				// The effect is done; the redelivery this causes is absorbed
				// by the handler's idempotency.
				log.Warn("reaction ack not confirmed, message will be redelivered", "subject", jm.Subject(), "err", err)
			}
			return
		case <-wm.Nacked():
			delivered := uint64(1)
			if md, err := jm.Metadata(); err == nil {
				delivered = md.NumDelivered
			}
			if err := jm.NakWithDelay(s.redeliveryDelay(delivered)); err != nil {
				log.Warn("reaction nak failed, message will be redelivered after AckWait", "subject", jm.Subject(), "err", err)
			}
			return
		case <-tick.C:
			_ = jm.InProgress()
		case <-s.hard.Done():
			return // Close gave up waiting; JetStream redelivers after AckWait
		}
	}
}

// redeliveryDelay doubles per delivery from RedeliveryDelay, up to a minute.
func (s *subscriber) redeliveryDelay(delivered uint64) time.Duration {
	d := s.cfg.RedeliveryDelay
	for i := uint64(1); i < delivered && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// Close stops every subscription, waits up to CloseTimeout for the messages
// in flight to be settled, then cancels the handlers still running. It does
// not touch the NATS connection, which belongs to the service.
func (s *subscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(s.cfg.CloseTimeout):
		s.hardCancel()
		<-done
		return fmt.Errorf("messages still in flight after %s were cancelled", s.cfg.CloseTimeout)
	}
}

func (s *subscriber) fail(err error) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
	}
	s.mu.Unlock()
	s.log.Error("reaction consumer failed", "err", err)
	go s.onFail(err)
}

func (s *subscriber) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// unmarshal turns a JetStream message into a Watermill message. It cannot
// fail: every header is copied into the metadata (first value; CloudEvents
// attributes are single-valued) next to the stream, subject, sequence and
// delivery count, and decoding into an es.Event happens in the handler
// chain, so a malformed message becomes a handler error that is
// dead-lettered, never a nil message or a silent drop.
func unmarshal(jm jetstream.Msg) *message.Message {
	md := message.Metadata{}
	for k, v := range jm.Headers() {
		if len(v) == 0 || strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "_") {
			continue
		}
		md[k] = v[0]
	}
	md[mdSubject] = jm.Subject()
	uuid := jm.Subject()
	if meta, err := jm.Metadata(); err == nil {
		md[mdStream] = meta.Stream
		md[mdSequence] = strconv.FormatUint(meta.Sequence.Stream, 10)
		md[mdDelivered] = strconv.FormatUint(meta.NumDelivered, 10)
		uuid = meta.Stream + ":" + md[mdSequence]
	}
	wm := message.NewMessage(uuid, jm.Data())
	wm.Metadata = md
	return wm
}
