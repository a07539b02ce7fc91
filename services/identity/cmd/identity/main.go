// Command identity runs the identity service alone, against an external NATS
// JetStream (OPSDESK_NATS_URL) and Postgres (DATABASE_URL): the split
// deployment of docker-compose and Kubernetes. It is the same runtime as
// `opsdesk run --target=identity`, without the all-in-one conveniences (no
// embedded NATS, no local Postgres, no generated secret key, no demo tenant).
//
// It needs the installation's secret key (OPSDESK_SECRET_KEY), and creates
// the first tenant and admin from OPSDESK_BOOTSTRAP_* when the identity store
// is empty. It serves its own JWKS (/.well-known/jwks.json), so
// OPSDESK_AUTH_JWKS_URL may stay empty here; every other service points its
// OPSDESK_AUTH_JWKS_URL at this one.
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
	"github.com/opsdesk/opsdesk/services/identity"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const target = "identity"

func main() { platform.Main(target, run) }

// run runs identity until ctx is cancelled or a module fails. ln, when set,
// is served instead of OPSDESK_HTTP_ADDR (tests).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ln net.Listener) error {
	identityCfg := identity.DefaultConfig()
	// Demo stays false: a production install gets its first tenant from
	// OPSDESK_BOOTSTRAP_* or none at all, never the demo tenant.
	bootstrap := identity.Bootstrap{}
	return platform.Single{
		Name:    target,
		Version: version,
		Sections: []config.Section{
			{
				EnvPrefix:     "OPSDESK_IDENTITY_",
				Target:        &identityCfg,
				RegisterFlags: func(fs *flag.FlagSet) { identityCfg.RegisterFlags("identity.", fs) },
				Validate:      func() error { return identityCfg.Validate() },
			},
			{
				EnvPrefix:     "OPSDESK_BOOTSTRAP_",
				Target:        &bootstrap,
				RegisterFlags: bootstrap.RegisterFlags,
				Validate:      bootstrap.Validate,
			},
		},
		Check: func(cfg config.Config) error {
			if cfg.Secrets.Key == "" {
				return errors.New("OPSDESK_SECRET_KEY (-secret-key) is required: the installation's secret key, " +
					"32 bytes of base64 (openssl rand -base64 32), the same for every identity replica; keep it in a Secret")
			}
			return nil
		},
		// The bootstrap section holds the admin password: /config shows
		// identity's settings only.
		Config: identityCfg,
		Build: func(ctx context.Context, log *slog.Logger, d runtime.Deps) (runtime.Service, error) {
			return identity.New(ctx, identityCfg, identity.Options{
				Bootstrap: bootstrap,
				OnBootstrap: func(b identity.Bootstrapped) {
					log.Info("first start: created the first tenant and its admin from OPSDESK_BOOTSTRAP_*",
						"tenant", b.Tenant, "admin", b.AdminEmail)
				},
			}, d)
		},
	}.Run(ctx, args, getenv, stderr, ln)
}
