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
	"io"
	"log/slog"
	"net"

	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/platform"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/intake"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const target = "intake"

func main() { platform.Main(target, run) }

// run runs intake until ctx is cancelled or a module fails. ln, when set, is
// served instead of OPSDESK_HTTP_ADDR (tests).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ln net.Listener) error {
	intakeCfg := intake.DefaultConfig()
	return platform.Single{
		Name:    target,
		Version: version,
		Sections: []config.Section{{
			EnvPrefix:     "OPSDESK_INTAKE_",
			Target:        &intakeCfg,
			RegisterFlags: func(fs *flag.FlagSet) { intakeCfg.RegisterFlags("intake.", fs) },
			Validate:      func() error { return intakeCfg.Validate() },
		}},
		Check: func(cfg config.Config) error {
			if cfg.Auth.JWKSURL == "" {
				return errors.New("OPSDESK_AUTH_JWKS_URL (-auth.jwks-url) is required: the identity service's " +
					"/.well-known/jwks.json, e.g. http://identity:8080/.well-known/jwks.json")
			}
			return nil
		},
		Config: intakeCfg,
		Build: func(ctx context.Context, _ *slog.Logger, d runtime.Deps) (runtime.Service, error) {
			return intake.New(ctx, intakeCfg, d)
		},
	}.Run(ctx, args, getenv, stderr, ln)
}
