// Package config loads the shared infrastructure configuration of an
// OpsDesk process: defaults, then environment variables, then command-line
// flags (flags win over the environment, the environment over defaults),
// validated with errors that name the setting. Every setting is documented
// in docs/configuration.md; keep the two in step.
//
// Environment variables are OPSDESK_*, except the conventional DATABASE_URL
// and OTEL_* ones. Flags are -<section>.<kebab-name> (-http.addr). A binary
// adds its services' settings as Sections (OPSDESK_INTAKE_*, -intake.*).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Sync modes of the embedded NATS server's JetStream store.
const (
	// SyncModeInterval fsyncs every SyncInterval: a process crash loses
	// nothing, a power loss or kernel crash can lose what was acknowledged
	// since the last fsync.
	SyncModeInterval = "interval"
	// SyncModeAlways fsyncs before every acknowledgement: nothing
	// acknowledged is lost, at a large cost in write throughput.
	SyncModeAlways = "always"
)

// TargetAll is the target that runs every service in one process.
const TargetAll = "all"

// HTTP configures the HTTP listener. It has the same fields as
// httpx.Config, so httpx.Config(cfg.HTTP) converts it.
type HTTP struct {
	// Addr is the listen address, host:port.
	Addr string `env:"OPSDESK_HTTP_ADDR"`
	// BodyLimit caps request bodies ("1M", "512K"); larger ones get 413.
	BodyLimit string `env:"OPSDESK_HTTP_BODY_LIMIT"`
	// ShutdownTimeout bounds draining in-flight requests at shutdown.
	ShutdownTimeout time.Duration `env:"OPSDESK_HTTP_SHUTDOWN_TIMEOUT"`
	// TrustedProxies are the networks (CIDRs) of reverse proxies whose
	// X-Forwarded-For names the client; empty trusts no header and takes
	// the connection's address (which sign-in throttling counts on).
	TrustedProxies []string `env:"OPSDESK_HTTP_TRUSTED_PROXIES"`
}

// Auth configures how every service verifies its callers.
type Auth struct {
	// JWKSURL is where the identity service publishes the keys access
	// tokens are signed with. Empty: this process's own listener, which is
	// right when identity runs in it (the all-in-one binary).
	JWKSURL string `env:"OPSDESK_AUTH_JWKS_URL"`
}

// Mail configures mail: the domain of help-desk addresses and of OpsDesk's
// Message-IDs, and intake's SMTP listener.
type Mail struct {
	// Domain makes each tenant's default help-desk address
	// <slug>@Domain, and ends every Message-ID OpsDesk writes.
	Domain string `env:"OPSDESK_MAIL_DOMAIN"`
	// SMTPAddr is where intake's SMTP listener accepts inbound mail,
	// host:port; "off" disables it.
	SMTPAddr string `env:"OPSDESK_SMTP_ADDR"`
}

// Secrets holds the installation's secret key.
type Secrets struct {
	// Key is 32 bytes of base64 (openssl rand -base64 32), shared by every
	// service that seals or opens secrets (identity, notifications). Empty:
	// the all-in-one binary keeps a generated one in DataDir/secret.key;
	// the single-service binaries refuse to start without it.
	Key string `env:"OPSDESK_SECRET_KEY"`
}

// NATS configures the connection to NATS JetStream, or the embedded server
// used when URL is empty.
type NATS struct {
	// URL of an external NATS server or cluster (comma-separated for
	// several seeds). Empty starts an embedded nats-server in DataDir/nats.
	URL string `env:"OPSDESK_NATS_URL"`
	// Embedded configures the in-process server (ignored when URL is set).
	Embedded Embedded
	// Replicas of the streams OpsDesk creates: 1 for one server, 3 in a
	// production cluster.
	Replicas int `env:"OPSDESK_NATS_REPLICAS"`
	// DuplicateWindow is how long streams remember message ids to drop
	// retried publishes; at least 2m.
	DuplicateWindow time.Duration `env:"OPSDESK_NATS_DUPLICATE_WINDOW"`
}

// Embedded configures the embedded nats-server.
type Embedded struct {
	// Host the embedded server listens on; loopback keeps it private while
	// the nats CLI still works.
	Host string `env:"OPSDESK_NATS_HOST"`
	// Port it listens on; -1 picks a free port. The default, 14222, does not
	// clash with a NATS server already on 4222.
	Port int `env:"OPSDESK_NATS_PORT"`
	// Sync is SyncModeInterval or SyncModeAlways.
	Sync string `env:"OPSDESK_NATS_SYNC"`
	// SyncInterval is the fsync period in interval mode.
	SyncInterval time.Duration `env:"OPSDESK_NATS_SYNC_INTERVAL"`
}

// SyncAlways reports whether the embedded store fsyncs every write.
func (e Embedded) SyncAlways() bool { return e.Sync == SyncModeAlways }

// Durability describes, for the start-up log, what an acknowledged write
// survives under these settings.
func (n NATS) Durability() string {
	if n.URL != "" {
		return "external NATS at " + redactURLs(n.URL) + ": durability is that server's sync setting"
	}
	if n.Embedded.SyncAlways() {
		return "embedded NATS, sync always: every acknowledged event is on disk (fsync before ack)"
	}
	return fmt.Sprintf("embedded NATS, sync every %s: a process crash loses nothing, "+
		"a power loss or kernel crash can lose up to %s of acknowledged events (set OPSDESK_NATS_SYNC=always to prevent it)",
		n.Embedded.SyncInterval, n.Embedded.SyncInterval)
}

// Postgres configures the database holding the read models.
type Postgres struct {
	// URL is a PostgreSQL connection string (URL or key=value form). Empty
	// means: the server on 127.0.0.1:5432 if it answers, else a private
	// cluster under DataDir/postgres.
	URL string `env:"DATABASE_URL"`
	// MaxConns caps the connection pool.
	MaxConns int `env:"OPSDESK_POSTGRES_MAX_CONNS"`
}

// Telemetry configures traces, metrics and logs.
type Telemetry struct {
	// ServiceName is the OpenTelemetry service.name. Empty becomes
	// opsdesk-<targets> ("opsdesk-all", "opsdesk-intake").
	ServiceName string `env:"OTEL_SERVICE_NAME"`
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector; empty exports
	// nothing over OTLP (Prometheus /metrics is always served).
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// SampleRatio is the fraction of new traces sampled, in (0, 1].
	SampleRatio float64 `env:"OPSDESK_TRACE_SAMPLE_RATIO"`
	// LogLevel is the lowest level logged: debug, info, warn or error.
	LogLevel slog.Level `env:"OPSDESK_LOG_LEVEL"`
}

// Runtime says what this process runs and where it keeps local data.
type Runtime struct {
	// Target lists the modules to run: "all", or services such as
	// "intake" (comma-separated in the environment and the flag).
	Target []string `env:"OPSDESK_TARGET"`
	// DataDir holds local state: the embedded NATS store, a private
	// Postgres cluster.
	DataDir string `env:"OPSDESK_DATA_DIR"`
}

// Config is the shared infrastructure configuration of one process.
type Config struct {
	HTTP
	NATS
	Postgres
	Telemetry
	Runtime
	Auth
	Secrets
	Mail
}

// Default returns the defaults every setting starts from.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:            "127.0.0.1:8080",
			BodyLimit:       "1M",
			ShutdownTimeout: 10 * time.Second,
		},
		NATS: NATS{
			Embedded: Embedded{
				Host:         "127.0.0.1",
				Port:         14222,
				Sync:         SyncModeInterval,
				SyncInterval: 2 * time.Minute,
			},
			Replicas:        1,
			DuplicateWindow: 2 * time.Minute,
		},
		Postgres:  Postgres{MaxConns: 10},
		Telemetry: Telemetry{SampleRatio: 1, LogLevel: slog.LevelInfo},
		Runtime:   Runtime{Target: []string{TargetAll}, DataDir: "./.data"},
		Mail:      Mail{Domain: "opsdesk.localhost", SMTPAddr: "127.0.0.1:2525"},
	}
}

// RegisterFlags registers a flag for every setting on fs, and sets c to the
// defaults (the flags' default values).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := Default()
	fs.StringVar(&c.HTTP.Addr, "http.addr", d.HTTP.Addr, "HTTP listen address, host:port (env OPSDESK_HTTP_ADDR)")
	fs.StringVar(&c.HTTP.BodyLimit, "http.body-limit", d.HTTP.BodyLimit, "largest accepted request body, e.g. 1M or 512K (env OPSDESK_HTTP_BODY_LIMIT)")
	fs.DurationVar(&c.HTTP.ShutdownTimeout, "http.shutdown-timeout", d.HTTP.ShutdownTimeout, "how long shutdown waits for in-flight requests (env OPSDESK_HTTP_SHUTDOWN_TIMEOUT)")
	fs.Var(&listValue{p: &c.HTTP.TrustedProxies}, "http.trusted-proxies", "CIDRs of reverse proxies whose X-Forwarded-For is trusted, comma-separated (env OPSDESK_HTTP_TRUSTED_PROXIES)")
	fs.StringVar(&c.Auth.JWKSURL, "auth.jwks-url", d.Auth.JWKSURL, "URL of identity's JWKS; empty: this process's listener (env OPSDESK_AUTH_JWKS_URL)")
	fs.StringVar(&c.Mail.Domain, "mail.domain", d.Mail.Domain, "domain of help-desk addresses (<tenant-slug>@domain) and Message-IDs (env OPSDESK_MAIL_DOMAIN)")
	fs.StringVar(&c.Mail.SMTPAddr, "smtp.addr", d.Mail.SMTPAddr, "intake's inbound SMTP listen address, host:port, or off (env OPSDESK_SMTP_ADDR)")
	fs.StringVar(&c.Secrets.Key, "secret-key", d.Secrets.Key, "installation secret key, base64 of 32 bytes; prefer the env var (env OPSDESK_SECRET_KEY)")

	fs.StringVar(&c.NATS.URL, "nats.url", d.NATS.URL, "external NATS URL(s); empty runs an embedded server (env OPSDESK_NATS_URL)")
	fs.StringVar(&c.NATS.Embedded.Host, "nats.host", d.NATS.Embedded.Host, "embedded NATS listen host (env OPSDESK_NATS_HOST)")
	fs.IntVar(&c.NATS.Embedded.Port, "nats.port", d.NATS.Embedded.Port, "embedded NATS port, -1 for a free one (env OPSDESK_NATS_PORT)")
	fs.StringVar(&c.NATS.Embedded.Sync, "nats.sync", d.NATS.Embedded.Sync, "embedded JetStream fsync: interval or always (env OPSDESK_NATS_SYNC)")
	fs.DurationVar(&c.NATS.Embedded.SyncInterval, "nats.sync-interval", d.NATS.Embedded.SyncInterval, "embedded JetStream fsync period in interval mode (env OPSDESK_NATS_SYNC_INTERVAL)")
	fs.IntVar(&c.NATS.Replicas, "nats.replicas", d.NATS.Replicas, "replicas of the streams OpsDesk creates, 1-5 (env OPSDESK_NATS_REPLICAS)")
	fs.DurationVar(&c.NATS.DuplicateWindow, "nats.duplicate-window", d.NATS.DuplicateWindow, "stream duplicate window, at least 2m (env OPSDESK_NATS_DUPLICATE_WINDOW)")

	fs.StringVar(&c.Postgres.URL, "postgres.url", d.Postgres.URL, "PostgreSQL connection string; prefer the env var, flags show in ps (env DATABASE_URL)")
	fs.IntVar(&c.Postgres.MaxConns, "postgres.max-conns", d.Postgres.MaxConns, "connection pool size (env OPSDESK_POSTGRES_MAX_CONNS)")

	fs.StringVar(&c.Telemetry.ServiceName, "telemetry.service-name", d.Telemetry.ServiceName, "OpenTelemetry service.name; empty means opsdesk-<target> (env OTEL_SERVICE_NAME)")
	fs.StringVar(&c.Telemetry.OTLPEndpoint, "telemetry.otlp-endpoint", d.Telemetry.OTLPEndpoint, "OTLP/HTTP collector base URL; empty exports nothing (env OTEL_EXPORTER_OTLP_ENDPOINT)")
	fs.Float64Var(&c.Telemetry.SampleRatio, "telemetry.sample-ratio", d.Telemetry.SampleRatio, "fraction of new traces sampled, (0, 1] (env OPSDESK_TRACE_SAMPLE_RATIO)")
	fs.TextVar(&c.Telemetry.LogLevel, "log.level", d.Telemetry.LogLevel, "lowest log level: debug, info, warn, error (env OPSDESK_LOG_LEVEL)")

	c.Runtime.Target = d.Runtime.Target
	fs.Var(&listValue{p: &c.Runtime.Target}, "target", "modules to run, comma-separated: all, or services such as intake (env OPSDESK_TARGET) (default all)")
	fs.StringVar(&c.Runtime.DataDir, "data-dir", d.Runtime.DataDir, "directory for local data: embedded NATS, private Postgres (env OPSDESK_DATA_DIR)")
}

// listValue is a comma-separated list flag. The first use replaces the
// default; repeated uses (-target=a -target=b) add to it.
type listValue struct {
	p   *[]string
	set bool
}

func (l *listValue) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listValue) Set(s string) error {
	if !l.set {
		*l.p = nil
		l.set = true
	}
	*l.p = append(*l.p, splitList(s)...)
	return nil
}

// splitList splits a comma-separated list, trimming blanks around items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(item))
	}
	return out
}

// Section is configuration a binary adds to the shared one, typically a
// service's Config (intake.Config). Its defaults come from RegisterFlags,
// not from envDefault tags.
type Section struct {
	// EnvPrefix is prepended to the section's env tags: "OPSDESK_INTAKE_"
	// turns `env:"READ_WAIT"` into OPSDESK_INTAKE_READ_WAIT.
	EnvPrefix string
	// Target points to the section's struct, whose fields carry env tags.
	Target any
	// RegisterFlags registers the section's flags on fs with their
	// defaults, which also sets Target to the defaults.
	RegisterFlags func(fs *flag.FlagSet)
	// Validate reports invalid settings after loading; nil skips it.
	Validate func() error
}

// Load builds the configuration from the defaults, then getenv (usually
// os.Getenv; a variable set to "" counts as unset), then args (the flags,
// without the program name): later sources win. It then fills derived
// defaults and validates everything, sections included. Load reads no
// global state, so tests pass their own args and environment.
//
// Errors name the setting: "OPSDESK_HTTP_ADDR (-http.addr): ...". For -h or
// -help Load returns flag.ErrHelp; print Usage then.
func Load(args []string, getenv func(string) string, sections ...Section) (Config, error) {
	fs := flag.NewFlagSet("opsdesk", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Config
	c.RegisterFlags(fs)
	for _, s := range sections {
		if s.RegisterFlags != nil {
			s.RegisterFlags(fs)
		}
	}

	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var errs []error
	errs = append(errs, parseEnv(&c, "", getenv)...)
	for _, s := range sections {
		if s.Target != nil {
			errs = append(errs, parseEnv(s.Target, s.EnvPrefix, getenv)...)
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("flags: unexpected argument %q", fs.Arg(0))
	}

	c.fillDerived()
	errs = nil
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range sections {
		if s.Validate != nil {
			if err := s.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// fillDerived normalises lists and sets defaults that depend on other
// settings.
func (c *Config) fillDerived() {
	for i, t := range c.Runtime.Target {
		c.Runtime.Target[i] = strings.TrimSpace(t)
	}
	if c.Telemetry.ServiceName == "" {
		c.Telemetry.ServiceName = "opsdesk-" + strings.Join(c.Runtime.Target, "-")
	}
}

// Usage writes every flag, its default and its environment variable to w,
// sections included.
func Usage(w io.Writer, sections ...Section) {
	fs := flag.NewFlagSet("opsdesk", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(fs)
	for _, s := range sections {
		if s.RegisterFlags != nil {
			s.RegisterFlags(fs)
		}
	}
	fs.SetOutput(w)
	fs.PrintDefaults()
}
