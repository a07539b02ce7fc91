package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/cmd/opsdesk/internal/localpg"
	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/pgdb"
	"github.com/opsdesk/opsdesk/libs/runtime"
)

// The operator commands talk to the same NATS and Postgres as `run`, found
// the same way: OPSDESK_NATS_URL or the embedded server's address (so a
// running `opsdesk run` must be up), DATABASE_URL or the local Postgres.

// opsFlags are the flags every operator command takes besides its own.
type opsFlags struct {
	natsURL string
	dataDir string
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.natsURL, "nats.url", "", "NATS URL (default OPSDESK_NATS_URL, else the embedded server of `opsdesk run`)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory of `opsdesk run` (default OPSDESK_DATA_DIR or ./.data)")
}

// opsConfig loads the configuration from the environment, with the
// command's overrides.
func (c *cli) opsConfig(o opsFlags) (config.Config, []*service, error) {
	svcs := newServices(nil, nil)
	cfg, err := config.Load(nil, c.getenv, sections(svcs)...)
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("configuration:\n%w", err)
	}
	if o.natsURL != "" {
		cfg.NATS.URL = o.natsURL
	}
	if o.dataDir != "" {
		cfg.Runtime.DataDir = o.dataDir
	}
	return cfg, svcs, nil
}

// infra is what an operator command connected to; close releases it.
type infra struct {
	deps  runtime.Deps
	close func()
}

// connect opens NATS and, when withDB, Postgres.
func (c *cli) connect(ctx context.Context, cfg config.Config, withDB bool) (*infra, error) {
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	url := cfg.NATS.URL
	if url == "" {
		url = "nats://" + net.JoinHostPort(cfg.NATS.Embedded.Host, strconv.Itoa(cfg.NATS.Embedded.Port))
	}
	nc, err := natsx.Connect(url, "opsdesk-cli")
	if err != nil {
		return nil, fmt.Errorf("cannot reach NATS at %s (is `opsdesk run` running? otherwise set OPSDESK_NATS_URL): %w", redactNATS(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	in := &infra{deps: runtime.Deps{Logger: log, NATS: nc, JS: js}, close: nc.Close}
	if !withDB {
		return in, nil
	}
	dbURL, stop := cfg.Postgres.URL, func(context.Context) error { return nil }
	if dbURL == "" {
		pg, err := localpg.Find(ctx, localpg.Options{
			ProbeAddr:  localPostgresAddr,
			ClusterDir: filepath.Join(cfg.Runtime.DataDir, "postgres"),
			Database:   "opsdesk",
			Logger:     log,
		})
		if err != nil {
			nc.Close()
			return nil, err
		}
		dbURL, stop = pg.URL, pg.Stop
	}
	pool, err := pgdb.Connect(ctx, dbURL)
	if err != nil {
		_ = stop(context.WithoutCancel(ctx))
		nc.Close()
		return nil, err
	}
	in.deps.DB = pool
	in.close = func() {
		pool.Close()
		_ = stop(context.Background())
		nc.Close()
	}
	return in, nil
}

// deadletters runs `deadletters list` and `deadletters replay <seq>`.
func (c *cli) deadletters(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"deadletters: want list or replay"}
	}
	fs := flag.NewFlagSet("deadletters "+args[0], flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var o opsFlags
	o.register(fs)
	switch args[0] {
	case "list":
		consumer := fs.String("consumer", "", "only this consumer's dead letters (a projection or reaction name)")
		limit := fs.Int("limit", deadletter.DefaultLimit, "show at most this many, the newest")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if fs.NArg() > 0 {
			return usageError{"deadletters list: unexpected argument " + fs.Arg(0)}
		}
		return c.listDeadLetters(ctx, o, *consumer, *limit)
	case "replay":
		target := fs.String("target", config.TargetAll, "services whose consumers may be replayed")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		if fs.NArg() != 1 {
			return usageError{"deadletters replay: want one sequence number"}
		}
		seq, err := strconv.ParseUint(fs.Arg(0), 10, 64)
		if err != nil || seq == 0 {
			return usageError{fmt.Sprintf("deadletters replay: %q is not a dead-letter sequence number", fs.Arg(0))}
		}
		return c.replayDeadLetter(ctx, o, strings.Split(*target, ","), seq)
	default:
		return usageError{fmt.Sprintf("deadletters: unknown subcommand %q (want list or replay)", args[0])}
	}
}

func (c *cli) listDeadLetters(ctx context.Context, o opsFlags, consumer string, limit int) error {
	cfg, _, err := c.opsConfig(o)
	if err != nil {
		return err
	}
	in, err := c.connect(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer in.close()
	letters, err := deadletter.List(ctx, in.deps.JS, consumer, limit)
	if err != nil {
		return err
	}
	if len(letters) == 0 {
		fmt.Fprintln(c.stdout, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tCONSUMER\tSUBJECT\tORIGINAL SEQ\tATTEMPTS\tERROR")
	for _, l := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\n", l.Seq, l.Time.UTC().Format(time.RFC3339), l.Consumer,
			l.Subject, l.OriginalSeq, l.Attempts, oneLine(l.Error, 120))
	}
	return tw.Flush()
}

// replayDeadLetter builds the selected services (without serving them) so
// their consumers register how to replay, then replays one dead letter.
func (c *cli) replayDeadLetter(ctx context.Context, o opsFlags, targets []string, seq uint64) error {
	cfg, svcs, err := c.opsConfig(o)
	if err != nil {
		return err
	}
	in, err := c.connect(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer in.close()
	// The services register their consumers' replay functions here while
	// they are built (runtime.Deps.DeadLetters).
	registry := deadletter.NewRegistry()
	d := in.deps
	d.DeadLetters = registry
	d.HTTP = echo.New() // routes are mounted and never served
	for _, s := range selected(svcs, targets) {
		svc, err := s.build(ctx, d)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		defer func() { _ = svc.Stop(context.WithoutCancel(ctx)) }()
	}
	if err := registry.Replay(ctx, in.deps.JS, seq); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "dead letter %d replayed and removed from the DLQ\n", seq)
	return nil
}

// rebuild empties a read model and replays its stream into it.
func (c *cli) rebuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var o opsFlags
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	cfg, svcs, err := c.opsConfig(o)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"rebuild: want one projection: " + strings.Join(projections(svcs), ", ")}
	}
	name := fs.Arg(0)
	var fn func(context.Context, runtime.Deps) error
	for _, s := range svcs {
		if f, ok := s.rebuild[name]; ok {
			fn = f
		}
	}
	if fn == nil {
		return usageError{fmt.Sprintf("rebuild: unknown projection %q (known: %s)", name, strings.Join(projections(svcs), ", "))}
	}
	in, err := c.connect(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer in.close()
	if err := fn(ctx, in.deps); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "projection %s reset: its read model is empty and refills from the start of its stream "+
		"while the service runs (`opsdesk run`)\n", name)
	return nil
}

// healthcheck exits non-zero unless url answers 200: the container
// healthcheck of an image without curl.
func (c *cli) healthcheck(ctx context.Context, args []string) error {
	url := "http://127.0.0.1:8080/readyz"
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		return usageError{"healthcheck: want at most one URL"}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return usageError{fmt.Sprintf("healthcheck: %v", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", url, resp.Status, oneLine(string(body), 300))
	}
	return nil
}

// oneLine shortens s to one line of at most n characters, for tables.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
