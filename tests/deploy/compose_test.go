package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"sigs.k8s.io/yaml"
)

// TestCompose loads docker-compose.yml the way `docker compose` does
// (compose-go, schema validation on, so unknown keys fail) and checks the
// split deployment: every service has a healthcheck, intake runs
// --target=intake and waits for healthy NATS and Postgres.
func TestCompose(t *testing.T) {
	t.Parallel()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(abs, "docker-compose.yml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: b}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("opsdesk", true)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	for _, name := range []string{"postgres", "nats", "otel-collector", "intake"} {
		if _, ok := project.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	for name, svc := range project.Services {
		hc := svc.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("service %s has no healthcheck", name)
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s: %v", name, v.Source, err)
				}
			}
		}
	}

	intake := project.Services["intake"]
	if !slices.Contains(intake.Command, "--target=intake") || intake.Command[0] != "run" {
		t.Errorf("intake command = %q, want run --target=intake", intake.Command)
	}
	for _, dep := range []string{"nats", "postgres"} {
		d, ok := intake.DependsOn[dep]
		if !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("intake depends_on %s = %+v, want condition service_healthy", dep, d)
		}
	}
	if intake.Build == nil {
		t.Fatal("intake has no build section")
	}
	if _, err := os.Stat(filepath.Join(intake.Build.Context, intake.Build.Dockerfile)); err != nil {
		t.Errorf("intake build: %v", err)
	}
	if filepath.Clean(intake.Build.Context) != abs {
		t.Errorf("intake builds from %s; deploy/Dockerfile needs the repository root (go.work)", intake.Build.Context)
	}
	env := intake.Environment
	for name := range env {
		checkEnvName(t, "docker-compose intake", name)
	}
	for _, k := range []string{"OPSDESK_NATS_URL", "DATABASE_URL", "OPSDESK_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := env[k]; v == nil || *v == "" {
			t.Errorf("intake environment lacks %s", k)
		}
	}
	if v := env["OPSDESK_NATS_URL"]; v != nil && !strings.Contains(*v, "//nats:") {
		t.Errorf("OPSDESK_NATS_URL = %q, want the nats service", *v)
	}
	if v := env["DATABASE_URL"]; v != nil && !strings.Contains(*v, "@postgres:") {
		t.Errorf("DATABASE_URL = %q, want the postgres service", *v)
	}
}

// TestNATSConfig parses deploy/nats/nats.conf with nats-server's own config
// parser: JetStream on, a store dir, and fsync before every ack.
func TestNATSConfig(t *testing.T) {
	t.Parallel()
	opts, err := server.ProcessConfigFile(filepath.Join(root, "deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if !opts.JetStream {
		t.Error("JetStream is not enabled")
	}
	if opts.StoreDir == "" {
		t.Error("no JetStream store_dir")
	}
	if !opts.SyncAlways {
		t.Error("sync_interval is not 'always': the single-node compose NATS would lose acknowledged events on power loss")
	}
	if opts.HTTPPort != 8222 {
		t.Errorf("monitoring port = %d, want 8222 (the compose healthcheck probes it)", opts.HTTPPort)
	}
}

// TestOTelCollectorConfig checks that every pipeline names only receivers,
// processors, exporters and extensions the file defines, which is the first
// thing the collector validates at start.
func TestOTelCollectorConfig(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "otel-collector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers  map[string]any `json:"receivers"`
		Processors map[string]any `json:"processors"`
		Exporters  map[string]any `json:"exporters"`
		Extensions map[string]any `json:"extensions"`
		Service    struct {
			Extensions []string `json:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
				Exporters  []string `json:"exporters"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("otel-collector.yaml: %v", err)
	}
	if _, ok := cfg.Service.Pipelines["traces"]; !ok {
		t.Error("no traces pipeline")
	}
	check := func(kind string, names []string, defined map[string]any) {
		for _, n := range names {
			if _, ok := defined[n]; !ok {
				t.Errorf("%s %q is used but not defined", kind, n)
			}
		}
	}
	check("extension", cfg.Service.Extensions, cfg.Extensions)
	for name, p := range cfg.Service.Pipelines {
		if len(p.Receivers) == 0 || len(p.Exporters) == 0 {
			t.Errorf("pipeline %s needs receivers and exporters", name)
		}
		check("receiver", p.Receivers, cfg.Receivers)
		check("processor", p.Processors, cfg.Processors)
		check("exporter", p.Exporters, cfg.Exporters)
	}
}
