package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/gommon/bytes"

	"github.com/opsdesk/opsdesk/libs/secret"
)

// setting names a setting in errors: its variable and its flag.
func setting(envVar, flagName string) string {
	return envVar + " (-" + flagName + ")"
}

// domainRE accepts DNS names of at least two labels.
var domainRE = regexp.MustCompile(`^(?i)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$`)

// Validate reports every invalid setting, each error naming the setting's
// environment variable and flag. Secrets (DATABASE_URL, credentials in
// URLs) are never repeated in the message.
func (c Config) Validate() error {
	var errs []error
	bad := func(envVar, flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", setting(envVar, flagName), fmt.Sprintf(format, args...)))
	}

	// HTTP
	if err := checkHostPort(c.HTTP.Addr); err != nil {
		bad("OPSDESK_HTTP_ADDR", "http.addr", "%q %v", c.HTTP.Addr, err)
	}
	if n, err := bytes.Parse(c.HTTP.BodyLimit); err != nil || n <= 0 {
		bad("OPSDESK_HTTP_BODY_LIMIT", "http.body-limit", "%q is not a size such as 1M or 512K", c.HTTP.BodyLimit)
	}
	if d := c.HTTP.ShutdownTimeout; d <= 0 || d > 10*time.Minute {
		bad("OPSDESK_HTTP_SHUTDOWN_TIMEOUT", "http.shutdown-timeout", "%s must be more than 0 and at most 10m", d)
	}
	for _, cidr := range c.HTTP.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			bad("OPSDESK_HTTP_TRUSTED_PROXIES", "http.trusted-proxies", "%q is not a CIDR such as 10.0.0.0/8", cidr)
		}
	}

	// Mail
	if d := c.Mail.Domain; !domainRE.MatchString(d) {
		bad("OPSDESK_MAIL_DOMAIN", "mail.domain", "%q is not a domain name such as opsdesk.example.com", d)
	}
	if a := c.Mail.SMTPAddr; a != "off" {
		if err := checkHostPort(a); err != nil {
			bad("OPSDESK_SMTP_ADDR", "smtp.addr", "%q %v (or off)", a, err)
		}
	}

	// Auth and secrets
	if u := c.Auth.JWKSURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("OPSDESK_AUTH_JWKS_URL", "auth.jwks-url", "%q must be an http(s) URL", u)
		}
	}
	if c.Secrets.Key != "" {
		if _, err := secret.Parse(c.Secrets.Key); err != nil {
			bad("OPSDESK_SECRET_KEY", "secret-key", "must be 32 bytes of base64 (e.g. openssl rand -base64 32)")
		}
	}

	// NATS
	if c.NATS.URL != "" {
		if err := checkNATSURLs(c.NATS.URL); err != nil {
			bad("OPSDESK_NATS_URL", "nats.url", "%v", err)
		}
	}
	if strings.TrimSpace(c.NATS.Embedded.Host) == "" {
		bad("OPSDESK_NATS_HOST", "nats.host", "must not be empty")
	}
	if p := c.NATS.Embedded.Port; p != -1 && (p < 1 || p > 65535) {
		bad("OPSDESK_NATS_PORT", "nats.port", "%d must be 1-65535, or -1 for a free port", p)
	}
	if s := c.NATS.Embedded.Sync; s != SyncModeInterval && s != SyncModeAlways {
		bad("OPSDESK_NATS_SYNC", "nats.sync", "%q must be %q or %q", s, SyncModeInterval, SyncModeAlways)
	}
	if d := c.NATS.Embedded.SyncInterval; d < time.Second {
		bad("OPSDESK_NATS_SYNC_INTERVAL", "nats.sync-interval", "%s must be at least 1s (use OPSDESK_NATS_SYNC=always to fsync every write)", d)
	}
	if r := c.NATS.Replicas; r < 1 || r > 5 {
		bad("OPSDESK_NATS_REPLICAS", "nats.replicas", "%d must be 1-5", r)
	}
	if d := c.NATS.DuplicateWindow; d < 2*time.Minute {
		bad("OPSDESK_NATS_DUPLICATE_WINDOW", "nats.duplicate-window", "%s must be at least 2m, so retried publishes are still recognised", d)
	}

	// Postgres
	if c.Postgres.URL != "" {
		if err := checkPostgresURL(c.Postgres.URL); err != nil {
			bad("DATABASE_URL", "postgres.url", "%v", err)
		}
	}
	if n := c.Postgres.MaxConns; n < 1 || n > 10000 {
		bad("OPSDESK_POSTGRES_MAX_CONNS", "postgres.max-conns", "%d must be 1-10000", n)
	}

	// Telemetry
	if name := c.Telemetry.ServiceName; name == "" || strings.ContainsAny(name, " \t\n") {
		bad("OTEL_SERVICE_NAME", "telemetry.service-name", "%q must be a non-empty name without spaces", name)
	}
	if ep := c.Telemetry.OTLPEndpoint; ep != "" {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp-endpoint", "must be an http(s) URL such as http://collector:4318")
		}
	}
	if r := c.Telemetry.SampleRatio; !(r > 0 && r <= 1) {
		bad("OPSDESK_TRACE_SAMPLE_RATIO", "telemetry.sample-ratio", "%v must be more than 0 and at most 1", r)
	}

	// Runtime
	if len(c.Runtime.Target) == 0 {
		bad("OPSDESK_TARGET", "target", "must name at least one module (all, intake, ...)")
	}
	seen := map[string]bool{}
	for _, t := range c.Runtime.Target {
		switch {
		case !targetName.MatchString(t):
			bad("OPSDESK_TARGET", "target", "%q is not a module name (lower-case letters, digits and dashes)", t)
		case seen[t]:
			bad("OPSDESK_TARGET", "target", "%q is listed twice", t)
		}
		seen[t] = true
	}
	if strings.TrimSpace(c.Runtime.DataDir) == "" {
		bad("OPSDESK_DATA_DIR", "data-dir", "must not be empty")
	}
	return errors.Join(errs...)
}

var targetName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("is not host:port (e.g. 127.0.0.1:8080 or :8080)")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("has no valid port (0-65535)")
	}
	return nil
}

// checkNATSURLs accepts what nats.Connect accepts: a comma-separated list
// of nats://, tls://, ws:// or wss:// URLs, the scheme defaulting to nats.
// Errors show URLs with any password removed.
func checkNATSURLs(list string) error {
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("an entry is not a URL")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%s: scheme must be nats, tls, ws or wss", u.Redacted())
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%s: has no host", u.Redacted())
		}
	}
	return nil
}

// redactURLs returns a comma-separated URL list with passwords removed.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}

// checkPostgresURL accepts the two forms pgx accepts, without repeating the
// string (it usually holds a password).
func checkPostgresURL(s string) error {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return errors.New("is not a valid URL")
		}
		if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return errors.New("must start with postgres:// or postgresql://")
		}
		return nil
	}
	if !strings.Contains(s, "=") {
		return errors.New("must be a postgres:// URL or key=value settings (host=... dbname=...)")
	}
	return nil
}
