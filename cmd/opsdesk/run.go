package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opsdesk/opsdesk/cmd/opsdesk/internal/localpg"
	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/platform"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/telemetry"
	"github.com/opsdesk/opsdesk/services/identity"
)

// localPostgresAddr is the server `run` tries when DATABASE_URL is unset.
const localPostgresAddr = "127.0.0.1:5432"

// run runs the target modules until ctx is cancelled or one fails.
func (c *cli) run(ctx context.Context, args []string) error {
	boot := &bootstrapped{}
	var cfg config.Config
	svcs := newServices(boot.set, func() bool { return devMode(cfg) })
	cfg, err := config.Load(args, c.getenv, sections(svcs)...)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(c.stdout, "usage: opsdesk run [flags]")
		config.Usage(c.stdout, sections(svcs)...)
		return nil
	}
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := telemetry.NewLogger(c.stderr, cfg.Telemetry.LogLevel)
	slog.SetDefault(log) // libraries that log through slog.Default (natsx)

	mgr := runtime.NewManager(log)
	pg := &postgresSource{dataDir: cfg.Runtime.DataDir, log: log}
	opts := platform.Options{Listener: c.listener, Config: map[string]any{}, GenerateSecret: devMode(cfg)}
	if cfg.Postgres.URL == "" {
		opts.Postgres = pg.find
	} else {
		pg.source = "DATABASE_URL (" + redactPostgres(cfg.Postgres.URL) + ")"
	}
	sel := selected(svcs, cfg.Runtime.Target)
	for _, s := range sel {
		opts.Config[s.name] = s.config()
	}
	plat := platform.New(cfg, log, mgr, opts)
	register(mgr, plat, svcs)

	banner := &banner{cfg: cfg, plat: plat, pg: pg, services: serviceNames(sel), boot: boot}
	go banner.printWhenReady(ctx, mgr, c.stderr)

	if err := mgr.Run(ctx, cfg.Runtime.Target); err != nil {
		return err
	}
	fmt.Fprintln(c.stderr, "opsdesk stopped")
	return nil
}

// register registers the infrastructure, every service and the "all"
// target with mgr.
func register(mgr *runtime.Manager, plat *platform.Platform, svcs []*service) {
	plat.Register()
	for _, s := range svcs {
		mgr.Register(plat.Service(s.name, s.build))
	}
	mgr.Register(runtime.Module{Name: config.TargetAll, Deps: serviceNames(svcs)})
}

// postgresSource finds Postgres for `run` when DATABASE_URL is unset, and
// remembers where it came from for the banner.
type postgresSource struct {
	dataDir string
	log     *slog.Logger

	mu     sync.Mutex
	source string
}

func (p *postgresSource) find(ctx context.Context) (string, func(context.Context) error, error) {
	in, err := localpg.Find(ctx, localpg.Options{
		ProbeAddr:  localPostgresAddr,
		ClusterDir: filepath.Join(p.dataDir, "postgres"),
		Database:   "opsdesk",
		Logger:     p.log,
	})
	if err != nil {
		return "", nil, err
	}
	p.mu.Lock()
	p.source = in.Source
	p.mu.Unlock()
	return in.URL, in.Stop, nil
}

func (p *postgresSource) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.source
}

// banner is what `run` prints for a person once every module runs: where
// the API is, the NATS and its durability, the Postgres, and a first
// request to try.
type banner struct {
	cfg      config.Config
	plat     *platform.Platform
	pg       fmt.Stringer
	services []string
	boot     *bootstrapped
}

// bootstrapped remembers what identity's first start created.
type bootstrapped struct {
	mu sync.Mutex
	b  *identity.Bootstrapped
}

func (b *bootstrapped) set(v identity.Bootstrapped) {
	b.mu.Lock()
	b.b = &v
	b.mu.Unlock()
}

func (b *bootstrapped) get() *identity.Bootstrapped {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b
}

// printWhenReady waits until every module runs, then prints the banner.
func (b *banner) printWhenReady(ctx context.Context, mgr *runtime.Manager, w io.Writer) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for mgr.Ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	b.write(w)
	slog.InfoContext(ctx, "opsdesk ready", "url", b.url(), "nats", b.plat.NATSURL(), "durability", b.durability(), "postgres", b.pg.String())
}

func (b *banner) write(w io.Writer) {
	var s strings.Builder
	fmt.Fprintf(&s, "\nOpsDesk %s is running: %s\n", version, strings.Join(b.services, ", "))
	fmt.Fprintf(&s, "  API:            %s   (/healthz /readyz /metrics /services /config)\n", b.url())
	natsWhere := "external"
	if b.plat.Embedded() {
		natsWhere = "embedded, data in " + filepath.Join(b.cfg.Runtime.DataDir, "nats")
	}
	fmt.Fprintf(&s, "  NATS:           %s (%s)\n", redactNATS(b.plat.NATSURL()), natsWhere)
	fmt.Fprintf(&s, "  JetStream sync: %s\n", b.durability())
	if pg := b.pg.String(); pg != "" {
		fmt.Fprintf(&s, "  Postgres:       %s\n", pg)
	}
	if slices.Contains(b.services, "intake") && b.cfg.Mail.SMTPAddr != "off" {
		tenant := identity.DemoTenant
		if boot := b.boot.get(); boot != nil {
			tenant = boot.Tenant
		}
		addr := b.cfg.Mail.SMTPAddr
		if a, ok := smtpListening.Load().(string); ok {
			addr = a // the bound address, when the listener is up (port 0 picks one)
		}
		fmt.Fprintf(&s, "  Inbound mail:   smtp://%s   (mail to %s@%s opens a ticket; webhook POST /v1/inbound/email)\n",
			addr, tenant, b.cfg.Mail.Domain)
	}
	if boot := b.boot.get(); boot != nil {
		fmt.Fprintf(&s, "  First start:    created tenant %q with admin %s\n", boot.Tenant, boot.AdminEmail)
		if boot.GeneratedPassword != "" {
			fmt.Fprintf(&s, "                  admin password: %s   (shown once; change it or set OPSDESK_BOOTSTRAP_*)\n", boot.GeneratedPassword)
		}
	}
	if slices.Contains(b.services, "identity") && slices.Contains(b.services, "intake") {
		tenant, email := identity.DemoTenant, identity.DemoAdmin
		if boot := b.boot.get(); boot != nil {
			tenant, email = boot.Tenant, boot.AdminEmail
		}
		fmt.Fprintf(&s, "  Try (the README explains each step):\n"+
			"    TOKEN=$(curl -s %s/v1/auth/token -d grant_type=password -d tenant=%s -d username=%s \\\n"+
			"      --data-urlencode password=\"$PASSWORD\" | jq -r .access_token)\n"+
			"    curl -si %s/v1/tickets -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n"+
			"      -d '{\"type\":\"incident\",\"title\":\"VPN down in Berlin\",\"impact\":\"high\",\"urgency\":\"high\"}'\n",
			b.url(), tenant, email, b.url())
	}
	s.WriteString("  Ctrl-C stops.\n\n")
	_, _ = io.WriteString(w, s.String())
}

// url is the API's base URL, with a wildcard listen host shown as loopback.
func (b *banner) url() string {
	host, port, err := net.SplitHostPort(b.plat.HTTPAddr())
	if err != nil {
		return "http://" + b.plat.HTTPAddr()
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// durability says in plain words what an acknowledged write survives.
func (b *banner) durability() string {
	if !b.plat.Embedded() {
		return "set by the NATS server (its jetstream sync_interval; nats-server's default fsyncs every 2m, " +
			"so a power loss can lose acknowledged events unless it is set to always or the streams are replicated)"
	}
	e := b.cfg.NATS.Embedded
	if e.SyncAlways() {
		return "always (every event is fsynced before it is acknowledged; an acknowledged event survives a power loss)"
	}
	return fmt.Sprintf("every %s (a power loss can lose acknowledged events from the last interval; "+
		"set OPSDESK_NATS_SYNC=always to fsync before every ack)", e.SyncInterval)
}

// redactNATS hides credentials in a NATS URL (a token is its user name).
func redactNATS(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "xxxxx" + u[at:]
		}
	}
	return u
}

// redactPostgres shows a Postgres URL without its password; the key=value
// form is not shown at all.
func redactPostgres(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "key=value settings"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
