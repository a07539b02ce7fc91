package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/runtime"
)

// recorder keeps the lifecycle calls of every fake module, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// with returns the events starting with prefix ("init:", "stop:"), without it.
func (r *recorder) with(prefix string) []string {
	var out []string
	for _, e := range r.list() {
		if name, ok := strings.CutPrefix(e, prefix); ok {
			out = append(out, name)
		}
	}
	return out
}

// fake is a Service whose behaviour the test controls.
type fake struct {
	name    string
	rec     *recorder
	running chan struct{} // closed when Run is entered
	fail    chan error    // Run returns what is sent here
	stopErr error
	panicIn string // "run" makes Run panic
	ignore  bool   // Run ignores ctx (stuck module)
	release chan struct{}
}

func (f *fake) Run(ctx context.Context) error {
	f.rec.add("run:" + f.name)
	close(f.running)
	if f.panicIn == "run" {
		panic("boom in " + f.name)
	}
	if f.ignore {
		<-f.release
		return nil
	}
	select {
	case <-ctx.Done():
		f.rec.add("run-end:" + f.name)
		return ctx.Err()
	case err := <-f.fail:
		f.rec.add("run-end:" + f.name)
		return err
	}
}

func (f *fake) Stop(context.Context) error {
	f.rec.add("stop:" + f.name)
	return f.stopErr
}

// system registers the STYLE.md module graph; fakes are created on Init.
type system struct {
	m     *runtime.Manager
	rec   *recorder
	mu    sync.Mutex
	fakes map[string]*fake
	// initErr makes a module's Init fail; configure sets up a fake.
	initErr   map[string]error
	configure func(*fake)
}

func newSystem(t *testing.T) *system {
	t.Helper()
	s := &system{
		m:       runtime.NewManager(slog.New(slog.DiscardHandler)),
		rec:     &recorder{},
		fakes:   map[string]*fake{},
		initErr: map[string]error{},
	}
	add := func(name string, deps ...string) {
		s.m.Register(runtime.Module{Name: name, Deps: deps, Init: func(ctx context.Context) (runtime.Service, error) {
			s.rec.add("init:" + name)
			if err := s.initErr[name]; err != nil {
				return nil, err
			}
			f := &fake{name: name, rec: s.rec, running: make(chan struct{}), fail: make(chan error, 1), release: make(chan struct{})}
			if s.configure != nil {
				s.configure(f)
			}
			s.mu.Lock()
			s.fakes[name] = f
			s.mu.Unlock()
			return f, nil
		}})
	}
	add("telemetry")
	add("nats", "telemetry")
	add("postgres", "telemetry")
	add("http-server", "telemetry")
	add("intake", "nats", "postgres", "http-server")
	add("triage", "nats", "postgres", "http-server")
	s.m.Register(runtime.Module{Name: "all", Deps: []string{"intake", "triage"}})
	return s
}

func (s *system) fake(name string) *fake {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fakes[name]
}

// start runs the manager in the background and waits until every fake of
// names is inside Run.
func (s *system) start(t *testing.T, ctx context.Context, targets []string, names ...string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.m.Run(ctx, targets) }()
	deadline := time.After(10 * time.Second)
	for _, name := range names {
		for s.fake(name) == nil {
			select {
			case err := <-done:
				t.Fatalf("Run returned %v before %s started", err, name)
			case <-deadline:
				t.Fatalf("%s was never initialised", name)
			case <-time.After(time.Millisecond):
			}
		}
		select {
		case <-s.fake(name).running:
		case <-deadline:
			t.Fatalf("%s never ran", name)
		}
	}
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

var allModules = []string{"telemetry", "nats", "postgres", "http-server", "intake", "triage"}

func TestResolveOrder(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	cases := map[string][]string{
		"all":           {"telemetry", "nats", "postgres", "http-server", "intake", "triage", "all"},
		"intake":        {"telemetry", "nats", "postgres", "http-server", "intake"},
		"triage,intake": {"telemetry", "nats", "postgres", "http-server", "triage", "intake"},
		"nats":          {"telemetry", "nats"},
	}
	for targets, want := range cases {
		for range 3 { // deterministic, not map order
			got, err := s.m.Resolve(strings.Split(targets, ","))
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("Resolve(%s) = %v, %v; want %v", targets, got, err, want)
			}
		}
	}
}

func TestRunStartsInOrderAndStopsInReverse(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	if err := s.m.Ready(); err == nil {
		t.Fatal("Ready before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := s.start(t, ctx, []string{"all"}, allModules...)

	if err := s.m.Ready(); err != nil {
		t.Fatalf("Ready with every module running: %v", err)
	}
	states := s.m.States()
	for _, name := range append(slices.Clone(allModules), "all") {
		if states[name] != runtime.StateRunning {
			t.Fatalf("states %v: %s not running", states, name)
		}
	}
	if got := s.rec.with("init:"); !slices.Equal(got, allModules) {
		t.Fatalf("init order %v, want %v", got, allModules)
	}

	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	reversed := slices.Clone(allModules)
	slices.Reverse(reversed)
	if got := s.rec.with("stop:"); !slices.Equal(got, reversed) {
		t.Fatalf("stop order %v, want %v", got, reversed)
	}
	// Each module's Run has returned before its Stop is called.
	events := s.rec.list()
	for _, name := range allModules {
		if slices.Index(events, "run-end:"+name) > slices.Index(events, "stop:"+name) {
			t.Fatalf("%s stopped while still running: %v", name, events)
		}
	}
	for name, st := range s.m.States() {
		if st != runtime.StateStopped {
			t.Fatalf("after shutdown %s is %s", name, st)
		}
	}
	if err := s.m.Ready(); err == nil {
		t.Fatal("Ready after shutdown")
	}
	if err := s.m.Run(context.Background(), []string{"all"}); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestFailingModuleStopsTheOthers(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	done := s.start(t, context.Background(), []string{"all"}, allModules...)
	boom := errors.New("consumer deleted")
	s.fake("intake").fail <- boom

	err := wait(t, done)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "intake") {
		t.Fatalf("Run = %v, want intake's error", err)
	}
	reversed := slices.Clone(allModules)
	slices.Reverse(reversed)
	if got := s.rec.with("stop:"); !slices.Equal(got, reversed) {
		t.Fatalf("stop order %v, want %v", got, reversed)
	}
	states := s.m.States()
	if states["intake"] != runtime.StateFailed || states["triage"] != runtime.StateStopped {
		t.Fatalf("states %v: want intake failed, triage stopped", states)
	}
}

func TestModuleReturningEarlyIsAFailure(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	done := s.start(t, context.Background(), []string{"intake"}, "telemetry", "nats", "postgres", "http-server", "intake")
	s.fake("nats").fail <- nil
	if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "nats stopped unexpectedly") {
		t.Fatalf("Run = %v, want nats stopped unexpectedly", err)
	}
}

func TestPanickingModuleIsAFailure(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.configure = func(f *fake) {
		if f.name == "triage" {
			f.panicIn = "run"
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.m.Run(context.Background(), []string{"all"}) }()
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "module triage panicked") {
		t.Fatalf("Run = %v, want triage's panic", err)
	}
	if got := s.rec.with("stop:"); len(got) != len(allModules) {
		t.Fatalf("stopped %v, want every module", got)
	}
}

func TestInitFailureStopsStartedModulesInReverse(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	refused := errors.New("connection refused")
	s.initErr["postgres"] = refused
	err := s.m.Run(context.Background(), []string{"all"})
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "init postgres") {
		t.Fatalf("Run = %v, want postgres's init error", err)
	}
	if got := s.rec.with("init:"); !slices.Equal(got, []string{"telemetry", "nats", "postgres"}) {
		t.Fatalf("inits %v: nothing after the failure may start", got)
	}
	if got := s.rec.with("stop:"); !slices.Equal(got, []string{"nats", "telemetry"}) {
		t.Fatalf("stops %v, want [nats telemetry]", got)
	}
	if got := s.rec.with("run:"); len(got) != 0 {
		t.Fatalf("Run called on %v although start-up failed", got)
	}
	if st := s.m.States()["postgres"]; st != runtime.StateFailed {
		t.Fatalf("postgres is %s, want failed", st)
	}
}

func TestCancelDuringStartupIsCleanShutdown(t *testing.T) {
	t.Parallel()
	m := runtime.NewManager(slog.New(slog.DiscardHandler))
	rec := &recorder{}
	entered := make(chan struct{})
	m.Register(runtime.Module{Name: "nats", Init: func(ctx context.Context) (runtime.Service, error) {
		rec.add("init:nats")
		return &fake{name: "nats", rec: rec, running: make(chan struct{}), fail: make(chan error)}, nil
	}})
	m.Register(runtime.Module{Name: "postgres", Deps: []string{"nats"}, Init: func(ctx context.Context) (runtime.Service, error) {
		close(entered)
		<-ctx.Done() // e.g. waiting for the database to answer
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"postgres"}) }()
	<-entered
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run = %v, want nil for a shutdown during start-up", err)
	}
	if got := rec.with("stop:"); !slices.Equal(got, []string{"nats"}) {
		t.Fatalf("stops %v, want [nats]", got)
	}
}

func TestStopErrorIsReturned(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	flush := errors.New("flush failed")
	s.configure = func(f *fake) {
		if f.name == "telemetry" {
			f.stopErr = flush
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := s.start(t, ctx, []string{"nats"}, "telemetry", "nats")
	cancel()
	if err := wait(t, done); !errors.Is(err, flush) {
		t.Fatalf("Run = %v, want the stop error", err)
	}
}

func TestStuckModuleIsBoundedByStopTimeout(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	s.m.StopTimeout = 50 * time.Millisecond
	s.configure = func(f *fake) {
		if f.name == "nats" {
			f.ignore = true
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := s.start(t, ctx, []string{"nats"}, "telemetry", "nats")
	t.Cleanup(func() { close(s.fake("nats").release) })
	cancel()
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "nats did not return from Run") {
		t.Fatalf("Run = %v, want a timeout naming nats", err)
	}
	if got := s.rec.with("stop:"); !slices.Equal(got, []string{"nats", "telemetry"}) {
		t.Fatalf("stops %v: the stuck module and its dependencies must still be stopped", got)
	}
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	m := runtime.NewManager(nil)
	m.Register(runtime.Module{Name: "a", Deps: []string{"b"}})
	m.Register(runtime.Module{Name: "b", Deps: []string{"c"}})
	m.Register(runtime.Module{Name: "c", Deps: []string{"a"}})
	m.Register(runtime.Module{Name: "d", Deps: []string{"ghost"}})
	m.Register(runtime.Module{Name: "e"})
	cases := []struct {
		targets []string
		want    string
	}{
		{[]string{"nope"}, `unknown target "nope" (known: a, b, c, d, e)`},
		{[]string{"e", "nope"}, `unknown target "nope"`},
		{[]string{"a"}, "dependency cycle: a -> b -> c -> a"},
		{[]string{"d"}, `module "d" depends on unknown module "ghost"`},
		{nil, "no target"},
	}
	for _, tc := range cases {
		if _, err := m.Resolve(tc.targets); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%v) = %v, want %q", tc.targets, err, tc.want)
		}
	}
	if err := m.Run(context.Background(), []string{"nope"}); err == nil || !strings.Contains(err.Error(), "unknown target") {
		t.Errorf("Run(unknown) = %v", err)
	}
}

func TestRegisterRejectsDuplicates(t *testing.T) {
	t.Parallel()
	m := runtime.NewManager(nil)
	m.Register(runtime.Module{Name: "a"})
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate module accepted")
		}
	}()
	m.Register(runtime.Module{Name: "a"})
}
