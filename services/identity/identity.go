// Package identity is the public entry of the identity service: tenants
// (MSP providers and their clients, enterprises and their departments),
// users, groups, API tokens, and authentication (the OAuth 2.0 token
// endpoint, JWKS, sign-out, password reset). The all-in-one binary and
// cmd/identity build it with New from shared infrastructure (runtime.Deps);
// everything else stays internal.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"
	_ "time/tzdata" // time zones are validated; containers may lack the system database

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/libs/reaction"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/identity/internal/app"
	"github.com/opsdesk/opsdesk/services/identity/internal/password"
	httpport "github.com/opsdesk/opsdesk/services/identity/internal/ports/http"
	"github.com/opsdesk/opsdesk/services/identity/internal/projections/directory"
	"github.com/opsdesk/opsdesk/services/identity/internal/store"
	"github.com/opsdesk/opsdesk/services/identity/migrations"
)

// Names identity owns in NATS and Postgres.
const (
	// Schema is identity's Postgres schema.
	Schema = "identity"
	// DirectoryProjection is the read model's projection name.
	DirectoryProjection = directory.Name
	// ResetPurpose is the subkey of the installation secret that seals
	// password-reset tokens (secret.Key.Derive) for the notifications
	// service.
	ResetPurpose = app.ResetPurpose
)

// Config is identity's configuration (OPSDESK_IDENTITY_*, -identity.*).
type Config struct {
	AccessTTL        time.Duration `env:"ACCESS_TTL"`
	RefreshTTL       time.Duration `env:"REFRESH_TTL"`
	ResetTTL         time.Duration `env:"RESET_TTL"`
	KeyRotation      time.Duration `env:"KEY_ROTATION"`
	AccountThreshold int           `env:"ACCOUNT_LOCK_THRESHOLD"`
	AddressThreshold int           `env:"ADDRESS_LOCK_THRESHOLD"`
	ReadWait         time.Duration `env:"READ_WAIT"`
	PublishTimeout   time.Duration `env:"PUBLISH_TIMEOUT"`
	// PasswordMemoryKiB and PasswordIterations are argon2id's cost.
	PasswordMemoryKiB  uint32 `env:"PASSWORD_MEMORY_KIB"`
	PasswordIterations uint32 `env:"PASSWORD_ITERATIONS"`
	// Replicas and DuplicateWindow of the IDENTITY stream: New takes the
	// shared NATS settings from runtime.Deps.Streams.
	Replicas        int           `yaml:"-"`
	DuplicateWindow time.Duration `yaml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		AccessTTL:          15 * time.Minute,
		RefreshTTL:         30 * 24 * time.Hour,
		ResetTTL:           30 * time.Minute,
		KeyRotation:        30 * 24 * time.Hour,
		AccountThreshold:   5,
		AddressThreshold:   20,
		ReadWait:           2 * time.Second,
		PublishTimeout:     5 * time.Second,
		PasswordMemoryKiB:  password.Default.MemoryKiB,
		PasswordIterations: password.Default.Iterations,
		Replicas:           1,
		DuplicateWindow:    2 * time.Minute,
	}
}

// RegisterFlags registers identity's flags (prefix "identity.") with the
// defaults.
func (c *Config) RegisterFlags(prefix string, f *flag.FlagSet) {
	d := DefaultConfig()
	c.Replicas, c.DuplicateWindow = d.Replicas, d.DuplicateWindow
	f.DurationVar(&c.AccessTTL, prefix+"access-ttl", d.AccessTTL, "access token lifetime (env OPSDESK_IDENTITY_ACCESS_TTL)")
	f.DurationVar(&c.RefreshTTL, prefix+"refresh-ttl", d.RefreshTTL, "refresh token lifetime, renewed on each use (env OPSDESK_IDENTITY_REFRESH_TTL)")
	f.DurationVar(&c.ResetTTL, prefix+"reset-ttl", d.ResetTTL, "password-reset token lifetime (env OPSDESK_IDENTITY_RESET_TTL)")
	f.DurationVar(&c.KeyRotation, prefix+"key-rotation", d.KeyRotation, "how often a new signing key is made (env OPSDESK_IDENTITY_KEY_ROTATION)")
	f.IntVar(&c.AccountThreshold, prefix+"account-lock-threshold", d.AccountThreshold, "failed sign-ins per account before lockouts (env OPSDESK_IDENTITY_ACCOUNT_LOCK_THRESHOLD)")
	f.IntVar(&c.AddressThreshold, prefix+"address-lock-threshold", d.AddressThreshold, "failed sign-ins per client address before lockouts (env OPSDESK_IDENTITY_ADDRESS_LOCK_THRESHOLD)")
	f.DurationVar(&c.ReadWait, prefix+"read-wait", d.ReadWait, "how long a read with X-Consistency-Token waits (env OPSDESK_IDENTITY_READ_WAIT)")
	f.DurationVar(&c.PublishTimeout, prefix+"publish-timeout", d.PublishTimeout, "timeout of one append (env OPSDESK_IDENTITY_PUBLISH_TIMEOUT)")
	f.Func(prefix+"password-memory-kib", fmt.Sprintf("argon2id memory per hash in KiB (default %d) (env OPSDESK_IDENTITY_PASSWORD_MEMORY_KIB)", d.PasswordMemoryKiB), func(s string) error {
		_, err := fmt.Sscanf(s, "%d", &c.PasswordMemoryKiB)
		return err
	})
	f.Func(prefix+"password-iterations", fmt.Sprintf("argon2id iterations (default %d) (env OPSDESK_IDENTITY_PASSWORD_ITERATIONS)", d.PasswordIterations), func(s string) error {
		_, err := fmt.Sscanf(s, "%d", &c.PasswordIterations)
		return err
	})
	c.PasswordMemoryKiB, c.PasswordIterations = d.PasswordMemoryKiB, d.PasswordIterations
}

// Validate reports every invalid setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf(setting+": "+format, args...))
	}
	if c.AccessTTL < time.Minute || c.AccessTTL > 24*time.Hour {
		bad("OPSDESK_IDENTITY_ACCESS_TTL (-identity.access-ttl)", "%s must be between 1m and 24h", c.AccessTTL)
	}
	if c.RefreshTTL < c.AccessTTL || c.RefreshTTL > 365*24*time.Hour {
		bad("OPSDESK_IDENTITY_REFRESH_TTL (-identity.refresh-ttl)", "%s must be at least the access TTL and at most a year", c.RefreshTTL)
	}
	if c.ResetTTL < time.Minute || c.ResetTTL > 24*time.Hour {
		bad("OPSDESK_IDENTITY_RESET_TTL (-identity.reset-ttl)", "%s must be between 1m and 24h", c.ResetTTL)
	}
	if c.KeyRotation < time.Hour {
		bad("OPSDESK_IDENTITY_KEY_ROTATION (-identity.key-rotation)", "%s must be at least 1h", c.KeyRotation)
	}
	if c.AccountThreshold < 1 || c.AddressThreshold < c.AccountThreshold {
		bad("OPSDESK_IDENTITY_ACCOUNT_LOCK_THRESHOLD / _ADDRESS_LOCK_THRESHOLD", "%d / %d must be at least 1, the address's at least the account's", c.AccountThreshold, c.AddressThreshold)
	}
	if c.ReadWait < 0 || c.ReadWait > time.Minute {
		bad("OPSDESK_IDENTITY_READ_WAIT (-identity.read-wait)", "%s must be between 0 and 1m", c.ReadWait)
	}
	if c.PublishTimeout <= 0 {
		bad("OPSDESK_IDENTITY_PUBLISH_TIMEOUT (-identity.publish-timeout)", "%s must be positive", c.PublishTimeout)
	}
	if c.PasswordMemoryKiB < 1024 || c.PasswordIterations < 1 {
		bad("OPSDESK_IDENTITY_PASSWORD_MEMORY_KIB / _ITERATIONS", "%d KiB / %d must be at least 1024 KiB and 1 iteration", c.PasswordMemoryKiB, c.PasswordIterations)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("identity replicas", "%d must be between 1 and 5", c.Replicas)
	}
	if c.DuplicateWindow < 2*time.Minute {
		bad("identity duplicate window", "%s must be at least 2m", c.DuplicateWindow)
	}
	return errors.Join(errs...)
}

// Bootstrap creates the installation's first tenant and admin when the
// identity store is empty (OPSDESK_BOOTSTRAP_*).
type Bootstrap struct {
	Tenant        string `env:"TENANT"`
	TenantName    string `env:"TENANT_NAME"`
	TenantKind    string `env:"TENANT_KIND"`
	AdminEmail    string `env:"ADMIN_EMAIL"`
	AdminName     string `env:"ADMIN_NAME"`
	AdminPassword string `env:"ADMIN_PASSWORD"`
	TimeZone      string `env:"TIME_ZONE"`
	Locale        string `env:"LOCALE"`
	// Demo, when none of the above is set, creates the demo tenant with a
	// generated admin password (the all-in-one binary). Not an env var.
	Demo bool `env:"-"`
}

// RegisterFlags registers the bootstrap flags with their defaults.
func (b *Bootstrap) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&b.Tenant, "bootstrap.tenant", "", "slug of the first tenant, created when the identity store is empty (env OPSDESK_BOOTSTRAP_TENANT)")
	f.StringVar(&b.TenantName, "bootstrap.tenant-name", "", "display name of the first tenant (default: the slug) (env OPSDESK_BOOTSTRAP_TENANT_NAME)")
	f.StringVar(&b.TenantKind, "bootstrap.tenant-kind", "enterprise", "enterprise, or provider for an MSP (env OPSDESK_BOOTSTRAP_TENANT_KIND)")
	f.StringVar(&b.AdminEmail, "bootstrap.admin-email", "", "e-mail of the first admin (env OPSDESK_BOOTSTRAP_ADMIN_EMAIL)")
	f.StringVar(&b.AdminName, "bootstrap.admin-name", "Administrator", "name of the first admin (env OPSDESK_BOOTSTRAP_ADMIN_NAME)")
	f.StringVar(&b.AdminPassword, "bootstrap.admin-password", "", "password of the first admin; prefer the env var (env OPSDESK_BOOTSTRAP_ADMIN_PASSWORD)")
	f.StringVar(&b.TimeZone, "bootstrap.time-zone", "UTC", "time zone of the first tenant (env OPSDESK_BOOTSTRAP_TIME_ZONE)")
	f.StringVar(&b.Locale, "bootstrap.locale", "en", "locale of the first tenant (env OPSDESK_BOOTSTRAP_LOCALE)")
}

// Validate checks that the bootstrap settings come as a set.
func (b *Bootstrap) Validate() error {
	set := b.Tenant != "" || b.AdminEmail != "" || b.AdminPassword != ""
	if set && (b.Tenant == "" || b.AdminEmail == "" || b.AdminPassword == "") {
		return errors.New("OPSDESK_BOOTSTRAP_TENANT, OPSDESK_BOOTSTRAP_ADMIN_EMAIL and OPSDESK_BOOTSTRAP_ADMIN_PASSWORD go together: set all three or none")
	}
	if b.TenantKind != identityv1.KindEnterprise && b.TenantKind != identityv1.KindProvider {
		return fmt.Errorf("OPSDESK_BOOTSTRAP_TENANT_KIND (-bootstrap.tenant-kind): %q must be enterprise or provider", b.TenantKind)
	}
	return nil
}

// Demo tenant of the all-in-one binary.
const (
	DemoTenant = "demo"
	DemoAdmin  = "admin@demo.opsdesk.localhost"
)

// Bootstrapped is what the first start created, for the banner: the admin's
// password is only here when it was generated (demo).
type Bootstrapped struct {
	Tenant, AdminEmail, GeneratedPassword string
}

// Options are what a binary adds beyond the configuration.
type Options struct {
	Bootstrap Bootstrap
	// OnBootstrap is told what the first start created (never called on a
	// later start).
	OnBootstrap func(Bootstrapped)
	// Dev replaces signing keys that do not open with the secret key
	// instead of refusing to start (the all-in-one binary with the embedded
	// NATS, whose generated key goes when its data directory does).
	Dev bool
}

// New wires identity from shared infrastructure: it provisions the IDENTITY
// stream, migrates the identity schema, loads (or makes) the signing key,
// bootstraps the first tenant if the store is empty, and mounts the routes.
// Its Run runs the read model's projection, key rotation and the API-token
// usage listener.
func New(ctx context.Context, cfg Config, opts Options, d runtime.Deps) (runtime.Service, error) {
	if d.Streams.Replicas > 0 {
		cfg.Replicas = d.Streams.Replicas
	}
	if d.Streams.DuplicateWindow > 0 {
		cfg.DuplicateWindow = d.Streams.DuplicateWindow
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.NATS == nil || d.JS == nil || d.DB == nil || d.HTTP == nil || d.Auth == nil {
		return nil, errors.New("identity: deps need NATS, JS, DB, HTTP and Auth")
	}
	if d.Secret.IsZero() {
		return nil, errors.New("identity: no secret key: set OPSDESK_SECRET_KEY (32 bytes of base64, e.g. openssl rand -base64 32)")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	log := d.Logger.With("module", "identity")
	if _, err := natsx.EnsureStream(ctx, d.JS, natsx.StreamConfig{
		Name: identityv1.Stream, Subjects: []string{identityv1.Context + ".>"},
		Replicas: cfg.Replicas, DuplicateWindow: cfg.DuplicateWindow,
	}); err != nil {
		return nil, fmt.Errorf("identity: stream %s: %w", identityv1.Stream, err)
	}
	if err := deadletter.EnsureStream(ctx, d.JS, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("identity: dead-letter stream: %w", err)
	}
	if err := pgdb.Migrate(ctx, d.DB, Schema, migrations.FS); err != nil {
		return nil, fmt.Errorf("identity: migrate schema %s: %w", Schema, err)
	}
	runner, err := projection.New(d.NATS, d.JS, d.DB, directory.Projection{}, projection.Options{
		Schema: Schema, Logger: log, SetTenant: true,
	})
	if err != nil {
		return nil, fmt.Errorf("identity: projection: %w", err)
	}
	keys := &store.KeyRing{Pool: d.DB, Seal: d.Secret.Derive("identity/signing-keys"), Rotation: cfg.KeyRotation,
		Retention: cfg.AccessTTL + 2*auth.DefaultLeeway, ReplaceUnreadable: opts.Dev}
	if err := keys.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	hasher, err := password.New(password.Params{MemoryKiB: cfg.PasswordMemoryKiB, Iterations: cfg.PasswordIterations}, 0)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	es := jsstore.New(d.NATS, d.JS, jsstore.Config{Context: identityv1.Context, Stream: identityv1.Stream, PublishTimeout: cfg.PublishTimeout})
	a := app.New(app.Config{
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, ResetTTL: cfg.ResetTTL,
		AccountThreshold: cfg.AccountThreshold, AddressThreshold: cfg.AddressThreshold,
		ReadWait: cfg.ReadWait, Secret: d.Secret,
	}, es, d.DB, hasher, keys, store.Throttle{Pool: d.DB}, runner, log)
	if err := bootstrap(ctx, d.JS, a, opts, log); err != nil {
		return nil, fmt.Errorf("identity: bootstrap: %w", err)
	}
	if err := httpport.Register(d.HTTP, d.Auth, httpport.NewServer(a)); err != nil {
		return nil, err
	}
	reactions := func() (*reaction.Router, error) {
		r, err := reaction.New(d.NATS, d.JS, reaction.Config{Service: "identity", Logger: log}, d.DeadLetters)
		if err != nil {
			return nil, err
		}
		r.Handle(RequestersFromMail, ticketv1.Stream, []string{ticketv1.Context + ".>"}, requestersFromMail(a, log))
		return r, nil
	}
	if _, err := reactions(); err != nil { // wiring errors fail the start
		return nil, fmt.Errorf("identity: reactions: %w", err)
	}
	work := work(runner, keys, a, d.NATS, log, min(cfg.KeyRotation/10, time.Hour))
	return &runtime.Background{Name: "identity", Work: func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return work(ctx) })
		g.Go(func() error { return reaction.RunRetrying(ctx, reactions, 0, log) })
		return g.Wait()
	}}, nil
}

// empty reports whether the identity store has never held a tenant: no
// slug was ever claimed.
func empty(ctx context.Context, js jetstream.JetStream) (bool, error) {
	s, err := js.Stream(ctx, identityv1.Stream)
	if err != nil {
		return false, err
	}
	_, err = s.GetLastMsgForSubject(ctx, identityv1.Context+"."+identityv1.GlobalTenant+".>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	return false, err
}

func bootstrap(ctx context.Context, js jetstream.JetStream, a *app.App, opts Options, log *slog.Logger) error {
	b := opts.Bootstrap
	isEmpty, err := empty(ctx, js)
	if err != nil || !isEmpty {
		return err
	}
	generated := ""
	switch {
	case b.Tenant != "":
	case b.Demo:
		b.Tenant, b.TenantName, b.AdminEmail, b.AdminName = DemoTenant, "Demo", DemoAdmin, "Demo Admin"
		generated = newPassword()
		b.AdminPassword = generated
	default:
		log.WarnContext(ctx, "the identity store is empty and no OPSDESK_BOOTSTRAP_TENANT, OPSDESK_BOOTSTRAP_ADMIN_EMAIL and OPSDESK_BOOTSTRAP_ADMIN_PASSWORD are set: nobody can sign in")
		return nil
	}
	res, err := a.Bootstrap(ctx, app.Bootstrap{
		Slug: b.Tenant, Name: cmpOr(b.TenantName, b.Tenant), Kind: cmpOr(b.TenantKind, identityv1.KindEnterprise),
		AdminEmail: b.AdminEmail, AdminName: cmpOr(b.AdminName, "Administrator"), AdminPassword: b.AdminPassword,
		TimeZone: cmpOr(b.TimeZone, "UTC"), Locale: cmpOr(b.Locale, "en"),
	})
	if err != nil {
		return err
	}
	if res.Created {
		log.InfoContext(ctx, "bootstrapped the first tenant and admin", "tenant", b.Tenant, "tenant_id", res.TenantID, "admin", b.AdminEmail)
		if opts.OnBootstrap != nil {
			opts.OnBootstrap(Bootstrapped{Tenant: b.Tenant, AdminEmail: b.AdminEmail, GeneratedPassword: generated})
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// newPassword is a generated admin password: 18 random bytes, 24
// characters of base64url.
func newPassword() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Rebuild empties identity's read model and replays the IDENTITY stream into
// it (the state tables are kept). Run it while identity is stopped.
func Rebuild(ctx context.Context, cfg Config, d runtime.Deps) error {
	if d.NATS == nil || d.JS == nil || d.DB == nil {
		return errors.New("identity: rebuild needs NATS, JS and DB")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if err := pgdb.Migrate(ctx, d.DB, Schema, migrations.FS); err != nil {
		return err
	}
	runner, err := projection.New(d.NATS, d.JS, d.DB, directory.Projection{}, projection.Options{Schema: Schema, Logger: d.Logger, SetTenant: true})
	if err != nil {
		return err
	}
	target, err := runner.RebuildAndWait(ctx)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	d.Logger.InfoContext(ctx, "read model rebuilt", "projection", directory.Name, "stream_sequence", target)
	return nil
}

// work runs identity's background work until its context ends: the read
// model's projection, signing-key rotation, and recording API token use.
func work(runner *projection.Runner, keys *store.KeyRing, a *app.App, nc *nats.Conn, log *slog.Logger, rotateEvery time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		sub, err := nc.QueueSubscribe(auth.UsageSubject, "identity", func(m *nats.Msg) {
			var u auth.Usage
			err := json.Unmarshal(m.Data, &u)
			if err == nil {
				err = a.RecordTokenUse(ctx, u)
			}
			if err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "api token usage not recorded", "err", err)
			}
		})
		if err != nil {
			return fmt.Errorf("identity: usage subscription: %w", err)
		}
		defer sub.Unsubscribe() //nolint:errcheck // the connection drains on shutdown anyway

		go func() {
			t := time.NewTicker(rotateEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := keys.Ensure(ctx); err != nil && ctx.Err() == nil {
						log.ErrorContext(ctx, "signing key rotation failed", "err", err)
					}
				}
			}
		}()
		if err := runner.Run(ctx); err != nil {
			return fmt.Errorf("identity: projection: %w", err)
		}
		return nil
	}
}
