// Package intake is the public entry of the intake service, which logs
// tickets and serves the ticket read model. The all-in-one binary and
// cmd/intake build it with New from shared infrastructure (runtime.Deps);
// everything else stays internal.
//
// Routes (mounted on Deps.HTTP, spec in api/openapi/intake.yaml):
//
//	POST /v1/tickets
//	GET  /v1/tickets
//	GET  /v1/tickets/{id}
//	GET  /v1/tickets/{id}/events
package intake

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	intakev1 "github.com/opsdesk/opsdesk/api/events/intake/v1"
	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/libs/reaction"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/jsadapter"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/smtpin"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/autoclose"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/channels"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/requesters"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/settings"
	"github.com/opsdesk/opsdesk/services/intake/internal/mail"
	httpport "github.com/opsdesk/opsdesk/services/intake/internal/ports/http"
	"github.com/opsdesk/opsdesk/services/intake/internal/projections/tickets"
	"github.com/opsdesk/opsdesk/services/intake/migrations"
)

// Names intake owns in NATS and Postgres.
const (
	// Schema is intake's Postgres schema (tables, goose versions, checkpoints).
	Schema = "intake"
	// TicketsProjection is the read model's projection and durable consumer name.
	TicketsProjection = tickets.Name
	// NumbersStream is the counter stream of per-tenant ticket numbers.
	NumbersStream = jsadapter.NumbersStream
)

// Config is intake's configuration. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// ReadWait bounds how long a read carrying X-Consistency-Token waits for
	// the read model before answering 503.
	ReadWait time.Duration `yaml:"read_wait" env:"READ_WAIT"`
	// NumberBlock is how many ticket numbers one counter increment reserves
	// per tenant. Larger blocks mean fewer round trips and bigger gaps when a
	// process stops.
	NumberBlock int `yaml:"number_block" env:"NUMBER_BLOCK"`
	// Replicas of intake's streams: 1 in development, 3 in production.
	// Shared infrastructure, so no flag or variable of its own: New takes
	// runtime.Deps.Streams (OPSDESK_NATS_REPLICAS).
	Replicas int `yaml:"-"`
	// DuplicateWindow is how long TICKETS remembers event ids to drop
	// retried appends (at least 2m); New takes runtime.Deps.Streams
	// (OPSDESK_NATS_DUPLICATE_WINDOW).
	DuplicateWindow time.Duration `yaml:"-"`
	// PublishTimeout bounds one append or counter increment; past it the
	// client gets 503 with Retry-After.
	PublishTimeout time.Duration `yaml:"publish_timeout" env:"PUBLISH_TIMEOUT"`
	// ProjectionBatch is how many events the projection applies per
	// transaction.
	ProjectionBatch int `yaml:"projection_batch" env:"PROJECTION_BATCH"`
	// MaxAttachmentBytes bounds one attached file (413 above).
	MaxAttachmentBytes int64 `yaml:"max_attachment_bytes" env:"MAX_ATTACHMENT_BYTES"`
	// MaxMessageBytes bounds one inbound mail (SMTP 552, HTTP 413) and one
	// upload request.
	MaxMessageBytes int64 `yaml:"max_message_bytes" env:"MAX_MESSAGE_BYTES"`
	// SettingsTTL is how long a process trusts its copy of a tenant's
	// intake settings.
	SettingsTTL time.Duration `yaml:"settings_ttl" env:"SETTINGS_TTL"`
	// AutoCloseInterval is how often resolved tickets past their
	// auto-close time are looked for.
	AutoCloseInterval time.Duration `yaml:"auto_close_interval" env:"AUTO_CLOSE_INTERVAL"`
	// MailDomain and SMTPAddr come from the shared configuration
	// (OPSDESK_MAIL_DOMAIN, OPSDESK_SMTP_ADDR) through runtime.Deps.Mail.
	MailDomain string `yaml:"-"`
	SMTPAddr   string `yaml:"-"`
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time `yaml:"-"`
	// OnSMTP, when set, is told the SMTP listener's address once it listens.
	OnSMTP func(addr string) `yaml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ReadWait:        2 * time.Second,
		NumberBlock:     jsadapter.DefaultBlock,
		Replicas:        1,
		DuplicateWindow: 2 * time.Minute,
		PublishTimeout:  5 * time.Second,
		ProjectionBatch: 256,

		MaxAttachmentBytes: 10 << 20,
		MaxMessageBytes:    25 << 20,
		SettingsTTL:        5 * time.Second,
		AutoCloseInterval:  time.Minute,
		MailDomain:         "opsdesk.localhost",
		SMTPAddr:           "off", // the binaries pass OPSDESK_SMTP_ADDR (127.0.0.1:2525 by default) in Deps.Mail
	}
}

// RegisterFlags registers intake's own flags on f, named prefix+"read-wait"
// and so on (prefix is e.g. "intake."), and sets c to the defaults. With
// config.Section{EnvPrefix: "OPSDESK_INTAKE_"} the env tags become
// OPSDESK_INTAKE_READ_WAIT and so on.
func (c *Config) RegisterFlags(prefix string, f *flag.FlagSet) {
	d := DefaultConfig()
	c.Replicas, c.DuplicateWindow, c.MailDomain, c.SMTPAddr = d.Replicas, d.DuplicateWindow, d.MailDomain, d.SMTPAddr
	f.DurationVar(&c.ReadWait, prefix+"read-wait", d.ReadWait, "how long a read with X-Consistency-Token waits for the read model (env OPSDESK_INTAKE_READ_WAIT)")
	f.IntVar(&c.NumberBlock, prefix+"number-block", d.NumberBlock, "ticket numbers reserved per counter increment, per tenant (env OPSDESK_INTAKE_NUMBER_BLOCK)")
	f.DurationVar(&c.PublishTimeout, prefix+"publish-timeout", d.PublishTimeout, "timeout of one append or counter increment (env OPSDESK_INTAKE_PUBLISH_TIMEOUT)")
	f.IntVar(&c.ProjectionBatch, prefix+"projection-batch", d.ProjectionBatch, "events applied per projection transaction (env OPSDESK_INTAKE_PROJECTION_BATCH)")
	f.Int64Var(&c.MaxAttachmentBytes, prefix+"max-attachment-bytes", d.MaxAttachmentBytes, "largest attached file in bytes (env OPSDESK_INTAKE_MAX_ATTACHMENT_BYTES)")
	f.Int64Var(&c.MaxMessageBytes, prefix+"max-message-bytes", d.MaxMessageBytes, "largest inbound mail or upload in bytes (env OPSDESK_INTAKE_MAX_MESSAGE_BYTES)")
	f.DurationVar(&c.SettingsTTL, prefix+"settings-ttl", d.SettingsTTL, "how long a process trusts its copy of a tenant's intake settings (env OPSDESK_INTAKE_SETTINGS_TTL)")
	f.DurationVar(&c.AutoCloseInterval, prefix+"auto-close-interval", d.AutoCloseInterval, "how often resolved tickets due to close are looked for (env OPSDESK_INTAKE_AUTO_CLOSE_INTERVAL)")
}

// withStreams takes the shared stream settings (OPSDESK_NATS_REPLICAS and
// _DUPLICATE_WINDOW) from the binary's infrastructure.
func (c Config) withShared(s runtime.Streams, m runtime.Mail) Config {
	c.MailDomain, c.SMTPAddr = cmp.Or(m.Domain, c.MailDomain), cmp.Or(m.SMTPAddr, c.SMTPAddr)
	return c.withStreams(s)
}

func (c Config) withStreams(s runtime.Streams) Config {
	if s.Replicas > 0 {
		c.Replicas = s.Replicas
	}
	if s.DuplicateWindow > 0 {
		c.DuplicateWindow = s.DuplicateWindow
	}
	return c
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.ReadWait = cmp.Or(c.ReadWait, d.ReadWait)
	c.NumberBlock = cmp.Or(c.NumberBlock, d.NumberBlock)
	c.Replicas = cmp.Or(c.Replicas, d.Replicas)
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, d.DuplicateWindow)
	c.PublishTimeout = cmp.Or(c.PublishTimeout, d.PublishTimeout)
	c.ProjectionBatch = cmp.Or(c.ProjectionBatch, d.ProjectionBatch)
	c.MaxAttachmentBytes = cmp.Or(c.MaxAttachmentBytes, d.MaxAttachmentBytes)
	c.MaxMessageBytes = cmp.Or(c.MaxMessageBytes, d.MaxMessageBytes)
	c.SettingsTTL = cmp.Or(c.SettingsTTL, d.SettingsTTL)
	c.AutoCloseInterval = cmp.Or(c.AutoCloseInterval, d.AutoCloseInterval)
	c.MailDomain = cmp.Or(c.MailDomain, d.MailDomain)
	c.SMTPAddr = cmp.Or(c.SMTPAddr, d.SMTPAddr)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every invalid setting (after defaults). Its pointer
// receiver makes the method value cfg.Validate see the loaded settings.
func (c *Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(setting string, format string, args ...any) {
		errs = append(errs, fmt.Errorf(setting+": "+format, args...))
	}
	if d.ReadWait < 0 || d.ReadWait > time.Minute {
		bad("OPSDESK_INTAKE_READ_WAIT (-intake.read-wait)", "%s must be between 0 and 1m", d.ReadWait)
	}
	if d.NumberBlock < 1 || d.NumberBlock > 10000 {
		bad("OPSDESK_INTAKE_NUMBER_BLOCK (-intake.number-block)", "%d must be between 1 and 10000", d.NumberBlock)
	}
	if d.PublishTimeout < 0 {
		bad("OPSDESK_INTAKE_PUBLISH_TIMEOUT (-intake.publish-timeout)", "%s must be positive", d.PublishTimeout)
	}
	if d.ProjectionBatch < 1 || d.ProjectionBatch > 10000 {
		bad("OPSDESK_INTAKE_PROJECTION_BATCH (-intake.projection-batch)", "%d must be between 1 and 10000", d.ProjectionBatch)
	}
	if d.MaxAttachmentBytes < 1 || d.MaxAttachmentBytes > d.MaxMessageBytes {
		bad("OPSDESK_INTAKE_MAX_ATTACHMENT_BYTES (-intake.max-attachment-bytes)", "%d must be between 1 and the message limit %d", d.MaxAttachmentBytes, d.MaxMessageBytes)
	}
	if d.MaxMessageBytes < 1 || d.MaxMessageBytes > 1<<30 {
		bad("OPSDESK_INTAKE_MAX_MESSAGE_BYTES (-intake.max-message-bytes)", "%d must be between 1 and 1 GiB", d.MaxMessageBytes)
	}
	if d.SettingsTTL < 0 || d.SettingsTTL > time.Hour {
		bad("OPSDESK_INTAKE_SETTINGS_TTL (-intake.settings-ttl)", "%s must be between 0 and 1h", d.SettingsTTL)
	}
	if d.AutoCloseInterval < time.Second || d.AutoCloseInterval > 24*time.Hour {
		bad("OPSDESK_INTAKE_AUTO_CLOSE_INTERVAL (-intake.auto-close-interval)", "%s must be between 1s and 24h", d.AutoCloseInterval)
	}
	if d.Replicas < 1 || d.Replicas > 5 {
		bad("intake replicas", "%d must be between 1 and 5", d.Replicas)
	}
	if d.DuplicateWindow < 2*time.Minute {
		bad("intake duplicate window", "%s must be at least 2m", d.DuplicateWindow)
	}
	return errors.Join(errs...)
}

// New wires intake from shared infrastructure: it provisions intake's
// streams (TICKETS, TICKET_NUMBERS, and the shared DLQ) idempotently,
// migrates the "intake" schema, and mounts the ticket routes on d.HTTP. It
// starts nothing: the returned Service's Run runs the tickets projection
// until ctx is done or Stop is called.
func New(ctx context.Context, cfg Config, d runtime.Deps) (runtime.Service, error) {
	cfg = cfg.withShared(d.Streams, d.Mail).withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.NATS == nil || d.JS == nil || d.DB == nil || d.HTTP == nil || d.Auth == nil {
		return nil, errors.New("intake: deps need NATS, JS, DB, HTTP and Auth")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	log := d.Logger.With("module", "intake")
	runner, err := setup(ctx, cfg, d, log)
	if err != nil {
		return nil, err
	}

	connected := d.NATS.IsConnected
	storeOf := func(context, stream string) jsadapter.FailFastStore {
		return jsadapter.FailFastStore{
			MultiAppender: jsstore.New(d.NATS, d.JS, jsstore.Config{Context: context, Stream: stream, PublishTimeout: cfg.PublishTimeout}),
			Connected:     connected,
		}
	}
	store := storeOf(ticketv1.Context, ticketv1.Stream)
	intakeStore := storeOf(intakev1.Context, intakev1.Stream)
	numbers := jsadapter.NewNumbers(d.JS, int64(cfg.NumberBlock), cfg.PublishTimeout, connected)
	readModel := tickets.NewReadModel(d.DB)
	state := pgstore.New(d.DB)
	st := settings.New(intakeStore, cfg.SettingsTTL, cfg.Now, cfg.MailDomain)
	create, err := command.NewCreateTicketHandler(store, numbers, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	create.WithIdempotency(state).WithCustomFields(st)
	work := command.NewTickets(store, numbers, readModel, st, cfg.MailDomain, cfg.Now)
	queries, err := query.NewHandler(readModel, runner, cfg.ReadWait)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	ch := channels.New(channels.Config{
		MailDomain:  cfg.MailDomain,
		Mail:        mail.Limits{MaxMessageBytes: cfg.MaxMessageBytes, MaxAttachmentBytes: cfg.MaxAttachmentBytes, MaxAttachments: 50},
		CaughtUp:    caughtUp(d.JS, runner),
		CatchUpWait: cfg.ReadWait,
	}, create, work, st, state, d.Auth.Directory(), readModel, log)
	if err := httpport.Register(d.HTTP, d.Auth, httpport.NewServer(httpport.Deps{
		Create: create, Tickets: work, Queries: queries, Settings: st, Blobs: state, Channels: ch,
		MailDomain: cfg.MailDomain, MaxAttachment: cfg.MaxAttachmentBytes, MaxUpload: cfg.MaxMessageBytes,
	})); err != nil {
		return nil, err
	}
	limit := strconv.FormatInt(cfg.MaxMessageBytes/1024+64, 10) + "K" // the multipart framing on top
	for _, path := range []string{"/v1/tickets/:id/attachments", "/v1/inbound/email", "/v1/inbound/alerts"} {
		httpx.AllowBody(d.HTTP, http.MethodPost, path, limit)
	}
	reactions := func() (*reaction.Router, error) {
		r, err := reaction.New(d.NATS, d.JS, reaction.Config{Service: "intake", Logger: log}, d.DeadLetters)
		if err != nil {
			return nil, err
		}
		r.Handle(requesters.Name, identityv1.Stream, []string{identityv1.Context + ".>"},
			requesters.Handler(caughtUp(d.JS, runner), readModel, work))
		return r, nil
	}
	if _, err := reactions(); err != nil { // wiring errors fail the start
		return nil, fmt.Errorf("intake: reactions: %w", err)
	}
	return newService(cfg, runner, work, state, ch, reactions, log), nil
}

// setup provisions streams and the schema, and builds the projection runner.
func setup(ctx context.Context, cfg Config, d runtime.Deps, log *slog.Logger) (*projection.Runner, error) {
	for _, st := range []struct{ name, context string }{{ticketv1.Stream, ticketv1.Context}, {intakev1.Stream, intakev1.Context}} {
		if _, err := natsx.EnsureStream(ctx, d.JS, natsx.StreamConfig{
			Name:            st.name,
			Subjects:        []string{st.context + ".>"},
			Replicas:        cfg.Replicas,
			DuplicateWindow: cfg.DuplicateWindow,
		}); err != nil {
			return nil, fmt.Errorf("intake: stream %s: %w", st.name, err)
		}
	}
	if err := natsx.EnsureCounterStream(ctx, d.JS, jsadapter.NumbersStream,
		[]string{jsadapter.NumbersSubjectPrefix + ".>"}, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("intake: stream %s: %w", jsadapter.NumbersStream, err)
	}
	if err := deadletter.EnsureStream(ctx, d.JS, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("intake: dead-letter stream: %w", err)
	}
	if err := pgdb.Migrate(ctx, d.DB, Schema, migrations.FS); err != nil {
		return nil, fmt.Errorf("intake: migrate schema %s: %w", Schema, err)
	}
	runner, err := projection.New(d.NATS, d.JS, d.DB, tickets.Projection{}, projection.Options{
		Schema:    Schema,
		BatchSize: cfg.ProjectionBatch,
		Logger:    log,
		// The tables force row-level security: each event is applied in
		// its own tenant.
		SetTenant: true,
	})
	if err != nil {
		return nil, fmt.Errorf("intake: projection %s: %w", tickets.Name, err)
	}
	return runner, nil
}

// Rebuild empties intake's tickets read model and replays the TICKETS
// stream into it, returning once the read model has caught up with the
// stream as it was when the rebuild started (the binary's `rebuild`
// subcommand). It provisions streams and schema first, like New, and mounts
// no routes. Run it while intake's projection is stopped: with another
// runner of intake__tickets_v1 running, both recreate the durable consumer
// at once and JetStream can refuse one of them (the rebuild then fails and
// can be retried).
func Rebuild(ctx context.Context, cfg Config, d runtime.Deps) error {
	cfg = cfg.withShared(d.Streams, d.Mail).withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if d.NATS == nil || d.JS == nil || d.DB == nil {
		return errors.New("intake: rebuild needs NATS, JS and DB")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	log := d.Logger.With("module", "intake")
	runner, err := setup(ctx, cfg, d, log)
	if err != nil {
		return err
	}
	start := time.Now()
	target, err := runner.RebuildAndWait(ctx)
	if err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	log.InfoContext(ctx, "read model rebuilt", "projection", tickets.Name,
		"stream_sequence", target, "took", time.Since(start).String())
	return nil
}

// newService runs the tickets projection, the reactions, the auto-close
// sweeper and the SMTP listener until stopped; Stop lets the in-flight batch finish.
func newService(cfg Config, runner *projection.Runner, work *command.Tickets, state *pgstore.Store, ch *channels.Service,
	reactions func() (*reaction.Router, error), log *slog.Logger) runtime.Service {
	return &runtime.Background{Name: "intake", Work: func(ctx context.Context) error {
		log.Info("intake running", "projection", tickets.Name)
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			if err := runner.Run(ctx); err != nil {
				return fmt.Errorf("intake: projection %s: %w", tickets.Name, err)
			}
			return nil
		})
		g.Go(func() error { return reaction.RunRetrying(ctx, reactions, 0, log) })
		g.Go(func() error {
			autoclose.Run(ctx, autoclose.Config{Interval: cfg.AutoCloseInterval, Now: cfg.Now}, state, work, log)
			return nil
		})
		if cfg.SMTPAddr != "off" {
			smtp := smtpin.New(smtpin.Config{Addr: cfg.SMTPAddr, Domain: cfg.MailDomain, MaxMessageBytes: cfg.MaxMessageBytes},
				mailBridge{ch}, mailBridge{ch}, log)
			g.Go(func() error {
				ln, err := smtp.Listen()
				if err != nil {
					return fmt.Errorf("intake: smtp listener: %w", err)
				}
				log.Info("smtp listening", "addr", smtp.Addr())
				if cfg.OnSMTP != nil {
					cfg.OnSMTP(smtp.Addr())
				}
				return smtp.Serve(ctx, ln)
			})
		}
		return g.Wait()
	}}
}

// caughtUp returns once the tickets projection has applied everything
// TICKETS holds at the call.
func caughtUp(js jetstream.JetStream, runner *projection.Runner) func(context.Context) error {
	return func(ctx context.Context) error {
		s, err := js.Stream(ctx, ticketv1.Stream)
		if err != nil {
			return err
		}
		if last := s.CachedInfo().State.LastSeq; last > 0 {
			return runner.WaitFor(ctx, last)
		}
		return nil
	}
}

// mailBridge lets the SMTP listener hand mail to the channel layer: the
// recipient names the tenant (<slug>@mail domain).
type mailBridge struct{ ch *channels.Service }

// CheckRecipient refuses addresses that are no tenant's.
func (b mailBridge) CheckRecipient(ctx context.Context, addr string) error {
	_, ok, err := b.ch.TenantForAddress(ctx, addr)
	switch {
	case err != nil:
		return err // 451: the sender retries
	case !ok:
		return smtpin.ErrUnknownRecipient
	}
	return nil
}

// Deliver processes the message once per tenant it is addressed to.
func (b mailBridge) Deliver(ctx context.Context, env smtpin.Envelope, raw []byte) error {
	seen := map[string]bool{}
	for _, rcpt := range env.To {
		tenant, ok, err := b.ch.TenantForAddress(ctx, rcpt)
		if err != nil {
			return err
		}
		if !ok || seen[tenant] {
			continue
		}
		seen[tenant] = true
		_, err = b.ch.ReceiveEmail(ctx, tenant, raw, command.Meta{Actor: "mail:" + env.From})
		var re *channels.RejectedError
		var tl *mail.TooLargeError
		switch {
		case errors.As(err, &re):
			return &smtpin.RejectedError{Reason: re.Reason}
		case errors.As(err, &tl):
			return &smtpin.RejectedError{Reason: tl.Error()}
		case err != nil:
			return err
		}
	}
	return nil
}
