package main

import (
	"context"
	"flag"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/identity"
	"github.com/opsdesk/opsdesk/services/intake"
)

// service is one OpsDesk service this binary can run. Each later service
// (triage, sla, assets, ...) adds itself in newServices.
type service struct {
	name string
	// section is the service's configuration (OPSDESK_<NAME>_*, -<name>.*).
	section config.Section
	// extra are further sections of the service (identity's bootstrap).
	extra []config.Section
	// config is the loaded section, shown at /config.
	config func() any
	// build makes the service from the shared infrastructure.
	build func(ctx context.Context, d runtime.Deps) (runtime.Service, error)
	// rebuild empties each of the service's read models, by projection name.
	rebuild map[string]func(ctx context.Context, d runtime.Deps) error
}

// devMode is whether the all-in-one conveniences apply: only with the
// embedded NATS (no OPSDESK_NATS_URL), i.e. on a developer's machine. They
// are a generated secret key and the demo tenant; in a deployment against a
// real cluster both would be dangerous (every pod its own key).
func devMode(cfg config.Config) bool { return cfg.NATS.URL == "" }

// smtpListening is the address intake's SMTP listener bound, for the banner.
var smtpListening atomic.Value

// newServices returns every service with its configuration section; the
// sections are filled by config.Load. boot is told what identity's first
// start created (the demo admin's password, for the banner); demo says,
// when identity is built, whether the development conveniences apply: the
// demo tenant when no bootstrap settings are given, and new signing keys
// when the old ones no longer open (a deleted data directory).
func newServices(boot func(identity.Bootstrapped), demo func() bool) []*service {
	intakeCfg := intake.DefaultConfig()
	identityCfg := identity.DefaultConfig()
	bootstrap := identity.Bootstrap{}
	return []*service{
		{
			name: "identity",
			section: config.Section{
				EnvPrefix:     "OPSDESK_IDENTITY_",
				Target:        &identityCfg,
				RegisterFlags: func(fs *flag.FlagSet) { identityCfg.RegisterFlags("identity.", fs) },
				Validate:      func() error { return identityCfg.Validate() },
			},
			extra: []config.Section{{
				EnvPrefix:     "OPSDESK_BOOTSTRAP_",
				Target:        &bootstrap,
				RegisterFlags: bootstrap.RegisterFlags,
				Validate:      bootstrap.Validate,
			}},
			config: func() any { return identityCfg },
			build: func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
				dev := demo != nil && demo()
				b := bootstrap
				b.Demo = dev
				return identity.New(ctx, identityCfg, identity.Options{Bootstrap: b, OnBootstrap: boot, Dev: dev}, d)
			},
			rebuild: map[string]func(context.Context, runtime.Deps) error{
				identity.DirectoryProjection: func(ctx context.Context, d runtime.Deps) error {
					return identity.Rebuild(ctx, identityCfg, d)
				},
			},
		},
		{
			name: "intake",
			section: config.Section{
				EnvPrefix:     "OPSDESK_INTAKE_",
				Target:        &intakeCfg,
				RegisterFlags: func(fs *flag.FlagSet) { intakeCfg.RegisterFlags("intake.", fs) },
				Validate:      func() error { return intakeCfg.Validate() },
			},
			config: func() any { return intakeCfg },
			build: func(ctx context.Context, d runtime.Deps) (runtime.Service, error) {
				c := intakeCfg
				c.OnSMTP = func(addr string) { smtpListening.Store(addr) }
				return intake.New(ctx, c, d)
			},
			rebuild: map[string]func(context.Context, runtime.Deps) error{
				intake.TicketsProjection: func(ctx context.Context, d runtime.Deps) error {
					return intake.Rebuild(ctx, intakeCfg, d)
				},
			},
		},
	}
}

func sections(svcs []*service) []config.Section {
	var out []config.Section
	for _, s := range svcs {
		out = append(out, s.section)
		out = append(out, s.extra...)
	}
	return out
}

// serviceNames are the names of svcs, which with "all" are the targets.
func serviceNames(svcs []*service) []string {
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.name
	}
	return names
}

// selected returns the services targets name ("all" is every service).
func selected(svcs []*service, targets []string) []*service {
	if slices.Contains(targets, config.TargetAll) {
		return svcs
	}
	var out []*service
	for _, s := range svcs {
		if slices.Contains(targets, s.name) {
			out = append(out, s)
		}
	}
	return out
}

// projections lists every rebuildable projection name, sorted.
func projections(svcs []*service) []string {
	var names []string
	for _, s := range svcs {
		for name := range s.rebuild {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
