package deploy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/opsdesk/opsdesk/libs/config"
)

// checkEnvName fails for an OPSDESK_*, DATABASE_URL or OTEL_* variable that
// the configuration does not read: a misspelt variable is silently ignored
// at run time, so it is caught here.
func checkEnvName(t *testing.T, where, name string) {
	t.Helper()
	if !strings.HasPrefix(name, "OPSDESK_") && !strings.HasPrefix(name, "OTEL_") && name != "DATABASE_URL" {
		return
	}
	// Service sections (OPSDESK_INTAKE_*) are checked by their own prefix.
	if strings.HasPrefix(name, "OPSDESK_INTAKE_") {
		return
	}
	if !slices.Contains(config.EnvVars(), name) {
		t.Errorf("%s sets %s, which OpsDesk does not read (known: %s)", where, name, strings.Join(config.EnvVars(), ", "))
	}
}

func TestEnvNamesAreKnown(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"OPSDESK_HTTP_ADDR", "DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if !slices.Contains(config.EnvVars(), name) {
			t.Fatalf("config.EnvVars() lacks %s; the checks below would pass vacuously", name)
		}
	}
}
