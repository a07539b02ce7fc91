package jsstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
)

var _ es.MultiAppender = (*Store)(nil)

// AppendAll implements es.MultiAppender with one ADR-50 atomic batch across
// the aggregates' subjects: the server checks each subject's expected last
// sequence on its first message and commits all of them or none. The
// batch's messages are stored at consecutive sequences, so each write's
// last sequence follows from the commit's.
func (s *Store) AppendAll(ctx context.Context, writes []es.Write) ([]uint64, error) {
	if len(writes) == 0 {
		return nil, errors.New("append all: no writes")
	}
	total := 0
	seen := make(map[string]bool, len(writes))
	prepared := make([][]es.Event, len(writes))
	for i, w := range writes {
		if err := w.Key.Validate(); err != nil {
			return nil, err
		}
		subject := w.Key.Subject(s.cfg.Context)
		switch {
		case seen[subject]:
			return nil, fmt.Errorf("append all: aggregate %s appears twice", w.Key.ID)
		case len(w.Events) == 0:
			return nil, fmt.Errorf("append all: no events for aggregate %s", w.Key.ID)
		}
		seen[subject] = true
		evts, err := prepare(w.Key, w.Events)
		if err != nil {
			return nil, fmt.Errorf("append all %s: %w", w.Key.ID, err)
		}
		prepared[i] = evts
		total += len(evts)
	}
	if total > MaxBatch {
		return nil, fmt.Errorf("append all: %d events, at most %d per append", total, MaxBatch)
	}
	if len(writes) == 1 {
		seq, err := s.Append(ctx, writes[0].Key, writes[0].Expected, writes[0].Events)
		if err != nil {
			return nil, err
		}
		return []uint64{seq}, nil
	}

	ctx, span := s.tracer.Start(ctx, s.cfg.Stream+" publish",
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingDestinationName(s.cfg.Stream),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingBatchMessageCount(total),
			attribute.Int("opsdesk.es.aggregates", len(writes)),
		))
	defer span.End()
	seqs, err := s.appendAll(ctx, writes, prepared, total)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("append all: %w", err)
	}
	return seqs, nil
}

func (s *Store) appendAll(ctx context.Context, writes []es.Write, prepared [][]es.Event, total int) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()

	msgs := make([]*nats.Msg, 0, total)
	expected := make(map[int]uint64, len(writes))
	ends := make([]int, len(writes)) // index of each write's last message
	for i, w := range writes {
		subject := w.Key.Subject(s.cfg.Context)
		expected[len(msgs)] = w.Expected
		for _, e := range prepared[i] {
			h := es.EncodeHeaders(e)
			natsx.Inject(ctx, h)
			msgs = append(msgs, &nats.Msg{Subject: subject, Header: nats.Header(h), Data: e.Data})
		}
		ends[i] = len(msgs) - 1
	}
	last, err := s.publishBatch(ctx, msgs, expected)
	if err == nil {
		first := last - uint64(len(msgs)-1)
		seqs := make([]uint64, len(writes))
		for i, end := range ends {
			seqs[i] = first + uint64(end)
		}
		return seqs, nil
	}

	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil, unavailable(err)
	}
	switch apiErr.ErrorCode {
	case errCodeWrongLastSequence, errCodeWrongLastSequenceConstant, errCodeBatchDuplicate:
		// A concurrent writer, or a retry of a batch that was stored: then
		// every write is where it was expected (the batch is atomic).
		seqs := make([]uint64, len(writes))
		for i, w := range writes {
			stored, ok, lerr := s.storedAt(ctx, w.Key.Subject(s.cfg.Context), w.Expected, prepared[i])
			switch {
			case lerr != nil:
				return nil, fmt.Errorf("check for a retried append after %q: %w", apiErr.Description, unavailable(lerr))
			case !ok && apiErr.ErrorCode == errCodeBatchDuplicate:
				return nil, fmt.Errorf("%w: %s", ErrDuplicateID, apiErr.Description)
			case !ok:
				return nil, fmt.Errorf("%w: %s", es.ErrConcurrency, apiErr.Description)
			}
			seqs[i] = stored
		}
		return seqs, nil
	case errCodeBatchIncomplete:
		return nil, fmt.Errorf("%w: %w", es.ErrUnavailable, err)
	}
	return nil, unavailable(err)
}
