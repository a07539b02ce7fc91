package main

import (
	"slices"
	"sync"
	"syscall"
	"time"
)

// Latency summarises a set of latency samples, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// recorder collects latency samples from many goroutines. Each sample is
// kept (a 10 s phase at a few thousand operations a second is a few hundred
// kilobytes), so percentiles are exact rather than bucketed.
type recorder struct {
	mu      sync.Mutex
	samples []time.Duration
}

func (r *recorder) add(d time.Duration) {
	r.mu.Lock()
	r.samples = append(r.samples, d)
	r.mu.Unlock()
}

func (r *recorder) addAll(ds []time.Duration) {
	r.mu.Lock()
	r.samples = append(r.samples, ds...)
	r.mu.Unlock()
}

func (r *recorder) summary() Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarise(r.samples)
}

// summarise sorts ds (in place) and returns its percentiles.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{
		Count: len(ds),
		P50:   ms(percentile(ds, 0.50)),
		P95:   ms(percentile(ds, 0.95)),
		P99:   ms(percentile(ds, 0.99)),
		Max:   ms(ds[len(ds)-1]),
		Mean:  ms(sum / time.Duration(len(ds))),
	}
}

// percentile returns the nearest-rank percentile q (0..1] of sorted ds.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// processCPU is the CPU time this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerOp is the CPU time used since before, per operation, in µs.
func cpuPerOp(before time.Duration, ops int) float64 {
	if ops == 0 {
		return 0
	}
	return float64((processCPU() - before).Microseconds()) / float64(ops)
}
