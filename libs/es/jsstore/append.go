package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/api/events"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
)

// ADR-50 atomic batch headers (nats-server 2.12+). nats.go v1.55.0 has no
// batch API, so the store speaks the protocol itself: every message carries
// the batch id and its 1-based position, the last one also the commit flag,
// and only the commit is a request; its reply is the PubAck of the batch.
const (
	headerBatchID     = "Nats-Batch-Id"       // at most 64 characters
	headerBatchSeq    = "Nats-Batch-Sequence" // 1..n, no gaps
	headerBatchCommit = "Nats-Batch-Commit"   // "1" on the last message
)

// JetStream error codes the store turns into outcomes.
const (
	errCodeWrongLastSequence         jetstream.ErrorCode = 10071 // JSStreamWrongLastSequenceErrF
	errCodeWrongLastSequenceConstant jetstream.ErrorCode = 10164 // same, without the sequence (R>1, or subject busy in a batch)
	errCodeBatchDuplicate            jetstream.ErrorCode = 10201 // JSAtomicPublishContainsDuplicateMessageErr
	// errCodeBatchIncomplete: the server lost track of the batch (a message
	// lost in a reconnect, or the commit came after the batch timeout).
	// Nothing was stored, and a retry is safe.
	errCodeBatchIncomplete jetstream.ErrorCode = 10176 // JSAtomicPublishIncompleteBatchErr
)

// ErrDuplicateID is returned (wrapped) when an event id of the append is
// already stored in the stream, but not as this append at this position of
// this aggregate: ids must be unique, so this is a caller bug.
var ErrDuplicateID = errors.New("jsstore: event id already used")

// batchAck is the reply to a commit: a PubAck for the whole batch, or an
// error.
type batchAck struct {
	Error    *jetstream.APIError `json:"error,omitempty"`
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	BatchID  string              `json:"batch,omitempty"`
	Count    int                 `json:"count,omitempty"`
}

// Append implements es.Store. One event is one publish; several are one
// atomic batch, so readers and consumers see all of them or none. The
// expected-sequence check covers the whole batch (JetStream checks it on the
// first message, and nothing else can be written to the subject in between).
//
// Events missing Tenant or AggregateID get them from key (a mismatch is an
// error), and a zero Time becomes now. Each event's traceparent is set to the
// publish span, so consumers' spans become its children.
func (s *Store) Append(ctx context.Context, key es.Key, expected uint64, evts []es.Event) (uint64, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	if len(evts) == 0 {
		return expected, nil
	}
	if len(evts) > MaxBatch {
		return 0, fmt.Errorf("append %s: %d events, at most %d per append", key.ID, len(evts), MaxBatch)
	}
	evts, err := prepare(key, evts)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", key.ID, err)
	}
	subject := key.Subject(s.cfg.Context)

	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String("nats"),
		semconv.MessagingDestinationName(subject),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		attribute.String("opsdesk.tenant", key.Tenant),
		attribute.Int64("opsdesk.es.expected_sequence", int64(expected)),
	}
	if len(evts) == 1 {
		attrs = append(attrs, semconv.MessagingMessageID(evts[0].ID))
	} else {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(evts)))
	}
	ctx, span := s.tracer.Start(ctx, s.cfg.Stream+" publish",
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	defer span.End()

	seq, err := s.append(ctx, subject, expected, evts)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return 0, fmt.Errorf("append %s: %w", key.ID, err)
	}
	span.SetAttributes(attribute.Int64("opsdesk.es.sequence", int64(seq)))
	return seq, nil
}

func (s *Store) append(ctx context.Context, subject string, expected uint64, evts []es.Event) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()

	msgs := make([]*nats.Msg, len(evts))
	for i, e := range evts {
		h := es.EncodeHeaders(e)
		natsx.Inject(ctx, h) // the publish span, replacing any traceparent the event came with
		msgs[i] = &nats.Msg{Subject: subject, Header: nats.Header(h), Data: e.Data}
	}

	var (
		seq uint64
		err error
	)
	if len(msgs) == 1 {
		seq, err = s.publishOne(ctx, subject, msgs[0], evts[0].ID, expected)
	} else {
		seq, err = s.publishBatch(ctx, msgs, map[int]uint64{0: expected})
	}
	if err == nil {
		return seq, nil
	}

	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, unavailable(err)
	}
	switch apiErr.ErrorCode {
	case errCodeWrongLastSequence, errCodeWrongLastSequenceConstant, errCodeBatchDuplicate:
		// Either someone else wrote first, or this is a retry of an append
		// that was stored but whose ack we never saw. On a single-server
		// stream JetStream checks the expected sequence before the message
		// id, so a retried single event reports a wrong sequence rather than
		// a duplicate; on a batch or a cluster it reports a duplicate. Look
		// at what follows `expected` to tell which.
		stored, ok, lerr := s.storedAt(ctx, subject, expected, evts)
		switch {
		case lerr != nil:
			return 0, fmt.Errorf("check for a retried append after %q: %w", apiErr.Description, unavailable(lerr))
		case ok:
			return stored, nil
		case apiErr.ErrorCode == errCodeBatchDuplicate:
			return 0, fmt.Errorf("%w: %s", ErrDuplicateID, apiErr.Description)
		default:
			return 0, fmt.Errorf("%w: %s", es.ErrConcurrency, apiErr.Description)
		}
	case errCodeBatchIncomplete:
		return 0, fmt.Errorf("%w: %w", es.ErrUnavailable, err)
	}
	return 0, unavailable(err)
}

// publishOne publishes one event with the expected last subject sequence.
// nats.go sends the header for expected == 0 too (it holds a pointer),
// which JetStream reads as "the subject must be empty".
func (s *Store) publishOne(ctx context.Context, subject string, msg *nats.Msg, id string, expected uint64) (uint64, error) {
	ack, err := s.js.PublishMsg(ctx, msg,
		jetstream.WithExpectLastSequencePerSubject(expected),
		jetstream.WithMsgID(id))
	if err != nil {
		return 0, err
	}
	if !ack.Duplicate {
		return ack.Sequence, nil
	}
	// A duplicate ack carries the sequence the id was first stored at.
	// Dedup is stream-wide, so make sure that is this event on this
	// aggregate: an id reused on another aggregate would otherwise be
	// reported stored when it was not.
	stored, err := s.msgGet(ctx, msgGetRequest{Seq: ack.Sequence})
	if err != nil {
		return 0, fmt.Errorf("check duplicate of %s: %w", id, err)
	}
	if stored == nil || stored.Subject != subject || stored.ID != id {
		return 0, fmt.Errorf("%w: %s is stored at sequence %d, not on %s", ErrDuplicateID, id, ack.Sequence, subject)
	}
	return ack.Sequence, nil
}

// publishBatch publishes msgs as one ADR-50 atomic batch. The messages
// before the commit are plain publishes: NATS keeps the order of one
// connection, the server stages them, and only the commit is acknowledged.
// If one of them is lost (say, a reconnect in between) the commit is
// refused as an incomplete batch and nothing is stored. expected maps the
// index of the first message of each subject to that subject's expected
// last sequence: the server checks a subject's expectation only on its
// first message in the batch, when the batch commits.
func (s *Store) publishBatch(ctx context.Context, msgs []*nats.Msg, expected map[int]uint64) (uint64, error) {
	id := ulid.Make().String()
	last := len(msgs) - 1
	for i, m := range msgs {
		m.Header.Set(headerBatchID, id)
		m.Header.Set(headerBatchSeq, strconv.Itoa(i+1))
		if seq, ok := expected[i]; ok {
			m.Header.Set(events.HeaderExpectedLastSubjectSeq, strconv.FormatUint(seq, 10))
		}
		if i < last {
			if err := s.nc.PublishMsg(m); err != nil {
				return 0, fmt.Errorf("publish batch message %d/%d: %w", i+1, len(msgs), err)
			}
			continue
		}
		m.Header.Set(headerBatchCommit, "1")
	}
	resp, err := s.nc.RequestMsgWithContext(ctx, msgs[last])
	if err != nil {
		return 0, fmt.Errorf("commit batch of %d: %w", len(msgs), err)
	}
	var ack batchAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("commit batch of %d: malformed ack %q: %w", len(msgs), resp.Data, err)
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.BatchID != id || ack.Count != len(msgs) || ack.Sequence == 0 {
		return 0, fmt.Errorf("commit batch of %d: unexpected ack %q", len(msgs), resp.Data)
	}
	return ack.Sequence, nil
}

// storedAt reports whether evts are the events stored right after sequence
// expected on subject, and if so the sequence of the last one. Because an
// append is accepted only when expected is the subject's last sequence, a
// stored append is exactly there, whatever was written after it.
//
// It reads from the stream leader, one message per request: a lagging
// replica answering a direct get could miss a stored retry and turn it into
// a conflict. This runs only after a conflict or duplicate, and a plain
// conflict is settled by the first message.
func (s *Store) storedAt(ctx context.Context, subject string, expected uint64, evts []es.Event) (uint64, bool, error) {
	next := expected + 1
	for _, e := range evts {
		m, err := s.msgGet(ctx, msgGetRequest{Seq: next, NextBySubject: subject})
		if err != nil {
			return 0, false, err
		}
		if m == nil || m.ID != e.ID {
			return 0, false, nil
		}
		next = m.Sequence + 1
	}
	return next - 1, true, nil
}

// prepare validates the events of one append and fills the envelope fields
// the key determines. It copies, so the caller's slice is not modified.
func prepare(key es.Key, in []es.Event) ([]es.Event, error) {
	out := make([]es.Event, len(in))
	seen := make(map[string]bool, len(in))
	now := time.Now().UTC()
	for i, e := range in {
		switch {
		case e.ID == "":
			return nil, fmt.Errorf("event %d has no id", i)
		case seen[e.ID]:
			return nil, fmt.Errorf("%w: id %s appears twice in one append", ErrDuplicateID, e.ID)
		case e.Type == "":
			return nil, fmt.Errorf("event %s has no type", e.ID)
		case e.Tenant != "" && e.Tenant != key.Tenant:
			return nil, fmt.Errorf("event %s has tenant %q, appended to tenant %q", e.ID, e.Tenant, key.Tenant)
		case e.AggregateID != "" && e.AggregateID != key.ID:
			return nil, fmt.Errorf("event %s has aggregate %q, appended to %q", e.ID, e.AggregateID, key.ID)
		}
		seen[e.ID] = true
		e.Tenant, e.AggregateID = key.Tenant, key.ID
		if e.Time.IsZero() {
			e.Time = now
		}
		out[i] = e
	}
	return out, nil
}
