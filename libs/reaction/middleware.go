package reaction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/opsdesk/opsdesk/api/events"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/natsx"
)

// chain builds the handler of rt, outermost first: tracing, correlation id,
// poison queue, retry, attempt log, recoverer, decode. The poison queue sits
// outside the retry so it sees the error only once the retries are spent, and
// the recoverer inside it so a panic is retried like any error.
func (r *Router) chain(rt *route) message.NoPublishHandlerFunc {
	retry := middleware.Retry{
		MaxRetries:          r.cfg.MaxRetries,
		InitialInterval:     r.cfg.InitialInterval,
		MaxInterval:         maxInterval,
		Multiplier:          2,
		RandomizationFactor: 0.1,
		// Retrying cannot fix a malformed event or a permanent failure. (Once
		// the message context is done, Retry stops by itself.)
		ShouldRetry: func(p middleware.RetryParams) bool {
			return !errors.Is(p.Err, ErrPermanent) && !errors.Is(p.Err, es.ErrMalformedEvent)
		},
	}
	log := r.log.With("consumer", rt.consumer)
	h := decode(rt.handler)
	mws := []message.HandlerMiddleware{
		r.tracing(rt.consumer),
		correlation,
		r.poison(rt.consumer, log),
		retry.Middleware,
		attempts(log),
		middleware.Recoverer,
	}
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return func(msg *message.Message) error {
		_, err := h(msg)
		return err
	}
}

// decode turns the Watermill message into the es.Event the handler takes.
// A malformed message fails permanently, so it is dead-lettered at once.
func decode(h Handler) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		md := msg.Metadata
		seq, _ := strconv.ParseUint(md.Get(mdSequence), 10, 64)
		e, err := es.DecodeHeaders(md.Get(mdSubject), headers(md), msg.Payload, seq)
		if err != nil {
			return nil, Permanent(err)
		}
		return nil, h(msg.Context(), e)
	}
}

// headers rebuilds the message headers from the metadata, without the
// JetStream facts the subscriber added.
func headers(md message.Metadata) es.Header {
	h := make(es.Header, len(md))
	for k, v := range md {
		if !strings.HasPrefix(k, "_") {
			h[k] = []string{v}
		}
	}
	return h
}

// mdGet reads a header from the metadata whatever case the publisher gave
// it (NATS keeps case as sent; some clients canonicalise).
func mdGet(md message.Metadata, key string) string {
	if v, ok := md[key]; ok {
		return v
	}
	for k, v := range md {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// tracing starts the consumer span "<consumer> handle" as a child of the
// publisher's span and puts it in the message context.
func (r *Router) tracing(consumer string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			md := msg.Metadata
			ctx := natsx.Extract(msg.Context(), headers(md))
			ctx, span := r.tracer.Start(ctx, consumer+" handle",
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					attribute.String("messaging.system", "nats"),
					attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", md.Get(mdSubject)),
					attribute.String("messaging.consumer.group.name", consumer),
					attribute.String("messaging.message.id", mdGet(md, events.HeaderID)),
					attribute.String("opsdesk.service", r.cfg.Service),
					attribute.String("opsdesk.stream", md.Get(mdStream)),
					attribute.String("opsdesk.stream.seq", md.Get(mdSequence)),
					attribute.String("opsdesk.event.type", mdGet(md, events.HeaderType)),
				))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			result := "ok"
			switch {
			case err != nil:
				result = "nacked"
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			case md.Get(mdDeadLettered) != "":
				result = "deadlettered"
			}
			r.messages.Add(ctx, 1, metric.WithAttributes(
				attribute.String("consumer", consumer), attribute.String("result", result)))
			return out, err
		}
	}
}

// mdDeadLettered marks a message the poison queue moved to the DLQ.
const mdDeadLettered = "_dead_lettered"

// correlation makes sure every message has a correlation id (ce-correlationid):
// a message without one starts its own correlation, named after its event
// id, so a redelivery gets the same one.
func correlation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id := mdGet(msg.Metadata, events.HeaderCorrelationID)
		if id == "" {
			id = mdGet(msg.Metadata, events.HeaderID)
			if id == "" {
				id = DeriveID(msg.Metadata.Get(mdStream)+":"+msg.Metadata.Get(mdSequence), "correlation")
			}
			msg.Metadata.Set(events.HeaderCorrelationID, id)
		}
		trace.SpanFromContext(msg.Context()).SetAttributes(attribute.String("opsdesk.correlation_id", id))
		return h(msg)
	}
}

// runsKey holds, in the message context, the count of handler runs of the
// current delivery (set by poison, counted by attempts).
type runsKey struct{}

// attempts counts handler runs and logs each failure; it sits inside the
// retry middleware so it sees every run.
func attempts(log *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			n, _ := msg.Context().Value(runsKey{}).(*int)
			if n != nil {
				*n++
			}
			out, err := h(msg)
			if err != nil {
				run := 0
				if n != nil {
					run = *n
				}
				log.WarnContext(msg.Context(), "reaction handler failed",
					"subject", msg.Metadata.Get(mdSubject), "seq", msg.Metadata.Get(mdSequence),
					"event_id", msg.Metadata.Get(events.HeaderID), "attempt", run, "err", err)
			}
			return out, err
		}
	}
}

// poison moves a message whose handler still fails after the retries to the
// DLQ stream with the error and acks it, so it never blocks the consumer. If
// the DLQ does not confirm, it returns the error: the message is nacked and
// redelivered later, never dropped. On shutdown (context cancelled) it
// returns the error as is, for the next run to handle the message.
func (r *Router) poison(consumer string, log *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			runs := 0
			ctx := context.WithValue(msg.Context(), runsKey{}, &runs)
			msg.SetContext(ctx)
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, err
			}
			md := msg.Metadata
			seq, _ := strconv.ParseUint(md.Get(mdSequence), 10, 64)
			delivered, _ := strconv.ParseUint(md.Get(mdDelivered), 10, 64)
			orig := deadletter.Original{
				Stream:     md.Get(mdStream),
				Subject:    md.Get(mdSubject),
				Sequence:   seq,
				Header:     headers(md),
				Data:       msg.Payload,
				Deliveries: delivered,
			}
			// Detached so a handler that timed out can still be dead-lettered.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			span := trace.SpanFromContext(ctx)
			if dlErr := deadletter.PublishOriginal(pctx, r.js, consumer, orig, err, runs); dlErr != nil {
				log.ErrorContext(ctx, "reaction could not dead-letter message, it will be redelivered",
					"subject", orig.Subject, "seq", seq, "err", err, "dlq_err", dlErr)
				return nil, fmt.Errorf("%w (handler error: %v)", dlErr, err)
			}
			log.ErrorContext(ctx, "reaction dead-lettered message",
				"subject", orig.Subject, "seq", seq, "event_id", md.Get(events.HeaderID),
				"attempts", runs, "err", err)
			span.RecordError(err)
			span.SetStatus(codes.Error, "dead-lettered")
			span.AddEvent("dead-lettered", trace.WithAttributes(attribute.Int("attempts", runs)))
			md.Set(mdDeadLettered, "1")
			return nil, nil
		}
	}
}
