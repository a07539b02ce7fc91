package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/embedded"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/secret"
	"github.com/opsdesk/opsdesk/libs/telemetry"
)

func (p *Platform) initTelemetry(ctx context.Context) (runtime.Service, error) {
	name := p.opts.ServiceName
	if name == "" {
		name = p.cfg.Telemetry.ServiceName
	}
	t, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName:  name,
		OTLPEndpoint: p.cfg.Telemetry.OTLPEndpoint,
		SampleRatio:  p.cfg.Telemetry.SampleRatio,
		Logger:       p.log,
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	p.mu.Lock()
	p.telemetry = t
	p.mu.Unlock()
	// Stopped last (it is everyone's dependency), so the spans of the other
	// modules' shutdown are flushed too.
	return waitService{stop: t.Shutdown}, nil
}

// initNATS connects to the configured NATS, or starts an embedded server on
// loopback and connects in-process.
func (p *Platform) initNATS(ctx context.Context) (runtime.Service, error) {
	url := p.cfg.NATS.URL
	var opts []nats.Option
	var srv *server.Server
	if url == "" {
		if p.opts.NoEmbeddedNATS {
			return nil, errNoNATS
		}
		e := p.cfg.NATS.Embedded
		if err := portFree(e.Host, e.Port); err != nil {
			return nil, err
		}
		s, err := embedded.Start(embedded.Config{
			Dir:          p.embeddedDir(),
			Host:         e.Host,
			Port:         e.Port,
			SyncAlways:   e.SyncAlways(),
			SyncInterval: e.SyncInterval,
			Logger:       p.log.With("module", NATS),
		})
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.natsServer = s
		p.mu.Unlock()
		srv = s
		// Services talk to the embedded server in-process; the loopback
		// port is there for the nats CLI and for `opsdesk deadletters`.
		opts = append(opts, nats.InProcessServer(s))
		url = "nats://" + net.JoinHostPort(e.Host, strconv.Itoa(embedded.Port(s)))
	}
	shutdown := func() {
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	}
	nc, err := natsx.Connect(url, p.cfg.Telemetry.ServiceName, opts...)
	if err != nil {
		shutdown()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		shutdown()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	p.mu.Lock()
	p.nc, p.js, p.natsURL = nc, js, url
	p.mu.Unlock()
	return waitService{stop: p.stopNATS}, nil
}

// stopNATS drains the connection (the services stopped before it, so this
// only flushes) and shuts the embedded server down.
func (p *Platform) stopNATS(ctx context.Context) error {
	p.mu.Lock()
	nc, srv := p.nc, p.natsServer
	p.mu.Unlock()
	var errs []error
	if nc != nil {
		closed := make(chan struct{})
		nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if err := nc.Drain(); err != nil {
			nc.Close()
		} else {
			select {
			case <-closed:
			case <-ctx.Done():
				nc.Close()
				errs = append(errs, fmt.Errorf("nats: drain: %w", ctx.Err()))
			}
		}
	}
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	return errors.Join(errs...)
}

func (p *Platform) initPostgres(ctx context.Context) (runtime.Service, error) {
	url := p.cfg.Postgres.URL
	var stop func(context.Context) error
	if p.opts.Postgres != nil {
		var err error
		if url, stop, err = p.opts.Postgres(ctx); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	if url == "" {
		return nil, errors.New("postgres: no database URL configured (DATABASE_URL)")
	}
	pool, err := pgdb.Connect(ctx, withMaxConns(url, p.cfg.Postgres.MaxConns))
	if err != nil {
		if stop != nil {
			_ = stop(context.WithoutCancel(ctx))
		}
		return nil, err
	}
	p.mu.Lock()
	p.db = pool
	p.mu.Unlock()
	return waitService{stop: func(ctx context.Context) error {
		pool.Close()
		if stop != nil {
			return stop(ctx)
		}
		return nil
	}}, nil
}

// initHTTP builds the shared echo instance with the operational routes.
// Services mount their routes on it in their Init, which runs after this
// one; Run serves it.
func (p *Platform) initHTTP(ctx context.Context) (runtime.Service, error) {
	e := newEcho(p)
	p.mu.Lock()
	p.http = e
	p.mu.Unlock()
	return &httpService{p: p, e: e}, nil
}

// withMaxConns sets the pool size through pgx's pool_max_conns parameter,
// unless the URL sets it itself.
func withMaxConns(url string, n int) string {
	if n <= 0 || strings.Contains(url, "pool_max_conns") {
		return url
	}
	param := "pool_max_conns=" + strconv.Itoa(n)
	switch {
	case !strings.Contains(url, "://"):
		return url + " " + param // key=value form
	case strings.Contains(url, "?"):
		return url + "&" + param
	default:
		return url + "?" + param
	}
}

// portFree checks that the embedded server can listen on host:port; the
// server itself only reports that it did not become ready, after a timeout.
func portFree(host string, port int) error {
	if port <= 0 {
		return nil // a free port is picked
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("embedded nats: cannot listen on %s (another opsdesk run, or a NATS server? "+
			"set OPSDESK_NATS_PORT to another port, or OPSDESK_NATS_URL to use that server): %w", addr, err)
	}
	return ln.Close()
}

// initAuth builds the process's Authenticator: keys from identity's JWKS,
// revocations and API tokens from the IDENTITY stream (its Run follows the
// stream; it is ready once caught up), API token use reported over NATS.
// It also settles the secret key.
func (p *Platform) initAuth(ctx context.Context) (runtime.Service, error) {
	key, err := p.secretKey()
	if err != nil {
		return nil, err
	}
	url := p.cfg.Auth.JWKSURL
	if url == "" {
		url = "http://" + loopback(p.HTTPAddr()) + "/.well-known/jwks.json"
	}
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	keys, err := auth.NewJWKS(kctx, url)
	if err != nil {
		cancel()
		return nil, err
	}
	p.mu.Lock()
	nc, js := p.nc, p.js
	p.mu.Unlock()
	state := auth.NewState()
	follower := auth.NewFollower(js, state, p.log)
	a := auth.NewAuthenticator(auth.Config{
		Keys:          keys,
		State:         state,
		Ready:         follower.Ready,
		OnAPITokenUse: auth.NewUsageReporter(nc).Report,
	})
	p.mu.Lock()
	p.auth, p.secret = a, key
	p.mu.Unlock()
	return &authService{follower: follower, stop: cancel}, nil
}

// secretKey is OPSDESK_SECRET_KEY, or with GenerateSecret one kept in the
// data directory, or the zero key.
func (p *Platform) secretKey() (secret.Key, error) {
	if p.cfg.Secrets.Key != "" {
		return secret.Parse(p.cfg.Secrets.Key) // validated by config.Load
	}
	if !p.opts.GenerateSecret {
		return secret.Key{}, nil
	}
	file := filepath.Join(p.cfg.Runtime.DataDir, "secret.key")
	k, created, err := secret.LoadOrCreate(file)
	if err != nil {
		return secret.Key{}, fmt.Errorf("auth: %w", err)
	}
	if created {
		p.log.Warn("no OPSDESK_SECRET_KEY: generated one for this installation; set OPSDESK_SECRET_KEY in production", "file", file)
	}
	return k, nil
}

// loopback turns a wildcard listen address into one a client can dial.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// authService follows the IDENTITY stream for the Authenticator.
type authService struct {
	follower *auth.Follower
	stop     context.CancelFunc
}

func (s *authService) Run(ctx context.Context) error { return s.follower.Run(ctx) }

func (s *authService) Ready() error { return s.follower.Ready() }

func (s *authService) Stop(context.Context) error {
	s.stop()
	return nil
}
