package deploy_test

import (
	"context"
	"net"
	"net/url"
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

// composeEnv stands in for the operator's shell: the secrets compose takes
// from it (never from the file).
var composeEnv = types.Mapping{
	"OPSDESK_SECRET_KEY":               "test-secret-key-from-the-environment",
	"OPSDESK_BOOTSTRAP_ADMIN_PASSWORD": "test-admin-password-from-the-environment",
}

// loadCompose loads docker-compose.yml the way `docker compose` does
// (compose-go, schema validation on) with env as the environment;
// interpolate false keeps the ${...} as written.
func loadCompose(t *testing.T, env types.Mapping, interpolate bool) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(abs, "docker-compose.yml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: b}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("opsdesk", true)
		o.ResolvePaths = true
		o.SkipInterpolation = !interpolate
	})
}

// TestCompose loads docker-compose.yml the way `docker compose` does
// (compose-go, schema validation on, so unknown keys fail) and checks the
// split deployment: every service has a healthcheck, identity and intake run
// their --target against healthy NATS and Postgres, intake verifies tokens
// with identity's JWKS and waits for identity to be healthy.
func TestCompose(t *testing.T) {
	t.Parallel()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	project, err := loadCompose(t, composeEnv, true)
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	for _, name := range []string{"postgres", "nats", "otel-collector", "identity", "intake"} {
		if _, ok := project.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	hostPorts := map[string]string{}
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
		for _, p := range svc.Ports {
			key := p.HostIP + ":" + p.Published
			if other, ok := hostPorts[key]; ok && p.Published != "" {
				t.Errorf("services %s and %s both publish %s", other, name, key)
			}
			hostPorts[key] = name
		}
		// The bootstrap settings go together: a target that is not identity
		// but gets some of them refuses to start.
		for k := range svc.Environment {
			if strings.HasPrefix(k, "OPSDESK_BOOTSTRAP_") && name != "identity" {
				t.Errorf("service %s sets %s; only identity reads the bootstrap settings", name, k)
			}
		}
	}

	for _, name := range []string{"identity", "intake"} {
		svc, ok := project.Services[name]
		if !ok {
			continue
		}
		checkComposeService(t, abs, name, svc)
	}

	// identity: the first tenant and admin, the secrets from the environment.
	identity := project.Services["identity"]
	for _, k := range []string{"OPSDESK_BOOTSTRAP_TENANT", "OPSDESK_BOOTSTRAP_ADMIN_EMAIL", "OPSDESK_BOOTSTRAP_ADMIN_PASSWORD", "OPSDESK_SECRET_KEY"} {
		if v := identity.Environment[k]; v == nil || *v == "" {
			t.Errorf("identity environment lacks %s", k)
		}
	}
	for _, k := range secretSettings {
		if v := identity.Environment[k]; v == nil || *v != composeEnv[k] {
			t.Errorf("identity %s = %q, want the value of $%s from the environment", k, deref(v), k)
		}
	}

	// intake verifies access tokens with identity's keys and starts after it.
	intake := project.Services["intake"]
	if v := intake.Environment["OPSDESK_AUTH_JWKS_URL"]; v == nil {
		t.Error("intake environment lacks OPSDESK_AUTH_JWKS_URL: it would look for the JWKS on its own listener")
	} else {
		checkJWKSURL(t, "docker-compose intake", *v, "identity", containerPort(t, identity))
	}
	if d, ok := intake.DependsOn["identity"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("intake depends_on identity = %+v, want condition service_healthy", d)
	}
}

// checkComposeService checks an OpsDesk service of the compose file: it runs
// run --target=<name> from the image built at the repository root, against
// the compose NATS and Postgres once they are healthy, and its healthcheck
// probes its own /readyz.
func checkComposeService(t *testing.T, abs, name string, svc types.ServiceConfig) {
	t.Helper()
	if len(svc.Command) == 0 || svc.Command[0] != "run" || !slices.Contains(svc.Command, "--target="+name) {
		t.Errorf("%s command = %q, want run --target=%s", name, svc.Command, name)
	}
	if !slices.Contains(knownTargets, name) {
		t.Errorf("%s is not a known target %v", name, knownTargets)
	}
	for _, dep := range []string{"nats", "postgres"} {
		d, ok := svc.DependsOn[dep]
		if !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s depends_on %s = %+v, want condition service_healthy", name, dep, d)
		}
	}
	if svc.Build == nil {
		t.Errorf("%s has no build section", name)
	} else {
		if _, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile)); err != nil {
			t.Errorf("%s build: %v", name, err)
		}
		if filepath.Clean(svc.Build.Context) != abs {
			t.Errorf("%s builds from %s; deploy/Dockerfile needs the repository root (go.work)", name, svc.Build.Context)
		}
	}
	env := svc.Environment
	for k := range env {
		checkEnvName(t, "docker-compose "+name, k)
	}
	for _, k := range []string{"OPSDESK_NATS_URL", "DATABASE_URL", "OPSDESK_HTTP_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := env[k]; v == nil || *v == "" {
			t.Errorf("%s environment lacks %s", name, k)
		}
	}
	if v := env["OPSDESK_NATS_URL"]; v != nil && !strings.Contains(*v, "//nats:") {
		t.Errorf("%s OPSDESK_NATS_URL = %q, want the nats service", name, *v)
	}
	if v := env["DATABASE_URL"]; v != nil && !strings.Contains(*v, "@postgres:") {
		t.Errorf("%s DATABASE_URL = %q, want the postgres service", name, *v)
	}
	if hc := svc.HealthCheck; hc != nil {
		want := []string{"CMD", "/opsdesk", "healthcheck", "http://127.0.0.1:" + containerPort(t, svc) + "/readyz"}
		if !slices.Equal(hc.Test, want) {
			t.Errorf("%s healthcheck = %q, want %q", name, hc.Test, want)
		}
	}
}

// containerPort is the port an OpsDesk service listens on in its container
// (OPSDESK_HTTP_ADDR).
func containerPort(t *testing.T, svc types.ServiceConfig) string {
	t.Helper()
	v := svc.Environment["OPSDESK_HTTP_ADDR"]
	if v == nil {
		return "8080" // the image's default
	}
	_, port, err := net.SplitHostPort(*v)
	if err != nil {
		t.Errorf("%s OPSDESK_HTTP_ADDR = %q: %v", svc.Name, *v, err)
	}
	return port
}

// checkJWKSURL checks that a service's OPSDESK_AUTH_JWKS_URL is identity's
// JWKS through host and port.
func checkJWKSURL(t *testing.T, where, raw, host, port string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() != host || u.Port() != port || u.Path != "/.well-known/jwks.json" {
		t.Errorf("%s OPSDESK_AUTH_JWKS_URL = %q, want http://%s/.well-known/jwks.json (%v)", where, raw, net.JoinHostPort(host, port), err)
	}
}

func deref(v *string) string {
	if v == nil {
		return "<unset>"
	}
	return *v
}

// TestComposeSecretsFromEnvironment checks that no secret is written in the
// compose file: identity's secrets are required ${VAR:?...} references with
// no default, so `docker compose` refuses to start without them rather than
// run with a value everyone can read.
func TestComposeSecretsFromEnvironment(t *testing.T) {
	t.Parallel()
	raw, err := loadCompose(t, types.Mapping{}, false)
	if err != nil {
		t.Fatalf("load docker-compose.yml without interpolation: %v", err)
	}
	for name, svc := range raw.Services {
		for _, k := range secretSettings {
			v, ok := svc.Environment[k]
			if !ok {
				continue
			}
			want := "${" + k + ":?"
			if v == nil || !strings.HasPrefix(*v, want) || !strings.HasSuffix(*v, "}") || strings.Count(*v, "${") != 1 {
				t.Errorf("service %s sets %s = %q, want only a required reference %s...} to the environment", name, k, deref(v), want)
			}
		}
	}
	if v := raw.Services["identity"].Environment["OPSDESK_SECRET_KEY"]; v == nil {
		t.Error("identity does not set OPSDESK_SECRET_KEY")
	}

	_, err = loadCompose(t, types.Mapping{}, true)
	if err == nil {
		t.Fatal("docker-compose.yml loads without OPSDESK_SECRET_KEY and OPSDESK_BOOTSTRAP_ADMIN_PASSWORD in the environment")
	}
	for _, k := range secretSettings {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("loading without %s: %v, want an error naming it", k, err)
		}
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
