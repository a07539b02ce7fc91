// Package runtime runs OpsDesk modules (infrastructure and services) in
// dependency order, in one process: the whole system (--target=all) or any
// subset (--target=intake). A module that fails stops the process.
package runtime

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/secret"
)

// Service is a started module. Run blocks until ctx is cancelled or the
// service fails; a returned error other than ctx's stops the process.
// Stop releases what the service holds (drain consumers, flush) within ctx.
type Service interface {
	Run(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Deps is the shared infrastructure a service module is built from.
type Deps struct {
	Logger *slog.Logger
	NATS   *nats.Conn
	JS     jetstream.JetStream
	DB     *pgxpool.Pool
	// HTTP is the echo instance the service mounts its routes on: the shared
	// listener in all-in-one mode, the service's own in split mode.
	HTTP *echo.Echo
	// Auth verifies callers; services mount their routes behind it.
	Auth *auth.Authenticator
	// Secret is the installation's secret key (zero when none is
	// configured; services that need one refuse to start without it).
	Secret secret.Key
	// Streams are the shared settings of the streams services create
	// (OPSDESK_NATS_REPLICAS, OPSDESK_NATS_DUPLICATE_WINDOW); zero fields
	// leave the service's defaults.
	Streams Streams
	// DeadLetters is where services register their reactions, so that an
	// operator's replay of a dead letter runs the same handler (nil: none).
	DeadLetters *deadletter.Registry
	// Mail is the mail domain and SMTP listen address (OPSDESK_MAIL_DOMAIN,
	// OPSDESK_SMTP_ADDR); zero fields leave the service's defaults.
	Mail Mail
}

// Mail are the shared mail settings.
type Mail struct {
	Domain   string
	SMTPAddr string
}

// Streams are stream settings shared by every service.
type Streams struct {
	Replicas        int
	DuplicateWindow time.Duration
}
