package platform

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opsdesk/opsdesk/libs/config"
)

// /config never shows a secret: passwords in the Postgres URL (either form)
// and credentials or tokens in NATS URLs.
func TestEffectiveConfigHidesSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ pg, nats string }{
		{"postgres://app:s3cret@db:5432/opsdesk?sslmode=require", "nats://user:s3cret@n1:4222,nats://s3cret@n2:4222"},
		{"postgres://app@db/opsdesk?password=s3cret", "tls://s3cret@n1:4222"},
		{"host=db user=app password=s3cret dbname=opsdesk", ""},
		{"host=db password='s3 cret' dbname=opsdesk", ""},
	} {
		cfg := config.Default()
		cfg.Postgres.URL, cfg.NATS.URL = tc.pg, tc.nats
		p := New(cfg, nil, nil, Options{})
		b, err := json.Marshal(p.effectiveConfig())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "s3") {
			t.Errorf("config for %q / %q shows a secret: %s", tc.pg, tc.nats, b)
		}
		if !strings.Contains(string(b), "db") {
			t.Errorf("config for %q lost the host: %s", tc.pg, b)
		}
	}
}
