package config_test

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/httpx"
)

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	got, err := config.Load(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Telemetry.ServiceName = "opsdesk-all"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load() = %+v\nwant      %+v", got, want)
	}
	if got.HTTP.Addr != "127.0.0.1:8080" || got.Runtime.DataDir != "./.data" || got.NATS.URL != "" ||
		got.NATS.Embedded.Port == 4222 || got.NATS.Embedded.Sync != config.SyncModeInterval ||
		got.NATS.Embedded.SyncInterval != 2*time.Minute || got.NATS.DuplicateWindow != 2*time.Minute {
		t.Fatalf("defaults differ from the documented ones: %+v", got)
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	got, err := config.Load(nil, envOf(map[string]string{
		"OPSDESK_HTTP_ADDR":             ":9090",
		"OPSDESK_HTTP_BODY_LIMIT":       "256K",
		"OPSDESK_HTTP_SHUTDOWN_TIMEOUT": "3s",
		"OPSDESK_NATS_URL":              "nats://a:4222,nats://b:4222",
		"OPSDESK_NATS_HOST":             "0.0.0.0",
		"OPSDESK_NATS_PORT":             "-1",
		"OPSDESK_NATS_SYNC":             "always",
		"OPSDESK_NATS_SYNC_INTERVAL":    "30s",
		"OPSDESK_NATS_REPLICAS":         "3",
		"OPSDESK_NATS_DUPLICATE_WINDOW": "5m",
		"DATABASE_URL":                  "postgres://u:p@db:5432/opsdesk",
		"OPSDESK_POSTGRES_MAX_CONNS":    "20",
		"OTEL_SERVICE_NAME":             "opsdesk-dev",
		"OTEL_EXPORTER_OTLP_ENDPOINT":   "http://collector:4318",
		"OPSDESK_TRACE_SAMPLE_RATIO":    "0.25",
		"OPSDESK_LOG_LEVEL":             "debug",
		"OPSDESK_TARGET":                "intake, triage",
		"OPSDESK_DATA_DIR":              "/var/lib/opsdesk",
		"OPSDESK_MAIL_DOMAIN":           "help.example.com",
		"OPSDESK_SMTP_ADDR":             "0.0.0.0:25",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		HTTP: config.HTTP{Addr: ":9090", BodyLimit: "256K", ShutdownTimeout: 3 * time.Second},
		NATS: config.NATS{
			URL:             "nats://a:4222,nats://b:4222",
			Embedded:        config.Embedded{Host: "0.0.0.0", Port: -1, Sync: "always", SyncInterval: 30 * time.Second},
			Replicas:        3,
			DuplicateWindow: 5 * time.Minute,
		},
		Postgres:  config.Postgres{URL: "postgres://u:p@db:5432/opsdesk", MaxConns: 20},
		Telemetry: config.Telemetry{ServiceName: "opsdesk-dev", OTLPEndpoint: "http://collector:4318", SampleRatio: 0.25, LogLevel: slog.LevelDebug},
		Runtime:   config.Runtime{Target: []string{"intake", "triage"}, DataDir: "/var/lib/opsdesk"},
		Mail:      config.Mail{Domain: "help.example.com", SMTPAddr: "0.0.0.0:25"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load() = %+v\nwant      %+v", got, want)
	}
	if !got.NATS.Embedded.SyncAlways() {
		t.Fatal("SyncAlways() is false with OPSDESK_NATS_SYNC=always")
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{
		"OPSDESK_HTTP_ADDR": ":9090",
		"OPSDESK_TARGET":    "intake",
		"OPSDESK_LOG_LEVEL": "debug",
		"OPSDESK_NATS_PORT": "15000",
	})
	got, err := config.Load([]string{
		"-http.addr=127.0.0.1:7000", "-target=sla", "--target", "triage", "-log.level=warn", "-postgres.max-conns", "4",
	}, env)
	if err != nil {
		t.Fatal(err)
	}
	if got.HTTP.Addr != "127.0.0.1:7000" {
		t.Errorf("addr %q: the flag must win over the environment", got.HTTP.Addr)
	}
	if !reflect.DeepEqual(got.Runtime.Target, []string{"sla", "triage"}) {
		t.Errorf("target %v, want [sla triage] (flags replace the env list, repeats add)", got.Runtime.Target)
	}
	if got.Telemetry.LogLevel != slog.LevelWarn || got.Postgres.MaxConns != 4 {
		t.Errorf("log level %v max conns %d", got.Telemetry.LogLevel, got.Postgres.MaxConns)
	}
	if got.NATS.Embedded.Port != 15000 {
		t.Errorf("port %d: the environment must win over the default when no flag is given", got.NATS.Embedded.Port)
	}
	if got.Telemetry.ServiceName != "opsdesk-sla-triage" {
		t.Errorf("service name %q, want opsdesk-sla-triage", got.Telemetry.ServiceName)
	}
}

func TestInvalidValuesNameTheSetting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env, value, mention string
	}{
		{"OPSDESK_HTTP_ADDR", "8080", "OPSDESK_HTTP_ADDR (-http.addr)"},
		{"OPSDESK_HTTP_ADDR", "localhost:http-alt", "OPSDESK_HTTP_ADDR"},
		{"OPSDESK_HTTP_BODY_LIMIT", "lots", "OPSDESK_HTTP_BODY_LIMIT (-http.body-limit)"},
		{"OPSDESK_HTTP_BODY_LIMIT", "0", "OPSDESK_HTTP_BODY_LIMIT"},
		{"OPSDESK_HTTP_SHUTDOWN_TIMEOUT", "soon", "OPSDESK_HTTP_SHUTDOWN_TIMEOUT"},
		{"OPSDESK_HTTP_SHUTDOWN_TIMEOUT", "0s", "OPSDESK_HTTP_SHUTDOWN_TIMEOUT (-http.shutdown-timeout)"},
		{"OPSDESK_NATS_URL", "http://nats:4222", "OPSDESK_NATS_URL (-nats.url)"},
		{"OPSDESK_NATS_URL", "nats://", "OPSDESK_NATS_URL"},
		{"OPSDESK_NATS_HOST", " ", "OPSDESK_NATS_HOST (-nats.host)"},
		{"OPSDESK_NATS_PORT", "0", "OPSDESK_NATS_PORT (-nats.port)"},
		{"OPSDESK_NATS_PORT", "70000", "OPSDESK_NATS_PORT"},
		{"OPSDESK_NATS_PORT", "four", "OPSDESK_NATS_PORT"},
		{"OPSDESK_NATS_SYNC", "sometimes", "OPSDESK_NATS_SYNC (-nats.sync)"},
		{"OPSDESK_NATS_SYNC_INTERVAL", "10ms", "OPSDESK_NATS_SYNC_INTERVAL (-nats.sync-interval)"},
		{"OPSDESK_NATS_REPLICAS", "7", "OPSDESK_NATS_REPLICAS (-nats.replicas)"},
		{"OPSDESK_NATS_DUPLICATE_WINDOW", "30s", "OPSDESK_NATS_DUPLICATE_WINDOW (-nats.duplicate-window)"},
		{"DATABASE_URL", "mysql://root:hunter2@db/x", "DATABASE_URL (-postgres.url)"},
		{"DATABASE_URL", "hunter2", "DATABASE_URL"},
		{"OPSDESK_POSTGRES_MAX_CONNS", "0", "OPSDESK_POSTGRES_MAX_CONNS (-postgres.max-conns)"},
		{"OTEL_SERVICE_NAME", "ops desk", "OTEL_SERVICE_NAME (-telemetry.service-name)"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT (-telemetry.otlp-endpoint)"},
		{"OPSDESK_TRACE_SAMPLE_RATIO", "1.5", "OPSDESK_TRACE_SAMPLE_RATIO (-telemetry.sample-ratio)"},
		{"OPSDESK_TRACE_SAMPLE_RATIO", "0", "OPSDESK_TRACE_SAMPLE_RATIO"},
		{"OPSDESK_LOG_LEVEL", "chatty", "OPSDESK_LOG_LEVEL"},
		{"OPSDESK_TARGET", "Intake", "OPSDESK_TARGET (-target)"},
		{"OPSDESK_TARGET", "intake,intake", "OPSDESK_TARGET"},
		{"OPSDESK_TARGET", ",", "OPSDESK_TARGET"},
		{"OPSDESK_DATA_DIR", " ", "OPSDESK_DATA_DIR (-data-dir)"},
	}
	for _, tc := range cases {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(nil, envOf(map[string]string{tc.env: tc.value}))
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.env, tc.value)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not name %s", err, tc.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error repeats a secret: %q", err)
			}
		})
	}
}

func TestEveryErrorIsReported(t *testing.T) {
	t.Parallel()
	_, err := config.Load([]string{"-nats.replicas=0", "-http.addr=nope"}, envOf(map[string]string{"OPSDESK_NATS_SYNC": "never"}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, name := range []string{"OPSDESK_NATS_REPLICAS", "OPSDESK_HTTP_ADDR", "OPSDESK_NATS_SYNC"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q misses %s", err, name)
		}
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"-nats.port=x"},
		{"-http.shutdown-timeout=later"},
		{"run"},
	} {
		if _, err := config.Load(args, envOf(nil)); err == nil {
			t.Errorf("Load(%q) accepted", args)
		}
	}
	if _, err := config.Load([]string{"-nats.port=x"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "-nats.port") {
		t.Errorf("flag error %v does not name the flag", err)
	}
	if _, err := config.Load([]string{"-h"}, envOf(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// sectionConfig stands in for a service's Config (intake.Config).
type sectionConfig struct {
	ReadWait time.Duration `env:"READ_WAIT"`
	Batch    int           `env:"BATCH"`
}

func (s *sectionConfig) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.DurationVar(&s.ReadWait, prefix+"read-wait", 2*time.Second, "read wait")
	fs.IntVar(&s.Batch, prefix+"batch", 256, "batch size")
}

func (s *sectionConfig) Validate() error {
	if s.Batch < 1 {
		return fmt.Errorf("intake batch %d: must be at least 1", s.Batch)
	}
	return nil
}

func section(s *sectionConfig) config.Section {
	return config.Section{
		EnvPrefix:     "OPSDESK_INTAKE_",
		Target:        s,
		RegisterFlags: func(fs *flag.FlagSet) { s.RegisterFlags("intake.", fs) },
		Validate:      s.Validate,
	}
}

func TestSections(t *testing.T) {
	t.Parallel()
	var s sectionConfig
	_, err := config.Load([]string{"-intake.batch=64"}, envOf(map[string]string{
		"OPSDESK_INTAKE_READ_WAIT": "5s",
		"OPSDESK_INTAKE_BATCH":     "32",
	}), section(&s))
	if err != nil {
		t.Fatal(err)
	}
	if s.ReadWait != 5*time.Second || s.Batch != 64 {
		t.Fatalf("section = %+v, want read wait from env (5s) and batch from the flag (64)", s)
	}

	var d sectionConfig
	if _, err := config.Load(nil, envOf(nil), section(&d)); err != nil || d.ReadWait != 2*time.Second || d.Batch != 256 {
		t.Fatalf("section defaults = %+v, %v", d, err)
	}

	var bad sectionConfig
	_, err = config.Load(nil, envOf(map[string]string{"OPSDESK_INTAKE_BATCH": "0"}), section(&bad))
	if err == nil || !strings.Contains(err.Error(), "intake batch") {
		t.Fatalf("section validation error %v", err)
	}
	_, err = config.Load(nil, envOf(map[string]string{"OPSDESK_INTAKE_READ_WAIT": "long"}), section(&bad))
	if err == nil || !strings.Contains(err.Error(), "OPSDESK_INTAKE_READ_WAIT") {
		t.Fatalf("section env error %v does not name the variable", err)
	}
}

func TestDurability(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if d := c.NATS.Durability(); !strings.Contains(d, "power loss") || !strings.Contains(d, "2m0s") {
		t.Errorf("interval durability %q", d)
	}
	c.NATS.Embedded.Sync = config.SyncModeAlways
	if d := c.NATS.Durability(); !strings.Contains(d, "fsync before ack") {
		t.Errorf("always durability %q", d)
	}
	c.NATS.URL = "nats://user:hunter2@nats:4222"
	if d := c.NATS.Durability(); strings.Contains(d, "hunter2") || !strings.Contains(d, "nats:4222") {
		t.Errorf("external durability %q", d)
	}
}

// TestUsageAndDocsListEverySetting keeps docs/configuration.md and the flag
// help in step with the structs.
func TestUsageAndDocsListEverySetting(t *testing.T) {
	t.Parallel()
	var usage strings.Builder
	config.Usage(&usage)
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("docs/configuration.md: %v", err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var c config.Config
	c.RegisterFlags(fs)
	envVars := config.EnvVars()
	if len(envVars) < 18 {
		t.Fatalf("EnvVars() = %v: too few", envVars)
	}
	for _, v := range envVars {
		if !strings.Contains(usage.String(), "env "+v+")") {
			t.Errorf("flag help does not mention %s", v)
		}
		if !strings.Contains(string(doc), "`"+v+"`") {
			t.Errorf("docs/configuration.md does not document %s", v)
		}
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(string(doc), "`-"+f.Name+"`") {
			t.Errorf("docs/configuration.md does not document -%s", f.Name)
		}
	})
	if n != len(envVars) {
		t.Errorf("%d flags for %d environment variables: every setting needs both", n, len(envVars))
	}
}

// TestHTTPConvertsToHTTPX keeps config.HTTP and httpx.Config identical, so
// callers can write httpx.Config(cfg.HTTP).
func TestHTTPConvertsToHTTPX(t *testing.T) {
	t.Parallel()
	c := config.Default()
	h := httpx.Config(c.HTTP)
	if h.Addr != c.HTTP.Addr || h.BodyLimit != c.HTTP.BodyLimit || h.ShutdownTimeout != c.HTTP.ShutdownTimeout {
		t.Fatalf("conversion lost fields: %+v", h)
	}
}
