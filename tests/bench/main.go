// Command bench measures OpsDesk's write path, read-model projection,
// rebuild and NATS memory against raw baselines measured in the same run,
// under both JetStream durability modes, and prints the figures with the
// targets of issue 2 (targets are reported, never asserted).
//
//	cd tests && go run ./bench -out ../bench-results.json
//
// It starts its own embedded nats-server in a temporary directory and
// creates throwaway Postgres databases on DATABASE_URL (default the local
// server), dropped at the end. docs/benchmarks.md explains every figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

// Config is one benchmark run.
type Config struct {
	// Duration of each timed phase.
	Duration time.Duration `json:"duration_ns"`
	// Concurrency is the number of closed-loop workers (publishers, HTTP clients).
	Concurrency int `json:"concurrency"`
	// RebuildEvents is how many events the rebuild phase replays.
	RebuildEvents int `json:"rebuild_events"`
	// MemAggregates is how many single-event aggregates the memory phase
	// creates (the figure is scaled to per 100,000).
	MemAggregates int `json:"mem_aggregates"`
	// E2ERate is the open-loop rate of the end-to-end phase, tickets/s.
	E2ERate float64 `json:"e2e_rate"`
	// DatabaseURL is the Postgres server the throwaway databases go on.
	DatabaseURL string `json:"-"`
	// Quick shrinks everything for a smoke run.
	Quick bool `json:"quick"`
	// Modes are the durability modes to run; nil means both.
	Modes []Durability `json:"-"`
	// Phases limits which phases run (nil: all); names as in phaseNames.
	Phases map[string]bool `json:"-"`
}

// phaseNames are the phases -phases accepts.
var phaseNames = []string{"raw", "intake", "alone", "half", "e2e", "rebuild", "memory"}

func (c Config) runs(phase string) bool { return c.Phases == nil || c.Phases[phase] }

// DefaultConfig is a full run: about four to five minutes on 2 cores.
func DefaultConfig() Config {
	return Config{
		Duration:      10 * time.Second,
		Concurrency:   32,
		RebuildEvents: 100_000,
		MemAggregates: 100_000,
		E2ERate:       1000,
		DatabaseURL:   databaseURL(),
	}
}

// QuickConfig is the smoke run: every phase, tiny numbers.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Quick = true
	c.Duration = time.Second
	c.Concurrency = 8
	c.RebuildEvents = 2000
	c.MemAggregates = 5000
	c.E2ERate = 200
	return c
}

// DefaultDatabaseURL is used when DATABASE_URL is not set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func databaseURL() string {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v
	}
	return DefaultDatabaseURL
}

func main() {
	if natsChild() {
		return
	}
	if err := cli(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func cli(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	d := DefaultConfig()
	var (
		duration    = fs.Duration("duration", d.Duration, "length of each timed phase")
		concurrency = fs.Int("concurrency", d.Concurrency, "closed-loop workers (publishers, HTTP clients)")
		rebuild     = fs.Int("rebuild-events", d.RebuildEvents, "events replayed by the rebuild phase")
		memAggs     = fs.Int("mem-aggregates", d.MemAggregates, "single-event aggregates created by the memory phase")
		e2eRate     = fs.Float64("e2e-rate", d.E2ERate, "open-loop rate of the end-to-end phase, tickets/s")
		out         = fs.String("out", "", "write every figure as JSON to this file")
		quick       = fs.Bool("quick", false, "smoke run: tiny numbers (overrides the other sizes unless set explicitly)")
		modes       = fs.String("modes", "default,sync_always", "durability modes to run: default, sync_always")
		phases      = fs.String("phases", "", "comma-separated subset of phases: raw,intake,alone,half,e2e,rebuild,memory (default all)")
		verbose     = fs.Bool("v", false, "log progress at debug level")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the whole run (this process: clients, intake, nats-server) to this file")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg := d
	if *quick {
		cfg = QuickConfig()
	}
	// Flags set explicitly win over -quick.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "duration":
			cfg.Duration = *duration
		case "concurrency":
			cfg.Concurrency = *concurrency
		case "rebuild-events":
			cfg.RebuildEvents = *rebuild
		case "mem-aggregates":
			cfg.MemAggregates = *memAggs
		case "e2e-rate":
			cfg.E2ERate = *e2eRate
		}
	})
	var err error
	if cfg.Modes, err = parseModes(*modes); err != nil {
		return err
	}
	if cfg.Phases, err = parsePhases(*phases); err != nil {
		return err
	}
	if cfg.Duration <= 0 || cfg.Concurrency < 1 || cfg.RebuildEvents < 1 || cfg.MemAggregates < 1 || cfg.E2ERate <= 0 {
		return fmt.Errorf("duration, concurrency, rebuild-events, mem-aggregates and e2e-rate must be positive")
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// Libraries log through the default logger (migrations, reconnects):
	// only their warnings belong in the benchmark's output.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: max(level, slog.LevelWarn)})))

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, cfg, log)
	if res != nil {
		printTable(stdout, res)
		if *out != "" {
			if werr := writeJSON(*out, res); werr != nil && err == nil {
				err = werr
			} else if werr == nil {
				fmt.Fprintf(stdout, "\nfigures written to %s\n", *out)
			}
		}
	}
	return err
}
