package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/telemetry"
)

// Results is everything one run measured; it is what -out writes.
type Results struct {
	Started time.Time      `json:"started"`
	Seconds float64        `json:"seconds"`
	Machine Machine        `json:"machine"`
	Config  Config         `json:"config"`
	Modes   []ModeResult   `json:"modes"`
	Rebuild *RebuildResult `json:"rebuild,omitempty"`
	Memory  *MemoryResult  `json:"memory,omitempty"`
	// Figures is the printed table, one row per figure, with its target.
	Figures []Figure `json:"figures"`
	Errors  []string `json:"errors,omitempty"`
	// LoadStart and LoadEnd are the machine's 1-minute load average at the
	// start and end: other work on the machine skews every figure.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// ModeResult is the phases run under one durability mode.
type ModeResult struct {
	Mode      Durability `json:"mode"`
	EventSize EventSize  `json:"event_size"`
	// Raw is JetStream publish-with-ack of same-sized messages.
	Raw *Throughput `json:"raw,omitempty"`
	// Intake is POST /v1/tickets over HTTP at the same concurrency.
	Intake *Throughput `json:"intake,omitempty"`
	// IntakeToRaw is Intake.PerSecond / Raw.PerSecond.
	IntakeToRaw float64 `json:"intake_to_raw,omitempty"`
	// IntakeAlone is Intake with the projection paused (not a target:
	// it shows what the projection's share of the machine costs).
	IntakeAlone *Throughput `json:"intake_projection_paused,omitempty"`
	// DrainSeconds is how long the projection took, after the peak phase,
	// to apply the backlog the peak left.
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
	// Half is POST /v1/tickets at half the peak rate, open loop.
	Half *Throughput `json:"half,omitempty"`
	// E2E is the projection lag at a fixed rate.
	E2E    *E2EResult `json:"e2e,omitempty"`
	Errors []string   `json:"errors,omitempty"`
	// LoadStart is the 1-minute load average when the mode started.
	LoadStart float64 `json:"load_start"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model,omitempty"`
	MemoryMiB  int    `json:"memory_mib,omitempty"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel,omitempty"`
	Go         string `json:"go"`
	NATSServer string `json:"nats_server"`
	Postgres   string `json:"postgres,omitempty"`
}

// Run runs every phase cfg selects and returns what it measured; a phase
// that fails is recorded in Errors and the others still run.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Results, error) {
	if cfg.Modes == nil {
		cfg.Modes = []Durability{durabilityDefault, durabilitySyncAlways}
	}
	res := &Results{Started: time.Now().UTC(), Config: cfg, LoadStart: loadAvg()}
	// Production telemetry without a collector: every request, publish,
	// consume and SQL statement makes a sampled span (spans are built,
	// then dropped), logs are formatted. That cost is part of the figures.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "opsdesk-bench", OTLPEndpoint: "", Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	res.Machine = machine(ctx, cfg)

	var errs []error
	fail := func(where string, err error) {
		log.Error("phase failed", "phase", where, "err", err)
		res.Errors = append(res.Errors, where+": "+err.Error())
		errs = append(errs, fmt.Errorf("%s: %w", where, err))
	}
	for _, mode := range cfg.Modes {
		if !cfg.runs("raw") && !cfg.runs("intake") && !cfg.runs("alone") && !cfg.runs("half") && !cfg.runs("e2e") {
			break
		}
		mr := runMode(ctx, cfg, mode, log)
		for _, e := range mr.Errors {
			fail(mode.Name, errors.New(e))
		}
		res.Modes = append(res.Modes, mr)
		if ctx.Err() != nil {
			return finish(res), ctx.Err()
		}
	}
	if cfg.runs("rebuild") {
		log.Info("rebuild", "events", cfg.RebuildEvents)
		rb, err := rebuildPhase(ctx, cfg, 256)
		res.Rebuild = &rb
		if err != nil {
			fail("rebuild", err)
		}
	}
	if cfg.runs("memory") && ctx.Err() == nil {
		log.Info("nats memory", "aggregates", cfg.MemAggregates)
		settle := 20 * time.Second
		if cfg.Quick {
			settle = 0
		}
		mem, err := memoryPhase(ctx, cfg.MemAggregates, settle)
		res.Memory = &mem
		if err != nil {
			fail("memory", err)
		}
	}
	return finish(res), errors.Join(errs...)
}

func finish(res *Results) *Results {
	res.Seconds = time.Since(res.Started).Seconds()
	res.LoadEnd = loadAvg()
	res.Figures = figures(res)
	return res
}

// runMode runs raw, intake, alone, half and e2e under one durability mode, each on
// the same NATS server, database and intake instance.
func runMode(ctx context.Context, cfg Config, mode Durability, log *slog.Logger) (mr ModeResult) {
	mr.Mode, mr.LoadStart = mode, loadAvg()
	fail := func(phase string, err error) { mr.Errors = append(mr.Errors, phase+": "+err.Error()) }
	log = log.With("mode", mode.Name)
	log.Info("starting NATS, Postgres database and intake")
	env, err := newIntake(ctx, cfg, mode, true)
	if err != nil {
		fail("setup", err)
		return mr
	}
	defer env.close()
	tmpl, size, err := env.template(ctx)
	if err != nil {
		fail("setup", err)
		return mr
	}
	mr.EventSize = size
	if _, err := env.caughtUp(ctx, time.Minute); err != nil {
		fail("setup", err)
		return mr
	}
	maxConns := max(cfg.Concurrency, 64)
	load := newHTTPLoad(env.baseURL, maxConns)
	defer load.close()
	// Warm up connections, number blocks, caches and the read model's
	// indexes; not measured.
	load.closedLoop(ctx, cfg.Concurrency, min(2*time.Second, cfg.Duration/4))
	if _, err := env.caughtUp(ctx, 2*time.Minute); err != nil {
		fail("warm-up", err)
		return mr
	}

	if cfg.runs("raw") {
		log.Info("raw publish baseline", "concurrency", cfg.Concurrency, "duration", cfg.Duration)
		nc, err := natsx.Connect(env.nats.URL(), "bench-raw")
		if err != nil {
			fail("raw", err)
		} else {
			cpu := processCPU()
			raw, err := rawPublish(ctx, nc, tmpl, cfg.Concurrency, cfg.Duration)
			raw.CPUMicrosPerOp = cpuPerOp(cpu, raw.Ops)
			nc.Close()
			mr.Raw = &raw
			if err == nil {
				err = errIf(raw, "raw publish")
			}
			if err != nil {
				fail("raw", err)
			}
		}
	}
	if cfg.runs("intake") {
		log.Info("intake POST /v1/tickets, closed loop", "concurrency", cfg.Concurrency, "duration", cfg.Duration)
		cpu := processCPU()
		peak := load.closedLoop(ctx, cfg.Concurrency, cfg.Duration)
		peak.CPUMicrosPerOp = cpuPerOp(cpu, peak.Ops)
		mr.Intake = &peak
		if err := errIf(peak, "intake"); err != nil {
			fail("intake", err)
		}
		if mr.Raw != nil && mr.Raw.PerSecond > 0 {
			mr.IntakeToRaw = peak.PerSecond / mr.Raw.PerSecond
		}
		drain, err := env.caughtUp(ctx, 5*time.Minute)
		if err != nil {
			fail("intake", err)
			return mr
		}
		mr.DrainSeconds = drain.Seconds()
	}
	if cfg.runs("alone") {
		// The same load with the projection stopped: how much of the gap
		// to the raw baseline is intake's own request path, and how much
		// the projection (and Postgres) competing for the same cores.
		log.Info("intake POST /v1/tickets with the projection paused", "concurrency", cfg.Concurrency, "duration", cfg.Duration)
		if err := env.stopProjection(); err != nil {
			fail("alone", err)
			return mr
		}
		cpu := processCPU()
		alone := load.closedLoop(ctx, cfg.Concurrency, cfg.Duration)
		alone.CPUMicrosPerOp = cpuPerOp(cpu, alone.Ops)
		mr.IntakeAlone = &alone
		if err := errIf(alone, "intake alone"); err != nil {
			fail("alone", err)
		}
		env.startProjection()
		if _, err := env.caughtUp(ctx, 5*time.Minute); err != nil {
			fail("alone", err)
			return mr
		}
	}
	if cfg.runs("half") && mr.Intake != nil && mr.Intake.PerSecond > 0 {
		rate := mr.Intake.PerSecond / 2
		log.Info("intake POST /v1/tickets at half the peak, open loop", "rate", int(rate), "duration", cfg.Duration)
		half := load.openLoop(ctx, rate, cfg.Duration)
		mr.Half = &half
		if err := errIf(half, "half"); err != nil {
			fail("half", err)
		}
		if _, err := env.caughtUp(ctx, 5*time.Minute); err != nil {
			fail("half", err)
			return mr
		}
	}
	if cfg.runs("e2e") {
		log.Info("end to end: projection lag at a fixed rate", "rate", int(cfg.E2ERate), "duration", cfg.Duration)
		e2e, err := e2ePhase(ctx, env, cfg.E2ERate, cfg.Duration, maxConns)
		e2e.RequestedRate, e2e.Sustainable = cfg.E2ERate, true
		if err == nil && !keptUp(e2e.Load) && mr.Intake != nil && mr.Intake.PerSecond > 0 {
			// Intake itself could not take the rate, so the lag measured
			// only a growing queue: keep that attempt and measure at half
			// the peak, the rate the half phase showed it serves.
			attempt := e2e.Load
			rate := max(1, float64(int(mr.Intake.PerSecond/2)))
			log.Info("end to end: rate not sustained; measuring at half the peak", "achieved", int(attempt.PerSecond), "rate", int(rate))
			e2e, err = e2ePhase(ctx, env, rate, cfg.Duration, maxConns)
			e2e.RequestedRate, e2e.Sustainable, e2e.Unsustained = cfg.E2ERate, false, &attempt
		}
		mr.E2E = &e2e
		if err != nil {
			fail("e2e", err)
		}
	}
	return mr
}

// machine describes the host (best effort: missing facts stay empty).
func machine(ctx context.Context, cfg Config) Machine {
	m := Machine{
		CPUs:       goruntime.NumCPU(),
		OS:         goruntime.GOOS + "/" + goruntime.GOARCH,
		Go:         goruntime.Version(),
		NATSServer: server.VERSION,
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
				m.MemoryMiB = kb / 1024
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(cctx, cfg.DatabaseURL); err == nil {
		_ = conn.QueryRow(cctx, "show server_version").Scan(&m.Postgres)
		conn.Close(cctx)
	}
	return m
}

// loadAvg is the 1-minute load average (0 where /proc is missing).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscanf(string(b), "%f", &l)
	return l
}
