package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/projection"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/libs/telemetry"
	"github.com/opsdesk/opsdesk/services/intake"
)

// intakeEnv is the intake service as it runs in production, in this
// process: its own NATS connection to the embedded server, a traced pgx
// pool, the shared Echo instance served over real HTTP on 127.0.0.1, and its
// projection running.
type intakeEnv struct {
	nats    *natsServer
	nc      *nats.Conn
	js      jetstream.JetStream
	db      *database
	deps    runtime.Deps
	svc     runtime.Service
	baseURL string

	stopHTTP context.CancelFunc
	httpDone chan error
	stopRun  context.CancelFunc
	runDone  chan error
}

// serviceLogger formats like production (JSON with trace ids) but writes
// nowhere: the cost of logging is measured, the output is not wanted.
func serviceLogger() *slog.Logger { return telemetry.NewLogger(io.Discard, slog.LevelInfo) }

// newIntake starts NATS in mode, a throwaway database, and intake on them.
// run says whether to start the projection.
func newIntake(ctx context.Context, cfg Config, mode Durability, run bool) (_ *intakeEnv, err error) {
	env := &intakeEnv{}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	if env.nats, err = startNATS(mode); err != nil {
		return nil, err
	}
	if env.nc, err = natsx.Connect(env.nats.URL(), "opsdesk-intake"); err != nil {
		return nil, err
	}
	if env.js, err = jetstream.New(env.nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if env.db, err = createDatabase(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	log := serviceLogger()
	e := httpx.New(httpx.Config{}, log)
	env.deps = runtime.Deps{Logger: log, NATS: env.nc, JS: env.js, DB: env.db.pool, HTTP: e, Auth: benchAuth.authenticator()}
	if env.svc, err = intake.New(ctx, intake.Config{}, env.deps); err != nil {
		return nil, fmt.Errorf("intake.New: %w", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	env.baseURL = "http://" + ln.Addr().String()
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	env.stopHTTP, env.httpDone = stopHTTP, make(chan error, 1)
	go func() { env.httpDone <- httpx.Listen(httpCtx, e, ln, 5*time.Second) }()

	if run {
		env.startProjection()
	}
	return env, nil
}

// startProjection runs intake (its projection) until close.
func (env *intakeEnv) startProjection() {
	runCtx, stopRun := context.WithCancel(context.Background())
	env.stopRun, env.runDone = stopRun, make(chan error, 1)
	go func() { env.runDone <- env.svc.Run(runCtx) }()
}

// stopProjection stops intake's projection (Stop, then Run returns).
func (env *intakeEnv) stopProjection() error {
	if env.stopRun == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := env.svc.Stop(ctx)
	env.stopRun()
	if rerr := <-env.runDone; err == nil {
		err = rerr
	}
	env.stopRun, env.runDone = nil, nil
	if err != nil {
		return fmt.Errorf("stop projection: %w", err)
	}
	return nil
}

func (env *intakeEnv) close() {
	if env.stopHTTP != nil {
		env.stopHTTP()
		<-env.httpDone
	}
	if env.stopRun != nil {
		env.stopRun()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_ = env.svc.Stop(ctx)
		cancel()
		<-env.runDone
	}
	if env.nc != nil {
		env.nc.Close()
	}
	if env.nats != nil {
		env.nats.close()
	}
	if env.db != nil {
		env.db.drop()
	}
}

// lastSeq is the TICKETS stream's last sequence.
func (env *intakeEnv) lastSeq(ctx context.Context) (uint64, error) {
	s, err := env.js.Stream(ctx, ticketv1.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", ticketv1.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", ticketv1.Stream, err)
	}
	return info.State.LastSeq, nil
}

// caughtUp waits until the projection has applied everything in the stream.
func (env *intakeEnv) caughtUp(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	seq, err := env.lastSeq(ctx)
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := projection.WaitFor(wctx, env.db.pool, intake.Schema, intake.TicketsProjection, seq); err != nil {
		return 0, fmt.Errorf("projection did not catch up with seq %d: %w", seq, err)
	}
	return time.Since(start), nil
}

// createOne posts one ticket and returns its stream sequence.
func (env *intakeEnv) createOne(ctx context.Context) (uint64, error) {
	l := newHTTPLoad(env.baseURL, 1)
	defer l.close()
	var got created
	l.onCreated = func(c created) { got = c }
	if !l.post(ctx, 0) {
		var rec recorder
		return 0, fmt.Errorf("create a ticket: %s", l.result(&rec, time.Second).FirstError)
	}
	return got.seq, nil
}

// template posts one ticket through intake and reads back the message it
// stored: the raw baseline republishes exactly that size and header set.
func (env *intakeEnv) template(ctx context.Context) (msgTemplate, EventSize, error) {
	seq, err := env.createOne(ctx)
	if err != nil {
		return msgTemplate{}, EventSize{}, err
	}
	s, err := env.js.Stream(ctx, ticketv1.Stream)
	if err != nil {
		return msgTemplate{}, EventSize{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return msgTemplate{}, EventSize{}, fmt.Errorf("get stored event %d: %w", seq, err)
	}
	size := sizeOf(m.Header, m.Data, "stored by intake (stream seq "+strconv.FormatUint(seq, 10)+")")
	return newTemplate(m.Header, m.Data), size, nil
}

// errIf returns a descriptive error when a load phase produced nothing.
func errIf(t Throughput, what string) error {
	if t.Ops > 0 {
		return nil
	}
	msg := what + ": no successful operation"
	if t.FirstError != "" {
		msg += " (first error: " + t.FirstError + ")"
	}
	return errors.New(msg)
}
