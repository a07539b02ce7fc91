package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// created is one acknowledged ticket: the stream sequence from its
// X-Consistency-Token and when the client had the 201.
type created struct {
	seq uint64
	at  time.Time
}

// httpLoad drives POST /v1/tickets against one base URL.
type httpLoad struct {
	client *http.Client
	url    string
	bodies [][]byte

	mu       sync.Mutex
	statuses map[int]int
	firstErr string
	// onCreated, when set, is called for every 201.
	onCreated func(created)
}

func newHTTPLoad(baseURL string, maxConns int) *httpLoad {
	tr := &http.Transport{
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	bodies := make([][]byte, 256)
	for i := range bodies {
		bodies[i] = requestBody(i)
	}
	return &httpLoad{
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url:      baseURL + "/v1/tickets",
		bodies:   bodies,
		statuses: map[int]int{},
	}
}

func (l *httpLoad) close() { l.client.CloseIdleConnections() }

// post sends one create; ok is true for a 201.
func (l *httpLoad) post(ctx context.Context, i int) (ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(l.bodies[i%len(l.bodies)]))
	if err != nil {
		l.fail(0, err.Error())
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchAuth.token(benchTenants[i%len(benchTenants)]))
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(0, err.Error())
		}
		return false
	}
	body, _ := io.ReadAll(resp.Body) // drain so the connection is reused
	resp.Body.Close()
	at := time.Now()
	if resp.StatusCode != http.StatusCreated {
		l.fail(resp.StatusCode, fmt.Sprintf("%d %s", resp.StatusCode, truncate(body, 200)))
		return false
	}
	l.count(http.StatusCreated)
	if l.onCreated != nil {
		seq, err := strconv.ParseUint(resp.Header.Get("X-Consistency-Token"), 10, 64)
		if err != nil {
			l.fail(-1, "201 without a valid X-Consistency-Token")
			return false
		}
		l.onCreated(created{seq: seq, at: at})
	}
	return true
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func (l *httpLoad) count(status int) {
	l.mu.Lock()
	l.statuses[status]++
	l.mu.Unlock()
}

func (l *httpLoad) fail(status int, msg string) {
	l.mu.Lock()
	l.statuses[status]++
	if l.firstErr == "" {
		l.firstErr = msg
	}
	l.mu.Unlock()
}

// result resets the counters and returns them with the latencies.
func (l *httpLoad) result(rec *recorder, elapsed time.Duration) Throughput {
	l.mu.Lock()
	statuses, firstErr := l.statuses, l.firstErr
	l.statuses, l.firstErr = map[int]int{}, ""
	l.mu.Unlock()
	sum := rec.summary()
	errs := 0
	for code, n := range statuses {
		if code != http.StatusCreated {
			errs += n
		}
	}
	return Throughput{
		Ops: sum.Count, Errors: errs, Statuses: statuses, Seconds: elapsed.Seconds(),
		PerSecond: float64(sum.Count) / elapsed.Seconds(), Latency: sum, FirstError: firstErr,
	}
}

// closedLoop runs c workers, each sending the next request as soon as the
// previous one is answered, for d: the peak throughput at concurrency c.
func (l *httpLoad) closedLoop(ctx context.Context, c int, d time.Duration) Throughput {
	var (
		rec  recorder
		wg   sync.WaitGroup
		next atomic.Int64
	)
	start := time.Now()
	deadline := start.Add(d)
	for range c {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if l.post(ctx, int(next.Add(1))) {
					lat = append(lat, time.Since(t0))
				}
			}
			rec.addAll(lat)
		})
	}
	wg.Wait()
	t := l.result(&rec, time.Since(start))
	t.Concurrency = c
	return t
}

// maxInFlight bounds an open-loop phase's outstanding requests, so an
// overloaded server shows as latency rather than as an exhausted client.
const maxInFlight = 2048

// openLoop sends requests at rate per second for d regardless of how fast
// they are answered (an open-loop generator, as real clients are).
// Latency is measured from each request's scheduled time, not from when
// it was actually sent, so a backlog counts against the server (no
// coordinated omission).
func (l *httpLoad) openLoop(ctx context.Context, rate float64, d time.Duration) Throughput {
	var (
		rec recorder
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxInFlight)
	)
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait) // pacing the generator, not waiting for a condition
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if l.post(ctx, i) {
				rec.add(time.Since(at))
			}
		})
	}
	wg.Wait()
	t := l.result(&rec, time.Since(start))
	t.TargetRate = rate
	return t
}
