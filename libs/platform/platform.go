// Package platform is the infrastructure every OpsDesk binary runs as
// runtime modules: telemetry, nats, postgres and http-server. Services are
// modules that depend on them and are built from the Deps they provide.
//
// Only the infrastructure changes between the all-in-one binary and a single
// service: with no NATS URL configured the nats module embeds a nats-server
// (clients connect in-process), otherwise it connects to the cluster. The
// broker stays in the loop in both cases, because the events are the system.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/secret"
	"github.com/opsdesk/opsdesk/libs/telemetry"
)

// Names of the infrastructure modules.
const (
	Telemetry  = "telemetry"
	NATS       = "nats"
	Postgres   = "postgres"
	HTTPServer = "http-server"
	Auth       = "auth"
)

// ServiceDeps are the modules every service module depends on.
var ServiceDeps = []string{NATS, Postgres, HTTPServer, Auth}

// Options adjust the infrastructure of one binary.
type Options struct {
	// ServiceName is the telemetry service.name, e.g. opsdesk-all or
	// opsdesk-intake; empty means opsdesk-<targets>.
	ServiceName string
	// Listener, when set, is served instead of listening on cfg.HTTP.Addr
	// (tests listen on 127.0.0.1:0 and read the address from it).
	Listener net.Listener
	// NoEmbeddedNATS makes a missing NATS URL an error instead of starting
	// an embedded server: single-service binaries run against a cluster.
	NoEmbeddedNATS bool
	// Postgres, when set, finds the database at start (the all-in-one
	// binary's local Postgres) instead of using cfg.Postgres.URL; the
	// returned stop runs when the postgres module stops.
	Postgres func(ctx context.Context) (url string, stop func(context.Context) error, err error)
	// Config adds sections to /config, e.g. {"intake": intakeCfg}; they must
	// hold no secrets.
	Config map[string]any
	// GenerateSecret lets the auth module keep a generated secret key in
	// <data dir>/secret.key when OPSDESK_SECRET_KEY is unset (the
	// all-in-one binary); otherwise the key is zero and the services that
	// need one refuse to start.
	GenerateSecret bool
}

// Platform holds the infrastructure. Its fields are set by the modules'
// Init, in dependency order, so a service module (which depends on them)
// sees them all.
type Platform struct {
	cfg  config.Config
	log  *slog.Logger
	opts Options
	mgr  *runtime.Manager

	// DeadLetters is where consumers register how to replay their dead
	// letters; the admin routes and the CLI replay through it.
	DeadLetters *deadletter.Registry

	mu         sync.Mutex
	telemetry  *telemetry.Telemetry
	natsServer *server.Server
	natsURL    string
	nc         *nats.Conn
	js         jetstream.JetStream
	db         *pgxpool.Pool
	http       *echo.Echo
	auth       *auth.Authenticator
	secret     secret.Key
}

// New returns the platform of one process whose modules mgr runs.
func New(cfg config.Config, log *slog.Logger, mgr *runtime.Manager, opts Options) *Platform {
	if log == nil {
		log = slog.Default()
	}
	return &Platform{cfg: cfg, log: log, opts: opts, mgr: mgr, DeadLetters: deadletter.NewRegistry()}
}

// Register registers the infrastructure modules with the manager.
func (p *Platform) Register() {
	for _, m := range p.Modules() {
		p.mgr.Register(m)
	}
}

// Modules are the infrastructure modules: telemetry first, then nats and
// postgres, then http-server.
func (p *Platform) Modules() []runtime.Module {
	return []runtime.Module{
		{Name: Telemetry, Init: p.initTelemetry},
		{Name: NATS, Deps: []string{Telemetry}, Init: p.initNATS},
		{Name: Postgres, Deps: []string{Telemetry}, Init: p.initPostgres},
		// http-server depends on nats and postgres so that it stops first:
		// in-flight requests drain while they can still publish and query.
		{Name: HTTPServer, Deps: []string{Telemetry, NATS, Postgres}, Init: p.initHTTP},
		{Name: Auth, Deps: []string{NATS, HTTPServer}, Init: p.initAuth},
	}
}

// Service returns the module of a service named name: it depends on nats,
// postgres and http-server, and build makes the service from their Deps.
func (p *Platform) Service(name string, build func(ctx context.Context, d runtime.Deps) (runtime.Service, error)) runtime.Module {
	return runtime.Module{
		Name: name,
		Deps: ServiceDeps,
		Init: func(ctx context.Context) (runtime.Service, error) {
			svc, err := build(ctx, p.Deps(name))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return svc, nil
		},
	}
}

// Deps returns the shared infrastructure for module name. Fields of modules
// that have not started (or are not selected) are nil. The logger is the
// process's; services add their own "module" attribute.
func (p *Platform) Deps(name string) runtime.Deps {
	p.mu.Lock()
	defer p.mu.Unlock()
	return runtime.Deps{
		Logger: p.log,
		NATS:   p.nc,
		JS:     p.js,
		DB:     p.db,
		HTTP:   p.http,
		Auth:   p.auth,
		Secret: p.secret,
		Streams: runtime.Streams{
			Replicas:        p.cfg.NATS.Replicas,
			DuplicateWindow: p.cfg.NATS.DuplicateWindow,
		},
		Mail:        runtime.Mail{Domain: p.cfg.Mail.Domain, SMTPAddr: p.cfg.Mail.SMTPAddr},
		DeadLetters: p.DeadLetters,
	}
}

// NATSURL is the URL clients outside the process use: the embedded server's
// loopback address or the configured one. Empty before the nats module ran.
func (p *Platform) NATSURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.natsURL
}

// Embedded reports whether the nats module runs an embedded server.
func (p *Platform) Embedded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.natsServer != nil
}

// HTTPAddr is the address the http-server listens on.
func (p *Platform) HTTPAddr() string {
	if p.opts.Listener != nil {
		return p.opts.Listener.Addr().String()
	}
	return p.cfg.HTTP.Addr
}

// embeddedDir is where the embedded server keeps its streams.
func (p *Platform) embeddedDir() string { return filepath.Join(p.cfg.Runtime.DataDir, "nats") }

// waitService is a Service that holds a resource: Run waits for ctx and Stop
// releases the resource.
type waitService struct{ stop func(context.Context) error }

func (w waitService) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (w waitService) Stop(ctx context.Context) error {
	if w.stop == nil {
		return nil
	}
	return w.stop(ctx)
}

// errNoNATS is returned by single-service binaries with no NATS URL.
var errNoNATS = errors.New("no NATS URL configured (OPSDESK_NATS_URL): this binary does not embed a NATS server")
