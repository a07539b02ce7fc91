package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Module states reported by Manager.States.
const (
	StateNew      = "new"      // selected, not initialised yet
	StateStarting = "starting" // Init in progress
	StateRunning  = "running"  // Run called (or a grouping module whose deps run)
	StateStopping = "stopping" // shutting down
	StateStopped  = "stopped"  // Stop returned
	StateFailed   = "failed"   // Init, Run or Stop failed
)

// DefaultStopTimeout bounds how long one module gets to finish Run and
// Stop at shutdown.
const DefaultStopTimeout = 30 * time.Second

// Module is a named unit the Manager can run: a piece of infrastructure
// (nats, postgres, http-server) or a service (intake). Deps are started
// before it and stopped after it. Init starts what the module holds (a
// server, a connection, routes on the shared Echo) and returns its Service;
// a nil Init makes a grouping module such as "all", which only pulls in its
// Deps.
type Module struct {
	Name string
	Deps []string
	Init func(ctx context.Context) (Service, error)
}

// Manager runs modules in dependency order in one process. It is safe for
// concurrent use; Run may be called once.
type Manager struct {
	// StopTimeout bounds each module's shutdown (waiting for its Run to
	// return, then Stop). Zero means DefaultStopTimeout. Set it before Run.
	StopTimeout time.Duration

	log     *slog.Logger
	mu      sync.Mutex
	modules map[string]Module
	order   []string // registration order, for error messages
	ran     bool
	states  map[string]string
	started []string // selected modules in start order, once resolved
	// checks are the Ready methods of running services that have one.
	checks map[string]func() error
}

// ReadyChecker is a Service that can be running but not ready yet, e.g.
// while it catches up with a stream; /readyz waits for it.
type ReadyChecker interface {
	Ready() error
}

// NewManager returns an empty Manager logging to log (nil: slog.Default()).
func NewManager(log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{log: log, modules: map[string]Module{}, states: map[string]string{}}
}

// Register adds a module. It panics on an empty or duplicate name: module
// wiring is fixed at build time, so that is a programming error.
func (m *Manager) Register(mod Module) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mod.Name == "" {
		panic("runtime: module without a name")
	}
	if _, dup := m.modules[mod.Name]; dup {
		panic("runtime: module " + mod.Name + " registered twice")
	}
	mod.Deps = slices.Clone(mod.Deps)
	m.modules[mod.Name] = mod
	m.order = append(m.order, mod.Name)
}

// Names returns the registered module names in registration order.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.order)
}

// Deps returns the direct dependencies of a registered module.
func (m *Manager) Deps(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.modules[name].Deps)
}

// Resolve returns the modules targets need, dependencies first, in a
// deterministic order: depth-first through targets in the order given and
// each module's Deps in declared order. It fails on an unknown module or a
// dependency cycle.
func (m *Manager) Resolve(targets []string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolve(targets)
}

func (m *Manager) resolve(targets []string) ([]string, error) {
	if len(targets) == 0 {
		return nil, errors.New("runtime: no target given")
	}
	const (
		unvisited = iota
		visiting
		done
	)
	mark := map[string]int{}
	var order []string
	var path []string
	var visit func(name, from string) error
	visit = func(name, from string) error {
		mod, ok := m.modules[name]
		if !ok {
			if from == "" {
				return fmt.Errorf("runtime: unknown target %q (known: %s)", name, strings.Join(m.sortedNames(), ", "))
			}
			return fmt.Errorf("runtime: module %q depends on unknown module %q", from, name)
		}
		switch mark[name] {
		case done:
			return nil
		case visiting:
			cycle := append(path[slices.Index(path, name):], name)
			return fmt.Errorf("runtime: dependency cycle: %s", strings.Join(cycle, " -> "))
		}
		mark[name] = visiting
		path = append(path, name)
		for _, dep := range mod.Deps {
			if err := visit(dep, name); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		mark[name] = done
		order = append(order, name)
		return nil
	}
	for _, t := range targets {
		if err := visit(t, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func (m *Manager) sortedNames() []string {
	names := slices.Clone(m.order)
	slices.Sort(names)
	return names
}

// Ready returns nil when every selected module is running, else an error
// naming those that are not (for /readyz).
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.started) == 0 {
		return errors.New("modules not started")
	}
	var notRunning []string
	for _, name := range m.started {
		if s := m.states[name]; s != StateRunning {
			notRunning = append(notRunning, name+" ("+s+")")
		} else if check := m.checks[name]; check != nil {
			if err := check(); err != nil {
				notRunning = append(notRunning, name+" (not ready: "+err.Error()+")")
			}
		}
	}
	if len(notRunning) > 0 {
		return errors.New("not running: " + strings.Join(notRunning, ", "))
	}
	return nil
}

// States returns the state of each selected module (for /services).
func (m *Manager) States() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.states))
	for k, v := range m.states {
		out[k] = v
	}
	return out
}

func (m *Manager) setState(name, state string) {
	m.mu.Lock()
	m.states[name] = state
	m.mu.Unlock()
}

// instance is one initialised module.
type instance struct {
	name string
	svc  Service    // nil for grouping modules
	done chan error // receives Run's result; nil until Run starts
}

// Run starts the modules targets need and blocks until ctx is cancelled or
// a module fails:
//
//  1. Init every module in dependency order (Resolve). If one fails, the
//     modules already initialised are stopped in reverse order and Run
//     returns that error.
//  2. Call each Service's Run in its own goroutine. The first Run to return
//     an error (or to return at all before shutdown) cancels the others.
//  3. Shut down in reverse order: wait for a module's Run to return, then
//     call its Stop, each within StopTimeout; dependencies stop after the
//     modules that use them.
//
// Run returns nil after a shutdown requested through ctx, else the first
// error (a failed Init, Run or Stop).
func (m *Manager) Run(ctx context.Context, targets []string) error {
	m.mu.Lock()
	if m.ran {
		m.mu.Unlock()
		return errors.New("runtime: Run called twice")
	}
	m.ran = true
	order, err := m.resolve(targets)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	mods := make([]Module, len(order))
	for i, name := range order {
		mods[i] = m.modules[name]
		m.states[name] = StateNew
	}
	m.started = order
	m.mu.Unlock()

	m.log.InfoContext(ctx, "starting modules", "targets", targets, "order", order)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// 1. Init, dependencies first.
	var instances []*instance
	var firstErr error
	for _, mod := range mods {
		if ctx.Err() != nil {
			break // shutdown requested during start-up
		}
		m.setState(mod.Name, StateStarting)
		inst := &instance{name: mod.Name}
		if mod.Init != nil {
			svc, err := m.initModule(runCtx, mod)
			if err != nil {
				m.setState(mod.Name, StateFailed)
				if ctx.Err() != nil {
					m.log.InfoContext(ctx, "module init interrupted by shutdown", "module", mod.Name, "err", err)
				} else {
					firstErr = err
					m.log.ErrorContext(ctx, "module init failed", "module", mod.Name, "err", err)
				}
				break
			}
			inst.svc = svc
			if rc, ok := svc.(ReadyChecker); ok {
				m.mu.Lock()
				if m.checks == nil {
					m.checks = map[string]func() error{}
				}
				m.checks[mod.Name] = rc.Ready
				m.mu.Unlock()
			}
		}
		instances = append(instances, inst)
	}

	// 2. Run, unless start-up failed or was interrupted.
	if firstErr == nil && ctx.Err() == nil {
		var failMu sync.Mutex
		var failure error
		fail := func(err error) {
			failMu.Lock()
			if failure == nil {
				failure = err
			}
			failMu.Unlock()
			cancel(err)
		}
		for _, inst := range instances {
			m.setState(inst.name, StateRunning)
			if inst.svc == nil {
				continue
			}
			inst.done = make(chan error, 1)
			go func() {
				err := m.runModule(runCtx, inst)
				shuttingDown := runCtx.Err() != nil
				switch {
				case shuttingDown && (err == nil || errors.Is(err, context.Canceled)):
					err = nil // the normal answer to shutdown
				case err == nil:
					err = fmt.Errorf("module %s stopped unexpectedly", inst.name)
				}
				if err != nil {
					m.setState(inst.name, StateFailed)
					m.log.ErrorContext(ctx, "module failed", "module", inst.name, "err", err)
					if !shuttingDown {
						fail(err)
					}
				}
				inst.done <- err
			}()
		}
		m.log.InfoContext(ctx, "modules running", "order", order)
		<-runCtx.Done()
		failMu.Lock()
		firstErr = failure
		failMu.Unlock()
	}

	// 3. Stop, dependents first.
	m.log.InfoContext(ctx, "stopping modules")
	for _, inst := range slices.Backward(instances) {
		if err := m.stopModule(ctx, inst); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		m.log.ErrorContext(ctx, "modules stopped after a failure", "err", firstErr)
	} else {
		m.log.InfoContext(ctx, "modules stopped")
	}
	return firstErr
}

func (m *Manager) stopTimeout() time.Duration {
	if m.StopTimeout > 0 {
		return m.StopTimeout
	}
	return DefaultStopTimeout
}

// stopModule waits (bounded) for inst's Run to return, then calls Stop. It
// returns Run's error, else Stop's.
func (m *Manager) stopModule(ctx context.Context, inst *instance) error {
	if inst.svc == nil {
		m.setState(inst.name, StateStopped)
		return nil
	}
	failed := m.States()[inst.name] == StateFailed
	m.setState(inst.name, StateStopping)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.stopTimeout())
	defer cancel()
	var runErr error
	if inst.done != nil {
		select {
		case runErr = <-inst.done:
		case <-sctx.Done():
			runErr = fmt.Errorf("module %s did not return from Run within %s", inst.name, m.stopTimeout())
			m.log.WarnContext(ctx, "module did not finish running in time; stopping it anyway",
				"module", inst.name, "timeout", m.stopTimeout())
		}
	}
	stopErr := safely(inst.name, "stop", func() error { return inst.svc.Stop(sctx) })
	if stopErr != nil {
		stopErr = fmt.Errorf("stop %s: %w", inst.name, stopErr)
		m.log.ErrorContext(ctx, "module stop failed", "module", inst.name, "err", stopErr)
	}
	if failed || runErr != nil || stopErr != nil {
		m.setState(inst.name, StateFailed) // keep showing why the process stopped
	} else {
		m.setState(inst.name, StateStopped)
	}
	if runErr != nil {
		return runErr
	}
	return stopErr
}

func (m *Manager) initModule(ctx context.Context, mod Module) (Service, error) {
	var svc Service
	err := safely(mod.Name, "init", func() error {
		var err error
		svc, err = mod.Init(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", mod.Name, err)
	}
	if svc == nil {
		return nil, fmt.Errorf("init %s: returned no service", mod.Name)
	}
	return svc, nil
}

func (m *Manager) runModule(ctx context.Context, inst *instance) error {
	err := safely(inst.name, "run", func() error { return inst.svc.Run(ctx) })
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("run %s: %w", inst.name, err)
	}
	return err
}

// safely calls fn, turning a panic into an error so that one module's bug
// still lets the others shut down in order.
func safely(module, phase string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("module %s panicked in %s: %v\n%s", module, phase, r, debug.Stack())
		}
	}()
	return fn()
}
