package alerts_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/opsdesk/opsdesk/services/intake/internal/alerts"
)

var normalized = map[string]bool{"critical": true, "high": true, "medium": true, "low": true}

// FuzzParse checks that Parse never panics, fails only with a bounded
// *ValidationError, and on success returns a batch that can open incidents.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "application/json")
	}
	for _, tt := range badInputs {
		if len(tt.body) < 4096 { // the storm seeds only slow the fuzzer down
			f.Add([]byte(tt.body), "application/json")
		}
	}
	f.Add([]byte(storm(3)), "")
	f.Add([]byte(`{"title":"a","labels":{"k":"v"},"group":"g","started_at":"2025-01-01T00:00:00Z"}`), "text/plain; charset=utf-8")
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"\u2028\t"},"annotations":{"summary":"\u0000x\r\ny"},"startsAt":"2025-01-01T00:00:00+14:00"}]}`), "")

	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		b, err := alerts.Parse(body, contentType)
		if err != nil {
			var ve *alerts.ValidationError
			if !errors.As(err, &ve) || b != nil {
				t.Fatalf("error %T %v with batch %v", err, err, b)
			}
			if n := len(ve.Fields); n < 1 || n > alerts.MaxFieldErrors {
				t.Fatalf("%d field errors", n)
			}
			for _, fe := range ve.Fields {
				if fe.Field == "" || fe.Message == "" {
					t.Fatalf("empty field error %+v", fe)
				}
			}
			return
		}
		if b.Format != alerts.FormatAlertmanager && b.Format != alerts.FormatGeneric {
			t.Fatalf("format %q", b.Format)
		}
		if n := len(b.Alerts); n < 1 || n > alerts.MaxAlerts {
			t.Fatalf("%d alerts", n)
		}
		for i, a := range b.Alerts {
			if a.Status != alerts.StatusFiring && a.Status != alerts.StatusResolved {
				t.Fatalf("alert %d status %q", i, a.Status)
			}
			if a.Title == "" || a.Title != strings.TrimSpace(a.Title) || !utf8.ValidString(a.Title) ||
				utf8.RuneCountInString(a.Title) > alerts.MaxTitle ||
				strings.ContainsFunc(a.Title, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) {
				t.Fatalf("alert %d title %q", i, a.Title)
			}
			if utf8.RuneCountInString(a.Description) > alerts.MaxDescription {
				t.Fatalf("alert %d description of %d runes", i, utf8.RuneCountInString(a.Description))
			}
			if !normalized[a.Severity] {
				t.Fatalf("alert %d severity %q", i, a.Severity)
			}
			if a.Fingerprint == "" || a.Labels == nil || a.Annotations == nil || len(a.Labels) > alerts.MaxLabels {
				t.Fatalf("alert %d: fingerprint %q, %d labels", i, a.Fingerprint, len(a.Labels))
			}
			for k, v := range a.Labels {
				if !utf8.ValidString(k) || !utf8.ValidString(v) || k == "" || len(k) > alerts.MaxLabelName || len(v) > alerts.MaxLabelValue {
					t.Fatalf("alert %d label %q=%q", i, k, v)
				}
			}
			if (!a.StartsAt.IsZero() && a.StartsAt.Year() <= 1) || (!a.EndsAt.IsZero() && a.EndsAt.Year() <= 1) {
				t.Fatalf("alert %d zero-year time not zeroed", i)
			}
		}
		if !normalized[alerts.HighestSeverity(b.Alerts)] {
			t.Fatal("HighestSeverity not normalized")
		}
		again, err := alerts.Parse(body, contentType)
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatal("Parse is not deterministic")
		}
	})
}
