package platform

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/telemetry"
)

// Single is a binary that runs one service against external infrastructure
// (the split deployment of docker-compose and Kubernetes): the same runtime
// as `opsdesk run --target=<Name>`, without the all-in-one conveniences (no
// embedded NATS, no local Postgres, no generated secret key).
type Single struct {
	// Name is the service and the only target, e.g. "intake".
	Name, Version string
	// Sections are the service's configuration (OPSDESK_<NAME>_*, ...).
	Sections []config.Section
	// Check refuses, before anything starts, a configuration the service
	// cannot run with in this shape (e.g. a missing OPSDESK_AUTH_JWKS_URL).
	Check func(config.Config) error
	// Config is shown at /config; it must hold no secrets.
	Config any
	// Build makes the service from the shared infrastructure; log is the
	// process's logger.
	Build func(ctx context.Context, log *slog.Logger, d runtime.Deps) (runtime.Service, error)
}

// Run runs the service until ctx is cancelled or a module fails. args are
// the flags, getenv the environment (os.Getenv), stderr where logs go; ln,
// when set, is served instead of OPSDESK_HTTP_ADDR (tests). With -h it
// prints the flags and returns flag.ErrHelp.
func (s Single) Run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ln net.Listener) error {
	// The target is fixed; putting it first lets the derived defaults
	// (service.name opsdesk-<name>) follow from it.
	cfg, err := config.Load(append([]string{"-target=" + s.Name}, args...), getenv, s.Sections...)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "usage: %s [flags]\n", s.Name)
		config.Usage(stderr, s.Sections...)
		return err
	}
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if !slices.Equal(cfg.Runtime.Target, []string{s.Name}) {
		return fmt.Errorf("this binary runs only the %s service; use opsdesk run --target=%v", s.Name, cfg.Runtime.Target)
	}
	if s.Check != nil {
		if err := s.Check(cfg); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	log := telemetry.NewLogger(stderr, cfg.Telemetry.LogLevel)
	slog.SetDefault(log)
	log.Info(s.Name+" starting", "version", s.Version)

	mgr := runtime.NewManager(log)
	plat := New(cfg, log, mgr, Options{
		Listener:       ln,
		NoEmbeddedNATS: true,
		Config:         map[string]any{s.Name: s.Config},
	})
	plat.Register()
	mgr.Register(plat.Service(s.Name, func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
		return s.Build(ctx, log, d)
	}))
	return mgr.Run(ctx, []string{s.Name})
}

// Main is a single-service binary's main: it runs run with the process's
// arguments and environment until SIGINT or SIGTERM, and exits 1 (printing
// the error) if it fails.
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ln net.Listener) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		stop()
		os.Exit(1)
	}
}
