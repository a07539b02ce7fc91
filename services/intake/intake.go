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
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/jsadapter"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
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
	}
}

// RegisterFlags registers intake's own flags on f, named prefix+"read-wait"
// and so on (prefix is e.g. "intake."), and sets c to the defaults. With
// config.Section{EnvPrefix: "OPSDESK_INTAKE_"} the env tags become
// OPSDESK_INTAKE_READ_WAIT and so on.
func (c *Config) RegisterFlags(prefix string, f *flag.FlagSet) {
	d := DefaultConfig()
	c.Replicas, c.DuplicateWindow = d.Replicas, d.DuplicateWindow
	f.DurationVar(&c.ReadWait, prefix+"read-wait", d.ReadWait, "how long a read with X-Consistency-Token waits for the read model (env OPSDESK_INTAKE_READ_WAIT)")
	f.IntVar(&c.NumberBlock, prefix+"number-block", d.NumberBlock, "ticket numbers reserved per counter increment, per tenant (env OPSDESK_INTAKE_NUMBER_BLOCK)")
	f.DurationVar(&c.PublishTimeout, prefix+"publish-timeout", d.PublishTimeout, "timeout of one append or counter increment (env OPSDESK_INTAKE_PUBLISH_TIMEOUT)")
	f.IntVar(&c.ProjectionBatch, prefix+"projection-batch", d.ProjectionBatch, "events applied per projection transaction (env OPSDESK_INTAKE_PROJECTION_BATCH)")
}

// withStreams takes the shared stream settings (OPSDESK_NATS_REPLICAS and
// _DUPLICATE_WINDOW) from the binary's infrastructure.
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
	if c.ReadWait == 0 {
		c.ReadWait = d.ReadWait
	}
	if c.NumberBlock == 0 {
		c.NumberBlock = d.NumberBlock
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = d.DuplicateWindow
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.ProjectionBatch == 0 {
		c.ProjectionBatch = d.ProjectionBatch
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
	cfg = cfg.withStreams(d.Streams).withDefaults()
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
	store := jsadapter.FailFastStore{
		Store: jsstore.New(d.NATS, d.JS, jsstore.Config{
			Context:        ticketv1.Context,
			Stream:         ticketv1.Stream,
			PublishTimeout: cfg.PublishTimeout,
		}),
		Connected: connected,
	}
	numbers := jsadapter.NewNumbers(d.JS, int64(cfg.NumberBlock), cfg.PublishTimeout, connected)
	create, err := command.NewCreateTicketHandler(store, numbers, nil)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	queries, err := query.NewHandler(tickets.NewReadModel(d.DB), runner, cfg.ReadWait)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	if err := httpport.Register(d.HTTP, d.Auth, httpport.NewServer(create, queries)); err != nil {
		return nil, err
	}
	return newService(runner, log), nil
}

// setup provisions streams and the schema, and builds the projection runner.
func setup(ctx context.Context, cfg Config, d runtime.Deps, log *slog.Logger) (*projection.Runner, error) {
	if _, err := natsx.EnsureStream(ctx, d.JS, natsx.StreamConfig{
		Name:            ticketv1.Stream,
		Subjects:        []string{ticketv1.Context + ".>"},
		Replicas:        cfg.Replicas,
		DuplicateWindow: cfg.DuplicateWindow,
	}); err != nil {
		return nil, fmt.Errorf("intake: stream %s: %w", ticketv1.Stream, err)
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
	cfg = cfg.withStreams(d.Streams).withDefaults()
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

// newService runs the tickets projection until stopped; Stop lets the
// in-flight batch finish.
func newService(runner *projection.Runner, log *slog.Logger) runtime.Service {
	return &runtime.Background{Name: "intake", Work: func(ctx context.Context) error {
		log.Info("intake running", "projection", tickets.Name)
		if err := runner.Run(ctx); err != nil {
			return fmt.Errorf("intake: projection %s: %w", tickets.Name, err)
		}
		return nil
	}}
}
