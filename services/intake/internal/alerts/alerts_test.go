package alerts_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/opsdesk/opsdesk/services/intake/internal/alerts"
)

const groupKey = `{}/{team="infra"}:{alertname="HostHighCpuLoad"}`

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func hostLabels(host, severity string) map[string]string {
	return map[string]string{
		"alertname": "HostHighCpuLoad", "instance": host + ".prod:9100",
		"job": "node", "severity": severity, "team": "infra",
	}
}

const (
	cpuURL95 = "http://prometheus.prod:9090/graph?g0.expr=100+-+avg+by+%28instance%29+%28rate%28node_cpu_seconds_total%7Bmode%3D%22idle%22%7D%5B2m%5D%29%29+%2A+100+%3E+95&g0.tab=1"
	cpuURL80 = "http://prometheus.prod:9090/graph?g0.expr=node_load1+%3E+0.8&g0.tab=1"
	desc95   = "CPU load has been above 95% for 10 minutes.\n  VALUE = 97.31\n  LABELS = map[instance:node-a.prod:9100 job:node]"
	desc80   = "CPU load has been above 80% for 10 minutes."
)

var nodeAAnnotations = map[string]string{
	"description": desc95,
	"runbook_url": "https://runbooks.example.com/host-high-cpu-load",
	"summary":     "CPU load above 95% on node-a.prod:9100",
}

// checkAlert compares field by field so a failure names the field.
func checkAlert(t *testing.T, i int, got, want alerts.Alert) {
	t.Helper()
	str := [][3]string{
		{"Fingerprint", got.Fingerprint, want.Fingerprint},
		{"Status", got.Status, want.Status},
		{"Title", got.Title, want.Title},
		{"Description", got.Description, want.Description},
		{"Severity", got.Severity, want.Severity},
		{"URL", got.URL, want.URL},
		{"Source", got.Source, want.Source},
		{"Group", got.Group, want.Group},
	}
	for _, f := range str {
		if f[1] != f[2] {
			t.Errorf("alert %d %s = %q, want %q", i, f[0], f[1], f[2])
		}
	}
	if !maps.Equal(got.Labels, want.Labels) || got.Labels == nil {
		t.Errorf("alert %d Labels = %v, want %v", i, got.Labels, want.Labels)
	}
	if !maps.Equal(got.Annotations, want.Annotations) || got.Annotations == nil {
		t.Errorf("alert %d Annotations = %v, want %v", i, got.Annotations, want.Annotations)
	}
	if !got.StartsAt.Equal(want.StartsAt) || got.StartsAt.Location() != time.UTC {
		t.Errorf("alert %d StartsAt = %v, want %v (UTC)", i, got.StartsAt, want.StartsAt)
	}
	if !got.EndsAt.Equal(want.EndsAt) {
		t.Errorf("alert %d EndsAt = %v, want %v", i, got.EndsAt, want.EndsAt)
	}
}

func TestFixtures(t *testing.T) {
	tests := []struct {
		file string
		want alerts.Batch
	}{{
		file: "alertmanager_firing.json",
		want: alerts.Batch{
			Format: alerts.FormatAlertmanager, GroupKey: groupKey, Receiver: "opsdesk",
			ExternalURL: "http://alertmanager.prod:9093",
			Alerts: []alerts.Alert{{
				Fingerprint: "3c38052564372a6e", Status: "firing",
				Title:       "CPU load above 95% on node-a.prod:9100",
				Description: desc95, Severity: "critical",
				Labels: hostLabels("node-a", "critical"), Annotations: nodeAAnnotations,
				StartsAt: ts("2025-03-14T09:26:53.512Z"), URL: cpuURL95,
				Source: "alertmanager", Group: groupKey,
			}, {
				Fingerprint: "eef243bdffa96020", Status: "firing",
				Title:       "CPU load above 80% on node-b.prod:9100", // newlines folded
				Description: "CPU load has been above 80% for 10 minutes.\n  VALUE = 84.02",
				Severity:    "medium", Labels: hostLabels("node-b", "warning"),
				Annotations: map[string]string{
					"description": "CPU load has been above 80% for 10 minutes.\n  VALUE = 84.02",
					"summary":     "CPU load above 80%\non node-b.prod:9100\n",
				},
				StartsAt: ts("2025-03-14T09:27:08.14Z"), // from +01:00
				URL:      cpuURL80, Source: "alertmanager", Group: groupKey,
			}, {
				Fingerprint: "083d41049dde7df3", Status: "firing",
				Title:       "HostHighCpuLoad on node-c.prod:9100", // no summary
				Description: desc80, Severity: "medium", Labels: hostLabels("node-c", "warning"),
				Annotations: map[string]string{"description": desc80},
				StartsAt:    ts("2025-03-14T09:28:23.9Z"), URL: cpuURL80,
				Source: "alertmanager", Group: groupKey,
			}, {
				Fingerprint: "8f91fd1d7d12417a", Status: "resolved",
				Title:       "CPU load above 80% on node-d.prod:9100",
				Description: desc80, Severity: "medium", Labels: hostLabels("node-d", "warning"),
				Annotations: map[string]string{"description": desc80, "summary": "CPU load above 80% on node-d.prod:9100"},
				StartsAt:    ts("2025-03-14T09:11:53.512Z"), EndsAt: ts("2025-03-14T09:31:53.512Z"),
				URL: cpuURL80, Source: "alertmanager", Group: groupKey,
			}},
		},
	}, {
		file: "alertmanager_resolved.json",
		want: alerts.Batch{
			Format: alerts.FormatAlertmanager, GroupKey: groupKey, Receiver: "opsdesk",
			ExternalURL: "http://alertmanager.prod:9093",
			Alerts: []alerts.Alert{{
				Fingerprint: "3c38052564372a6e", Status: "resolved",
				Title:       "CPU load above 95% on node-a.prod:9100",
				Description: desc95, Severity: "critical",
				Labels: hostLabels("node-a", "critical"), Annotations: nodeAAnnotations,
				StartsAt: ts("2025-03-14T09:26:53.512Z"), EndsAt: ts("2025-03-14T09:58:23.512Z"),
				URL: cpuURL95, Source: "alertmanager", Group: groupKey,
			}},
		},
	}, {
		file: "generic_single.json",
		want: alerts.Batch{
			Format: alerts.FormatGeneric, GroupKey: "db-1",
			Alerts: []alerts.Alert{{
				Fingerprint: diskFingerprint, Status: "firing",
				Title:       "Disk /var almost full on db-1",
				Description: "Free space on /var is below 5% (3.1 GiB left).",
				Severity:    "high", Labels: map[string]string{"host": "db-1", "trigger": "vfs.fs.size[/var,pfree]"},
				Annotations: map[string]string{}, StartsAt: ts("2025-03-14T09:00:00Z"),
				URL:    "https://zabbix.example.com/tr_events.php?triggerid=18342&eventid=99120",
				Source: "zabbix", Group: "db-1",
			}},
		},
	}, {
		file: "generic_list.json",
		want: alerts.Batch{
			Format: alerts.FormatGeneric, GroupKey: "backups",
			Alerts: []alerts.Alert{{
				Fingerprint: "backup-nightly", Status: "firing", Title: "Nightly backup failed",
				Severity: "critical", Labels: map[string]string{}, Annotations: map[string]string{},
				Source: "cron", Group: "backups",
			}, {
				Fingerprint: "bae471f0f3be42ba", Status: "firing", Title: "Backup upload slow",
				Severity: "low", Labels: map[string]string{"bucket": "offsite-eu"}, Annotations: map[string]string{},
				Source: "cron", Group: "backups",
			}},
		},
	}, {
		file: "generic_resolved.json",
		want: alerts.Batch{
			Format: alerts.FormatGeneric,
			Alerts: []alerts.Alert{{
				Fingerprint: diskFingerprint, // the firing alert's: it resolves it
				Status:      "resolved", Title: "Disk /var almost full on db-1",
				Severity:    "medium", // default warning
				Labels:      map[string]string{"host": "db-1", "trigger": "vfs.fs.size[/var,pfree]"},
				Annotations: map[string]string{}, Source: "zabbix",
			}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := alerts.Parse(readFixture(t, tt.file), "application/json")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Format != tt.want.Format || got.GroupKey != tt.want.GroupKey || got.Receiver != tt.want.Receiver ||
				got.ExternalURL != tt.want.ExternalURL || got.Truncated != tt.want.Truncated {
				t.Errorf("batch = %+v, want %+v", *got, tt.want)
			}
			if len(got.Alerts) != len(tt.want.Alerts) {
				t.Fatalf("%d alerts, want %d", len(got.Alerts), len(tt.want.Alerts))
			}
			for i := range got.Alerts {
				checkAlert(t, i, got.Alerts[i], tt.want.Alerts[i])
			}
			// The format-specific parser agrees with Parse's detection.
			parse := alerts.ParseGeneric
			if tt.want.Format == alerts.FormatAlertmanager {
				parse = alerts.ParseAlertmanager
			}
			if again, err := parse(readFixture(t, tt.file)); err != nil || len(again.Alerts) != len(got.Alerts) {
				t.Errorf("%s parser: %v", tt.want.Format, err)
			}
		})
	}
}

// diskFingerprint is the derived fingerprint of the generic db-1 disk alert
// (source, title and labels, not the varying description or severity),
// computed by hand as FNV-1a 64 of
// "\xfezabbix\xffDisk /var almost full on db-1\xffhost\xffdb-1\xfftrigger\xffvfs.fs.size[/var,pfree]\xff".
const diskFingerprint = "5a78a618db89dd37"

func TestAlertmanagerFixtureFingerprintsAreAlertmanagers(t *testing.T) {
	// The fixture's fingerprints must be what Alertmanager would send for
	// those labels, or the fixture is not realistic.
	b, err := alerts.ParseAlertmanager(readFixture(t, "alertmanager_firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range b.Alerts {
		if got := alerts.Fingerprint(a.Labels); got != a.Fingerprint {
			t.Errorf("alert %d: Fingerprint(labels) = %s, payload says %s", i, got, a.Fingerprint)
		}
	}
	if got := alerts.HighestSeverity(b.Alerts); got != "critical" {
		t.Errorf("HighestSeverity = %q, want critical", got)
	}
}

// amAlert is one alert object; amBody wraps alert objects in a v4 envelope.
func amAlert(i int) string {
	return fmt.Sprintf(`{"status":"firing","labels":{"alertname":"NodeDown","instance":"node-%03d:9100","job":"node","severity":"critical"},`+
		`"annotations":{"summary":"node-%03d is down"},"startsAt":"2025-03-14T09:00:00Z","endsAt":"0001-01-01T00:00:00Z"}`, i, i)
}

func amBody(alertObjs ...string) string {
	return `{"version":"4","groupKey":"{}:{alertname=\"NodeDown\"}","status":"firing","receiver":"opsdesk",` +
		`"alerts":[` + strings.Join(alertObjs, ",") + `]}`
}

func storm(n int) string {
	objs := make([]string, n)
	for i := range objs {
		objs[i] = amAlert(i)
	}
	return amBody(objs...)
}

func TestStorm(t *testing.T) {
	b, err := alerts.Parse([]byte(storm(100)), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	if b.Format != alerts.FormatAlertmanager || b.GroupKey != `{}:{alertname="NodeDown"}` || len(b.Alerts) != 100 {
		t.Fatalf("batch %s %q with %d alerts", b.Format, b.GroupKey, len(b.Alerts))
	}
	seen := map[string]bool{}
	for i, a := range b.Alerts {
		if seen[a.Fingerprint] {
			t.Errorf("alert %d: duplicate fingerprint %s", i, a.Fingerprint)
		}
		seen[a.Fingerprint] = true
		if a.Group != b.GroupKey || a.Title != fmt.Sprintf("node-%03d is down", i) {
			t.Errorf("alert %d: group %q title %q", i, a.Group, a.Title)
		}
	}
	// MaxAlerts itself is accepted.
	if b, err := alerts.Parse([]byte(storm(alerts.MaxAlerts)), ""); err != nil || len(b.Alerts) != alerts.MaxAlerts {
		t.Fatalf("MaxAlerts alerts: %v", err)
	}
}

func fields(t *testing.T, err error) []string {
	t.Helper()
	var ve *alerts.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if err.Error() == "" {
		t.Error("empty error text")
	}
	out := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		if f.Message == "" {
			t.Errorf("field %s has no message", f.Field)
		}
		out[i] = f.Field
	}
	return out
}

// badInputs are shared with the fuzz seeds.
var badInputs = []struct {
	name   string
	body   string
	fields []string
}{
	{"not JSON", `hello`, []string{"body"}},
	{"empty body", ``, []string{"body"}},
	{"blank body", " \n\t", []string{"body"}},
	{"truncated JSON", `{"title":`, []string{"body"}},
	{"trailing data", `{"title":"a"} x`, []string{"body"}},
	{"two values", `{"title":"a"}{"title":"b"}`, []string{"body"}},
	{"top-level array", `[{"title":"a"}]`, []string{"body"}},
	{"top-level string", `"a"`, []string{"body"}},
	{"invalid UTF-8", "{\"title\":\"\xff\"}", []string{"body"}},
	{"alerts not an array", `{"version":"4","alerts":"x"}`, []string{"alerts"}},
	{"wrong member types",
		`{"version":4,"groupKey":7,"receiver":[],"externalURL":{},"status":"pending","truncatedAlerts":"3",` +
			`"alerts":[{"status":"firing","labels":{"alertname":"A","n":1},"annotations":"x","startsAt":20250101,"generatorURL":1,"fingerprint":2}]}`,
		[]string{"version", "groupKey", "receiver", "externalURL", "status", "truncatedAlerts",
			"alerts[0].labels", "alerts[0].annotations", "alerts[0].startsAt", "alerts[0].generatorURL", "alerts[0].fingerprint"}},
	{"bad status", amBody(amAlert(0),
		`{"status":"pending","labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z"}`,
		`{"labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z"}`),
		[]string{"alerts[1].status", "alerts[2].status"}},
	{"missing alertname and summary", amBody(
		`{"status":"firing","labels":{"instance":"x:9100"},"annotations":{"description":"d"},"startsAt":"2025-01-01T00:00:00Z"}`,
		`{"status":"firing","labels":{},"annotations":{"summary":"s"},"startsAt":"2025-01-01T00:00:00Z"}`,
		`{"status":"firing","labels":{"alertname":"  "},"annotations":{"summary":"\n"},"startsAt":"2025-01-01T00:00:00Z"}`),
		[]string{"alerts[0].labels", "alerts[1].labels", "alerts[2].labels"}},
	{"bad timestamps", amBody(
		`{"status":"firing","labels":{"alertname":"A"},"startsAt":"yesterday","endsAt":"2025-13-01T00:00:00Z"}`,
		`{"status":"firing","labels":{"alertname":"A"}}`,
		`{"status":"firing","labels":{"alertname":"A"},"startsAt":"0001-01-01T00:00:00Z"}`,
		`{"status":"firing","labels":{"alertname":"A"},"startsAt":"2025-01-01 00:00:00"}`),
		[]string{"alerts[0].startsAt", "alerts[0].endsAt", "alerts[1].startsAt", "alerts[2].startsAt", "alerts[3].startsAt"}},
	{"negative truncatedAlerts", `{"version":"4","truncatedAlerts":-1,"alerts":[` + amAlert(0) + `]}`, []string{"truncatedAlerts"}},
	{"fractional truncatedAlerts", `{"version":"4","truncatedAlerts":1.5,"alerts":[` + amAlert(0) + `]}`, []string{"truncatedAlerts"}},
	{"alert not an object", amBody(amAlert(0), `5`, `null`), []string{"alerts[1]", "alerts[2]"}},
	{"too many alerts", storm(alerts.MaxAlerts + 1), []string{"alerts"}},
	{"oversized label value", amBody(`{"status":"firing","labels":{"alertname":"A","v":"` + strings.Repeat("x", alerts.MaxLabelValue+1) + `"},"startsAt":"2025-01-01T00:00:00Z"}`),
		[]string{"alerts[0].labels"}},
	{"oversized label name", amBody(`{"status":"firing","labels":{"alertname":"A","` + strings.Repeat("n", alerts.MaxLabelName+1) + `":"v"},"startsAt":"2025-01-01T00:00:00Z"}`),
		[]string{"alerts[0].labels"}},
	{"empty label name", amBody(`{"status":"firing","labels":{"alertname":"A","":"v"},"startsAt":"2025-01-01T00:00:00Z"}`),
		[]string{"alerts[0].labels"}},
	{"too many labels", amBody(`{"status":"firing","labels":{` + nLabels(alerts.MaxLabels+1) + `},"startsAt":"2025-01-01T00:00:00Z"}`),
		[]string{"alerts[0].labels"}},

	{"generic missing title", `{"description":"x"}`, []string{"title"}},
	{"generic blank title", `{"title":"  "}`, []string{"title"}},
	{"generic multi-line title", `{"title":"disk full\nrun cleanup"}`, []string{"title"}},
	{"generic line separator in title", `{"title":"disk full\u2028now"}`, []string{"title"}},
	{"generic long title", `{"title":"` + strings.Repeat("é", alerts.MaxTitle+1) + `"}`, []string{"title"}},
	{"generic long description", `{"title":"a","description":"` + strings.Repeat("é", alerts.MaxDescription+1) + `"}`, []string{"description"}},
	{"generic bad severity", `{"title":"a","severity":"urgent"}`, []string{"severity"}},
	{"generic bad status", `{"title":"a","status":"open"}`, []string{"status"}},
	{"generic bad labels", `{"title":"a","labels":{"k":1}}`, []string{"labels"}},
	{"generic bad started_at", `{"title":"a","started_at":"soon"}`, []string{"started_at"}},
	{"generic long fingerprint", `{"title":"a","fingerprint":"` + strings.Repeat("f", 129) + `"}`, []string{"fingerprint"}},
	{"generic wrong types",
		`{"title":1,"description":2,"severity":3,"status":4,"fingerprint":5,"source":6,"labels":[],"group":7,"url":8,"started_at":9}`,
		[]string{"title", "description", "severity", "status", "labels", "source", "group", "url", "started_at", "fingerprint"}},
	{"generic list", `{"alerts":[{"title":"ok"},{"severity":"low"},"x",{"title":"b","status":"gone"}]}`,
		[]string{"alerts[1].title", "alerts[2]", "alerts[3].status"}},
	{"generic empty list", `{"alerts":[]}`, []string{"alerts"}},
}

func nLabels(n int) string {
	parts := []string{`"alertname":"A"`}
	for i := 1; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`"l%d":"v"`, i))
	}
	return strings.Join(parts, ",")
}

func TestBadInputs(t *testing.T) {
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			b, err := alerts.Parse([]byte(tt.body), "application/json")
			if err == nil {
				t.Fatalf("accepted: %+v", b)
			}
			if b != nil {
				t.Error("batch returned with an error")
			}
			if got := fields(t, err); !equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q\n%v", got, tt.fields, err)
			}
		})
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestParseAlertmanagerErrors(t *testing.T) {
	for _, tt := range []struct {
		body   string
		fields []string
	}{
		{`{"version":"4","groupKey":"g"}`, []string{"alerts"}},
		{`{"version":"4","alerts":[]}`, []string{"alerts"}},
		{`{"alerts":[` + amAlert(0) + `]}`, []string{"version"}},
		{`{"version":"4","alerts":[{"title":"generic"}]}`, []string{"alerts[0].status", "alerts[0].labels", "alerts[0].startsAt"}},
	} {
		_, err := alerts.ParseAlertmanager([]byte(tt.body))
		if got := fields(t, err); !equal(got, tt.fields) {
			t.Errorf("%s: fields = %q, want %q", tt.body, got, tt.fields)
		}
	}
}

func TestErrorCap(t *testing.T) {
	objs := make([]string, 200)
	for i := range objs {
		objs[i] = `{"status":"pending","labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z"}`
	}
	_, err := alerts.Parse([]byte(amBody(objs...)), "")
	got := fields(t, err)
	if len(got) != alerts.MaxFieldErrors || got[0] != "alerts[0].status" || got[len(got)-1] != "alerts[49].status" {
		t.Fatalf("%d fields: %q ... %q", len(got), got[0], got[len(got)-1])
	}
}

func TestContentType(t *testing.T) {
	body := []byte(`{"title":"a"}`)
	for _, ct := range []string{"", "application/json", "application/json; charset=UTF-8", "text/plain", "application/vnd.alert+json"} {
		if _, err := alerts.Parse(body, ct); err != nil {
			t.Errorf("%q: %v", ct, err)
		}
	}
	for _, ct := range []string{"text/html", "application/json; charset=latin1", "application/x-www-form-urlencoded", "json;;"} {
		_, err := alerts.Parse(body, ct)
		if got := fields(t, err); !equal(got, []string{"content_type"}) {
			t.Errorf("%q: fields %q", ct, got)
		}
	}
}

func TestLimitsAccepted(t *testing.T) {
	labels := `{` + nLabels(alerts.MaxLabels-1) + `,"` + strings.Repeat("n", alerts.MaxLabelName) + `":"` + strings.Repeat("v", alerts.MaxLabelValue) + `"}`
	long := strings.Repeat("word ", 3000) // 15000 runes
	body := amBody(`{"status":"firing","labels":` + labels + `,"annotations":{"summary":` + fmt.Sprintf("%q", long) +
		`,"description":` + fmt.Sprintf("%q", long) + `},"startsAt":"2025-01-01T00:00:00Z"}`)
	body = strings.Replace(body, `"receiver"`, `"truncatedAlerts":7,"receiver"`, 1)
	b, err := alerts.Parse([]byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	a := b.Alerts[0]
	if len(a.Labels) != alerts.MaxLabels || b.Truncated != 7 {
		t.Errorf("%d labels, truncated %d", len(a.Labels), b.Truncated)
	}
	if n := utf8.RuneCountInString(a.Title); n != alerts.MaxTitle || !strings.HasSuffix(a.Title, "…") {
		t.Errorf("title of %d runes: %q", n, a.Title)
	}
	if n := utf8.RuneCountInString(a.Description); n != alerts.MaxDescription || !strings.HasSuffix(a.Description, "…") {
		t.Errorf("description of %d runes", n)
	}
	// A generic title of exactly MaxTitle multi-byte runes is fine.
	if _, err := alerts.Parse([]byte(`{"title":"`+strings.Repeat("é", alerts.MaxTitle)+`"}`), ""); err != nil {
		t.Error(err)
	}
}

func TestFormatDetection(t *testing.T) {
	for _, tt := range []struct {
		body string
		want alerts.Format
	}{
		{amBody(amAlert(1)), alerts.FormatAlertmanager},
		{`{"version":"1","alerts":[{"title":"a"},{"labels":{"alertname":"B"},"status":"firing","startsAt":"2025-01-01T00:00:00Z"}]}`, alerts.FormatAlertmanager},
		{`{"version":"2","alerts":[{"title":"a"}]}`, alerts.FormatGeneric}, // no labels: generic
		{`{"alerts":[{"title":"a","labels":{"x":"y"}}]}`, alerts.FormatGeneric},
		{`{"title":"a"}`, alerts.FormatGeneric},
	} {
		b, err := alerts.Parse([]byte(tt.body), "")
		if tt.want == alerts.FormatAlertmanager && err != nil {
			// Mixed bodies fail validation; detection is seen in the paths.
			if got := fields(t, err); got[0] != "alerts[0].status" {
				t.Errorf("%s: %v", tt.body, err)
			}
			continue
		}
		if err != nil || b.Format != tt.want {
			t.Errorf("%s: %v, %v; want %s", tt.body, b, err, tt.want)
		}
	}
}

func TestGenericGroupKey(t *testing.T) {
	b, err := alerts.Parse([]byte(`{"alerts":[{"title":"a","group":"g1"},{"title":"b","group":"g2"},{"title":"c"}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if b.GroupKey != "" || b.Alerts[0].Group != "g1" || b.Alerts[1].Group != "g2" || b.Alerts[2].Group != "" {
		t.Errorf("mixed groups: key %q, alert groups %q %q %q", b.GroupKey, b.Alerts[0].Group, b.Alerts[1].Group, b.Alerts[2].Group)
	}
}

func TestFingerprint(t *testing.T) {
	// Vectors from prometheus/common model/signature_test.go (as uint64) and
	// a fingerprint Alertmanager sent for a real kube-state-metrics alert
	// (payload captured in liamkelly15-maker/pythonwebhook, testcurl7.sh).
	for _, tt := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, fmt.Sprintf("%016x", uint64(14695981039346656037))},
		{map[string]string{"name": "garland, briggs", "fear": "love is not enough"}, fmt.Sprintf("%016x", uint64(5799056148416392346))},
		{map[string]string{"first-label": "first-label-value", "second-label": "second-label-value", "third-label": "third-label-value"},
			fmt.Sprintf("%016x", uint64(13843036195897128121))},
		{kubeLabels(), "fbab788ec4c1018b"},
	} {
		if got := alerts.Fingerprint(tt.labels); got != tt.want {
			t.Errorf("Fingerprint(%v) = %s, want %s", tt.labels, got, tt.want)
		}
	}

	// Independent of map insertion order.
	want := alerts.Fingerprint(kubeLabels())
	keys := []string{}
	for k := range kubeLabels() {
		keys = append(keys, k)
	}
	for i := range keys {
		m := map[string]string{}
		for j := range keys {
			k := keys[(i+j)%len(keys)]
			m[k] = kubeLabels()[k]
		}
		if got := alerts.Fingerprint(m); got != want {
			t.Fatalf("insertion order %d: %s, want %s", i, got, want)
		}
	}

	// Changes with any value, and with where a name ends.
	changed := kubeLabels()
	changed["severity"] = "warning"
	if alerts.Fingerprint(changed) == want {
		t.Error("fingerprint ignores a value change")
	}
	if alerts.Fingerprint(map[string]string{"a": "bc"}) == alerts.Fingerprint(map[string]string{"ab": "c"}) {
		t.Error("fingerprint ignores the name/value boundary")
	}
}

func kubeLabels() map[string]string {
	return map[string]string{
		"alertname": "Deployment", "app_kubernetes_io_instance": "eric-oss-common-base",
		"app_kubernetes_io_managed_by": "Helm", "app_kubernetes_io_name": "eric-pm-kube-state-metrics",
		"app_kubernetes_io_version": "2.1.0_10", "chart": "eric-pm-kube-state-metrics-2.1.0_10",
		"deployment": "eric-log-transformer", "instance": "192.168.69.53:8080", "job": "eric-pm-kube-state-metrics",
		"kubernetes_name": "eric-pm-kube-state-metrics", "kubernetes_namespace": "eric-eo-cm-ci406",
		"namespace": "eric-eo-cm-ci406", "severity": "Warning",
	}
}

func TestFingerprintDerived(t *testing.T) {
	// Alertmanager without a fingerprint: the one it would have sent.
	obj := `{"status":"firing","labels":{`
	for k, v := range kubeLabels() {
		obj += fmt.Sprintf("%q:%q,", k, v)
	}
	obj = strings.TrimSuffix(obj, ",") + `},"startsAt":"2022-07-29T11:13:27.3Z"}`
	b, err := alerts.Parse([]byte(amBody(obj)), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Alerts[0].Fingerprint; got != "fbab788ec4c1018b" {
		t.Errorf("derived Alertmanager fingerprint %s", got)
	}
	if got := b.Alerts[0].Title; got != "Deployment on 192.168.69.53:8080" {
		t.Errorf("title %q", got)
	}

	// Generic: from source, title and labels only.
	fp := func(body string) string {
		t.Helper()
		b, err := alerts.Parse([]byte(body), "")
		if err != nil {
			t.Fatal(err)
		}
		return b.Alerts[0].Fingerprint
	}
	base := fp(`{"title":"t","source":"s","labels":{"k":"v"}}`)
	if base == "" || base != fp(`{"title":" t ","source":"s","labels":{"k":"v"},"severity":"low","description":"other","status":"resolved"}`) {
		t.Error("generic fingerprint depends on more than source, title and labels")
	}
	for _, other := range []string{
		`{"title":"t2","source":"s","labels":{"k":"v"}}`,
		`{"title":"t","source":"s2","labels":{"k":"v"}}`,
		`{"title":"t","source":"s","labels":{"k":"v2"}}`,
		`{"title":"t","source":"s"}`,
	} {
		if fp(other) == base {
			t.Errorf("%s: same fingerprint as the base alert", other)
		}
	}
	if got := fp(`{"title":"t","fingerprint":" mine "}`); got != "mine" {
		t.Errorf("explicit fingerprint %q", got)
	}
	// Never equal to Alertmanager's fingerprint of a label set that spells
	// the same bytes.
	if fp(`{"title":"b","source":"a"}`) == alerts.Fingerprint(map[string]string{"a": "b"}) {
		t.Error("generic fingerprint collides with a label-set fingerprint")
	}
}

func TestNormalizeSeverity(t *testing.T) {
	for in, want := range map[string]string{
		"critical": "critical", "CRITICAL": "critical", "page": "critical", "disaster": "critical", "P1": "critical",
		"high": "high", "error": "high", "major": "high",
		"medium": "medium", "warning": "medium", " Warning ": "medium", "average": "medium", "minor": "medium",
		"low": "low", "info": "low", "information": "low", "none": "low",
		"": "medium", "bogus": "medium",
	} {
		if got := alerts.NormalizeSeverity(in); got != want {
			t.Errorf("NormalizeSeverity(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHighestSeverity(t *testing.T) {
	sev := func(ss ...string) []alerts.Alert {
		out := make([]alerts.Alert, len(ss))
		for i, s := range ss {
			out[i].Severity = s
		}
		return out
	}
	for _, tt := range []struct {
		in   []alerts.Alert
		want string
	}{
		{nil, "medium"},
		{sev("low"), "low"},
		{sev("low", "medium", "low"), "medium"},
		{sev("medium", "critical", "high"), "critical"},
		{sev("high", "low"), "high"},
		{sev("warning", "info"), "medium"}, // raw words are normalized
	} {
		if got := alerts.HighestSeverity(tt.in); got != tt.want {
			t.Errorf("HighestSeverity(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestImpactUrgency(t *testing.T) {
	for _, tt := range []struct{ sev, impact, urgency string }{
		{"critical", "high", "high"},
		{"high", "high", "medium"},
		{"medium", "medium", "medium"},
		{"low", "low", "low"},
		{"warning", "medium", "medium"},
		{"", "medium", "medium"},
	} {
		if i, u := alerts.ImpactUrgency(tt.sev); i != tt.impact || u != tt.urgency {
			t.Errorf("ImpactUrgency(%q) = %s/%s, want %s/%s", tt.sev, i, u, tt.impact, tt.urgency)
		}
	}
}
