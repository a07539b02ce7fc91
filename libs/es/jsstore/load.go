package jsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/api/events"
	"github.com/opsdesk/opsdesk/libs/es"
)

// Load implements es.Store with the configured LoadMethod.
func (s *Store) Load(ctx context.Context, key es.Key) ([]es.Event, uint64, error) {
	if err := key.Validate(); err != nil {
		return nil, 0, err
	}
	subject := key.Subject(s.cfg.Context)
	ctx, span := s.tracer.Start(ctx, s.cfg.Stream+" load",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingDestinationName(subject),
			semconv.MessagingOperationTypeReceive,
			semconv.MessagingOperationName(string(s.cfg.LoadMethod)),
			attribute.String("opsdesk.tenant", key.Tenant),
		))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LoadTimeout)
	defer cancel()
	var (
		evts []es.Event
		err  error
	)
	if s.cfg.LoadMethod == LoadOrdered {
		evts, err = s.loadOrdered(ctx, subject)
	} else {
		evts, err = s.loadDirect(ctx, subject)
	}
	if err != nil {
		err = fmt.Errorf("load %s: %w", key.ID, unavailable(err))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, 0, err
	}
	span.SetAttributes(attribute.Int("opsdesk.es.events", len(evts)))
	if len(evts) == 0 {
		return nil, 0, nil
	}
	for i := range evts {
		evts[i].Version = uint64(i + 1)
	}
	return evts, evts[len(evts)-1].Sequence, nil
}

// loadDirect pages through the subject with direct batch gets.
func (s *Store) loadDirect(ctx context.Context, subject string) ([]es.Event, error) {
	var out []es.Event
	next := uint64(1)
	for {
		page, pending, err := s.directPage(ctx, subject, next, s.cfg.LoadPageSize)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if pending == 0 || len(page) == 0 {
			return out, nil
		}
		next = page[len(page)-1].Sequence + 1
	}
}

// directGetRequest is the body of $JS.API.DIRECT.GET.<stream> (ADR-31):
// up to Batch messages on NextBySubject from sequence Seq on.
type directGetRequest struct {
	Seq           uint64 `json:"seq"`
	NextBySubject string `json:"next_by_subj"`
	Batch         int    `json:"batch"`
}

// Headers of direct get replies.
const (
	headerStatus     = "Status"           // set by nats.go from the "NATS/1.0 <code>" line
	headerDescr      = "Description"      // the text after the code
	headerNumPending = "Nats-Num-Pending" // on the EOB: messages left after this batch
	headerSubject    = "Nats-Subject"
	headerSequence   = "Nats-Sequence"
)

// directPage asks for up to n events of subject from sequence from on. The
// server answers with one message per event and then an end-of-batch
// status (204) carrying how many matching messages remain; or with a single
// 404 when there are none. The server reads the batch under the stream's
// isolation lock, so an atomic batch is in a page entirely or not at all.
func (s *Store) directPage(ctx context.Context, subject string, from uint64, n int) ([]es.Event, uint64, error) {
	body, err := json.Marshal(directGetRequest{Seq: from, NextBySubject: subject, Batch: n})
	if err != nil {
		return nil, 0, err
	}
	// A page is at most n messages and the EOB; the buffer takes them all so
	// the shared subscription never blocks on a slow reader.
	replies, done, err := s.direct.request(s.apiPrefix+"DIRECT.GET."+s.cfg.Stream, body, n+1)
	if err != nil {
		return nil, 0, err
	}
	defer done()

	// Most aggregates are far smaller than a page: grow as events arrive.
	evts := make([]es.Event, 0, min(n, 16))
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("direct get %s from %d: %w", subject, from, ctx.Err())
		}
		if status := m.Header.Get(headerStatus); status != "" && len(m.Data) == 0 {
			switch status {
			case "204": // end of batch
				pending, err := strconv.ParseUint(m.Header.Get(headerNumPending), 10, 64)
				if err != nil {
					return nil, 0, fmt.Errorf("direct get %s: bad %s %q", subject, headerNumPending, m.Header.Get(headerNumPending))
				}
				return evts, pending, nil
			case "404": // nothing (more) on the subject
				return evts, 0, nil
			case "503":
				return nil, 0, fmt.Errorf("direct get %s: %w", subject, nats.ErrNoResponders)
			default:
				return nil, 0, fmt.Errorf("direct get %s: status %s %s", subject, status, m.Header.Get(headerDescr))
			}
		}
		seq, err := strconv.ParseUint(m.Header.Get(headerSequence), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("direct get %s: bad %s %q", subject, headerSequence, m.Header.Get(headerSequence))
		}
		e, err := es.DecodeHeaders(m.Header.Get(headerSubject), es.Header(m.Header), m.Data, seq)
		if err != nil {
			return nil, 0, err
		}
		evts = append(evts, e)
	}
}

// loadOrdered reads the subject with an ephemeral ordered consumer, up to
// the subject's last sequence read first. Stopping on the consumer's own
// pending count is not enough: a consumer can be handed the first events of
// an atomic batch while the server is still storing the rest, whereas the
// last-message lookup waits for the batch to be committed.
func (s *Store) loadOrdered(ctx context.Context, subject string) ([]es.Event, error) {
	last, err := s.lastSequence(ctx, subject)
	if err != nil || last == 0 {
		return nil, err
	}
	cons, err := s.js.OrderedConsumer(ctx, s.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		// Fail instead of retrying the creation forever with backoff.
		MaxResetAttempts: 1,
		// We delete the consumer when done; should that fail, the server
		// drops it soon after the load could have ended anyway.
		InactiveThreshold: s.cfg.LoadTimeout,
	})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.LoadPageSize))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	if info := cons.CachedInfo(); info != nil {
		defer func() {
			// Delete now rather than leave it to the inactivity threshold:
			// every load would otherwise leave a consumer on the server for
			// minutes.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.LoadTimeout)
			defer cancel()
			_ = s.js.DeleteConsumer(dctx, s.cfg.Stream, info.Name)
		}()
	}
	var out []es.Event
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		e, err := es.DecodeHeaders(m.Subject(), es.Header(m.Headers()), m.Data(), md.Sequence.Stream)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		if md.Sequence.Stream >= last {
			return out, nil
		}
	}
}

// lastSequence returns the sequence of the subject's last message (0 when
// there is none), from the stream leader.
func (s *Store) lastSequence(ctx context.Context, subject string) (uint64, error) {
	m, err := s.msgGet(ctx, msgGetRequest{LastBySubject: subject})
	if err != nil || m == nil {
		return 0, err
	}
	return m.Sequence, nil
}

// msgGetRequest is the body of $JS.API.STREAM.MSG.GET.<stream>: the message
// at Seq, the first on NextBySubject from Seq on, or the last on
// LastBySubject.
type msgGetRequest struct {
	Seq           uint64 `json:"seq,omitempty"`
	NextBySubject string `json:"next_by_subj,omitempty"`
	LastBySubject string `json:"last_by_subj,omitempty"`
}

// storedMsg is what msgGet returns of a message.
type storedMsg struct {
	Subject  string
	Sequence uint64
	ID       string // ce-id
}

// msgGet looks one message up through the stream leader's message-get
// API, which unlike direct get is never answered by a replica that may be
// behind. It returns nil when there is no such message.
func (s *Store) msgGet(ctx context.Context, req msgGetRequest) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := s.nc.RequestWithContext(ctx, s.apiPrefix+"STREAM.MSG.GET."+s.cfg.Stream, body)
	if err != nil {
		return nil, fmt.Errorf("get message %+v: %w", req, err)
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject  string `json:"subject"`
			Sequence uint64 `json:"seq"`
			Header   []byte `json:"hdrs"` // raw NATS header block, base64 in JSON
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, fmt.Errorf("get message %+v: malformed reply: %w", req, err)
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, nil
	case r.Error != nil:
		return nil, fmt.Errorf("get message %+v: %w", req, r.Error)
	case r.Message == nil:
		return nil, fmt.Errorf("get message %+v: reply without message", req)
	}
	m := &storedMsg{Subject: r.Message.Subject, Sequence: r.Message.Sequence}
	if len(r.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(r.Message.Header)
		if err != nil {
			return nil, fmt.Errorf("get message %d: headers: %w", m.Sequence, err)
		}
		m.ID = h.Get(events.HeaderID)
	}
	return m, nil
}

// responseMux receives the replies of many multi-message requests on one
// wildcard inbox subscription, created on first use, instead of
// subscribing and unsubscribing per request, which would churn the
// server's subject index under load.
type responseMux struct {
	nc *nats.Conn

	mu      sync.Mutex
	prefix  string // "<inbox>." ; requests reply to prefix+token
	sub     *nats.Subscription
	waiting map[string]chan *nats.Msg
}

// request publishes body to subject and returns the channel its replies
// arrive on (buffered for max replies) and a func to call when done.
func (r *responseMux) request(subject string, body []byte, max int) (<-chan *nats.Msg, func(), error) {
	r.mu.Lock()
	if r.sub == nil || !r.sub.IsValid() {
		r.prefix = r.nc.NewInbox() + "."
		sub, err := r.nc.Subscribe(r.prefix+"*", r.dispatch)
		if err != nil {
			r.mu.Unlock()
			return nil, nil, err
		}
		// Replies can come in bursts of a full page per request.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			r.mu.Unlock()
			_ = sub.Unsubscribe()
			return nil, nil, err
		}
		r.sub, r.waiting = sub, map[string]chan *nats.Msg{}
	}
	token := nuid.Next()
	ch := make(chan *nats.Msg, max)
	r.waiting[token] = ch
	reply := r.prefix + token
	r.mu.Unlock()

	done := func() {
		r.mu.Lock()
		delete(r.waiting, token)
		r.mu.Unlock()
	}
	if err := r.nc.PublishRequest(subject, reply, body); err != nil {
		done()
		return nil, nil, err
	}
	return ch, done, nil
}

// dispatch hands a reply to its waiting request; replies to abandoned
// requests are dropped.
func (r *responseMux) dispatch(m *nats.Msg) {
	token := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	r.mu.Lock()
	ch := r.waiting[token]
	r.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m:
	default: // more replies than the request can produce: never block the others
	}
}
