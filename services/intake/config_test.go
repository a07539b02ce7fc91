package intake_test

import (
	"context"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/config"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/pgdb/pgtest"
	"github.com/opsdesk/opsdesk/libs/runtime"
	"github.com/opsdesk/opsdesk/services/intake"
)

func TestConfigFromEnvAndFlags(t *testing.T) {
	var cfg intake.Config
	env := map[string]string{"OPSDESK_INTAKE_READ_WAIT": "5s", "OPSDESK_INTAKE_NUMBER_BLOCK": "8"}
	_, err := config.Load([]string{"-intake.number-block=64"}, func(k string) string { return env[k] }, config.Section{
		EnvPrefix:     "OPSDESK_INTAKE_",
		Target:        &cfg,
		RegisterFlags: func(fs *flag.FlagSet) { cfg.RegisterFlags("intake.", fs) },
		Validate:      cfg.Validate,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := intake.DefaultConfig()
	want.ReadWait = 5 * time.Second // env
	want.NumberBlock = 64           // flag wins over env
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config %+v, want %+v", cfg, want)
	}
}

func TestConfigValidate(t *testing.T) {
	var zero intake.Config
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero config (all defaults): %v", err)
	}
	bad := intake.Config{ReadWait: -time.Second, NumberBlock: -1, Replicas: 7, DuplicateWindow: time.Second, ProjectionBatch: 20000}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"READ_WAIT", "NUMBER_BLOCK", "replicas", "duplicate window", "PROJECTION_BATCH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// The shared stream settings (OPSDESK_NATS_REPLICAS, _DUPLICATE_WINDOW)
// reach the streams intake creates.
func TestStreamsTakeTheSharedSettings(t *testing.T) {
	ns := natstest.Start(t)
	nc, js := ns.Conn(t)
	pool, _ := pgtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := intake.New(ctx, intake.Config{}, runtime.Deps{Logger: testLogger(), NATS: nc, JS: js, DB: pool,
		HTTP: httpx.New(httpx.Config{}, testLogger()), Auth: authtest.New(t).Authenticator(),
		Streams: runtime.Streams{Replicas: 1, DuplicateWindow: 7 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "TICKETS")
	if err != nil {
		t.Fatal(err)
	}
	if d := s.CachedInfo().Config.Duplicates; d != 7*time.Minute {
		t.Fatalf("TICKETS duplicate window %s, want the shared 7m", d)
	}
}
