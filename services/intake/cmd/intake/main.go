// Command intake runs the intake service alone, against an external NATS
// JetStream (OPSDESK_NATS_URL) and Postgres (DATABASE_URL): the split
// deployment of docker-compose and Kubernetes. It is the same runtime as
// `opsdesk run --target=intake`, without the all-in-one conveniences (no
// embedded NATS, no local Postgres).
package main

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
	"github.com/opsdesk/opsdesk/libs/platform"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/telemetry"
	"github.com/opsdesk/opsdesk/services/intake"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const target = "intake"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "intake: %v\n", err)
		os.Exit(1)
	}
}

// run runs intake until ctx is cancelled or a module fails. ln, when set, is
// served instead of OPSDESK_HTTP_ADDR (tests).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ln net.Listener) error {
	intakeCfg := intake.DefaultConfig()
	section := config.Section{
		EnvPrefix:     "OPSDESK_INTAKE_",
		Target:        &intakeCfg,
		RegisterFlags: func(fs *flag.FlagSet) { intakeCfg.RegisterFlags("intake.", fs) },
		Validate:      func() error { return intakeCfg.Validate() },
	}
	// The target is fixed; putting it first lets the derived defaults
	// (service.name opsdesk-intake) follow from it.
	cfg, err := config.Load(append([]string{"-target=" + target}, args...), getenv, section)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "usage: intake [flags]")
		config.Usage(stderr, section)
		return err
	}
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if !slices.Equal(cfg.Runtime.Target, []string{target}) {
		return fmt.Errorf("this binary runs only the intake service; use opsdesk run --target=%v", cfg.Runtime.Target)
	}
	if cfg.Auth.JWKSURL == "" {
		return errors.New("configuration: OPSDESK_AUTH_JWKS_URL (-auth.jwks-url) is required: the identity service's " +
			"/.well-known/jwks.json, e.g. http://identity:8080/.well-known/jwks.json")
	}
	log := telemetry.NewLogger(stderr, cfg.Telemetry.LogLevel)
	slog.SetDefault(log)
	log.Info("intake starting", "version", version)

	mgr := runtime.NewManager(log)
	plat := platform.New(cfg, log, mgr, platform.Options{
		Listener:       ln,
		NoEmbeddedNATS: true,
		Config:         map[string]any{target: intakeCfg},
	})
	plat.Register()
	mgr.Register(plat.Service(target, func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
		return intake.New(ctx, intakeCfg, d)
	}))
	return mgr.Run(ctx, []string{target})
}
