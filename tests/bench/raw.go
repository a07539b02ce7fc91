package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/natsx"
)

// Throughput is what a load phase measured.
type Throughput struct {
	// Ops counts successful operations (acks, 201s).
	Ops int `json:"ops"`
	// Errors counts failed operations (errors, non-201 answers).
	Errors int `json:"errors"`
	// Statuses counts HTTP answers by status code (HTTP phases only).
	Statuses map[int]int `json:"statuses,omitempty"`
	// Seconds is the measured wall time.
	Seconds float64 `json:"seconds"`
	// PerSecond is Ops / Seconds.
	PerSecond float64 `json:"per_second"`
	// Latency of successful operations; for open-loop phases measured from
	// the scheduled send time, so a stalled server cannot hide its queue.
	Latency Latency `json:"latency"`
	// Concurrency is the closed-loop worker count (0 for open loop).
	Concurrency int `json:"concurrency,omitempty"`
	// TargetRate is the open-loop rate asked for, per second (0 for closed loop).
	TargetRate float64 `json:"target_rate,omitempty"`
	// CPUMicrosPerOp is this process's CPU time (user+system: load
	// generator, intake, its projection client side, the embedded
	// nats-server; not Postgres) per successful operation.
	CPUMicrosPerOp float64 `json:"cpu_us_per_op,omitempty"`
	// FirstError is an example error, if any.
	FirstError string `json:"first_error,omitempty"`
}

// Raw baseline stream: the same settings as TICKETS (natsx.EnsureStream),
// its own subjects.
const (
	rawStream  = "RAWBENCH"
	rawContext = "raw"
)

// rawPublish publishes ticket-sized messages, each to a new subject (a new
// aggregate) with the same options as the event store's single-event
// append (expected last subject sequence 0, Nats-Msg-Id), from c goroutines
// for d: the floor under what intake can do.
func rawPublish(ctx context.Context, nc *nats.Conn, tmpl msgTemplate, c int, d time.Duration) (Throughput, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return Throughput{}, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{
		Name: rawStream, Subjects: []string{rawContext + ".>"}, Replicas: 1,
	}); err != nil {
		return Throughput{}, err
	}
	var (
		rec      recorder
		errs     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range c {
		wg.Go(func() {
			tenant := benchTenants[w%len(benchTenants)]
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				eventID := ulid.Make().String()
				aggID := "tk_" + ulid.Make().String()
				m := tmpl.msg(rawContext+"."+tenant+"."+aggID, eventID, aggID)
				t0 := time.Now()
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := js.PublishMsg(pctx, m,
					jetstream.WithExpectLastSequencePerSubject(0),
					jetstream.WithMsgID(eventID))
				cancel()
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			rec.addAll(lat)
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sum := rec.summary()
	t := Throughput{
		Ops: sum.Count, Errors: int(errs.Load()), Seconds: elapsed,
		PerSecond: float64(sum.Count) / elapsed, Latency: sum, Concurrency: c,
	}
	if v, ok := firstErr.Load().(string); ok {
		t.FirstError = v
	}
	return t, ctx.Err()
}
