// Package alerts parses monitoring alert webhooks (Prometheus Alertmanager
// and a small generic JSON form) into a normalized Batch that the intake
// service turns into incidents. It is pure: no I/O, no clock, standard
// library only.
//
// Decisions worth knowing:
//   - A bad payload is always a *ValidationError listing every bad field (up
//     to MaxFieldErrors), so a sender can fix it in one round trip.
//   - Unknown members are ignored: Alertmanager-compatible senders (Grafana)
//     add fields of their own, and we must not reject them for it.
//   - Member names are matched exactly (encoding/json's struct matching is
//     case-insensitive, which would accept "Status" as "status").
//   - Upstream text we cannot make the sender change (Alertmanager summaries,
//     descriptions) is folded and clipped; the generic form, written for us,
//     is validated strictly instead.
//   - A top-level JSON array is rejected: the generic list form is
//     {"alerts":[...]}, which keeps field paths unambiguous.
//   - The body must be valid UTF-8 (reported on "body"); encoding/json then
//     guarantees every decoded label name and value is valid UTF-8 too.
package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// Format names the wire format a Batch was parsed from.
type Format string

// Formats.
const (
	FormatAlertmanager Format = "alertmanager"
	FormatGeneric      Format = "generic"
)

// Alert statuses.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Limits. The body size limit (MaxBytes) is the caller's, enforced before
// reading; these bound what a body of that size may contain.
const (
	MaxAlerts      = 1000  // alerts per payload
	MaxLabels      = 64    // labels (and annotations) per alert
	MaxLabelName   = 128   // bytes
	MaxLabelValue  = 1024  // bytes; annotation values are not limited
	MaxTitle       = 200   // runes, as tickets count them
	MaxDescription = 10000 // runes, as tickets count them
	MaxFieldErrors = 50    // errors reported per payload

	// Generic-form string limits, in bytes.
	maxFingerprint = 128
	maxSource      = 64
	maxGroup       = 256
	maxURL         = 2048
)

// Alert is one normalized alert.
type Alert struct {
	Fingerprint string // stable id: Alertmanager's, or derived
	Status      string // StatusFiring or StatusResolved
	Title       string // one line, 1..MaxTitle runes
	Description string // at most MaxDescription runes
	Severity    string // one of the Severity* constants
	Labels      map[string]string
	Annotations map[string]string
	StartsAt    time.Time // UTC; zero when a generic alert has none
	EndsAt      time.Time // UTC; zero when unset or the zero year
	URL         string    // generatorURL / url
	Source      string    // "alertmanager", or the generic source ("generic" by default)
	// Group is the incident group the alert folds into: the Alertmanager
	// groupKey, or the generic "group" (kept per alert because Batch.GroupKey
	// is empty when a generic list mixes groups).
	Group string
}

// Batch is one parsed webhook payload.
type Batch struct {
	Format Format
	// GroupKey is Alertmanager's groupKey; for the generic form, the "group"
	// every alert shares, else "". When empty callers group by fingerprint.
	GroupKey    string
	Receiver    string
	ExternalURL string
	Truncated   int // alerts Alertmanager dropped because of max_alerts
	Alerts      []Alert
}

// FieldError names one invalid field by its JSON path, e.g.
// "alerts[3].status", "title", or "body" for the payload as a whole.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of a payload (at most
// MaxFieldErrors). Ports answer 400.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid alert payload: " + strings.Join(parts, "; ")
}

// Parse checks the content type, detects the format and parses body. A
// top-level object with "version" and an "alerts" array holding an object
// with "labels" is Alertmanager; anything else is the generic form.
// contentType may be empty (unknown); otherwise it must be JSON or
// text/plain (which scripts send), in UTF-8.
func Parse(body []byte, contentType string) (*Batch, error) {
	if msg := checkContentType(contentType); msg != "" {
		return nil, &ValidationError{Fields: []FieldError{{Field: "content_type", Message: msg}}}
	}
	top, err := decodeTop(body)
	if err != nil {
		return nil, err
	}
	if isAlertmanager(top) {
		return parseAlertmanager(top)
	}
	return parseGeneric(top)
}

func checkContentType(ct string) string {
	if strings.TrimSpace(ct) == "" {
		return ""
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "must be a media type"
	}
	isJSON := mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
	if !isJSON && mt != "text/plain" {
		return "must be application/json"
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return "charset must be utf-8"
	}
	return ""
}

func isAlertmanager(top object) bool {
	if _, ok := top["version"]; !ok {
		return false
	}
	var alerts []json.RawMessage
	if json.Unmarshal(top["alerts"], &alerts) != nil {
		return false
	}
	for _, raw := range alerts {
		var o object
		if json.Unmarshal(raw, &o) == nil {
			if _, ok := o["labels"]; ok {
				return true
			}
		}
	}
	return false
}

// object is a JSON object with its members left raw, so that each member
// is decoded on its own and a wrong type is reported at its own path.
type object map[string]json.RawMessage

func bodyError(msg string) error {
	return &ValidationError{Fields: []FieldError{{Field: "body", Message: msg}}}
}

// decodeTop decodes body as exactly one JSON object.
func decodeTop(body []byte) (object, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, bodyError("must not be empty")
	}
	if !utf8.Valid(body) {
		return nil, bodyError("must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, bodyError("is not valid JSON: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bodyError("must hold a single JSON value, found data after it")
	}
	var top object
	if kind(raw) != '{' || json.Unmarshal(raw, &top) != nil {
		return nil, bodyError("must be a JSON object")
	}
	return top, nil
}

// kind is the first byte of a JSON value, which tells its type.
func kind(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// checker collects field errors, up to MaxFieldErrors.
type checker struct{ errs []FieldError }

func (c *checker) bad(field, msg string) {
	if len(c.errs) < MaxFieldErrors {
		c.errs = append(c.errs, FieldError{Field: field, Message: msg})
	}
}

// full reports that no more errors will be kept, so callers stop early.
func (c *checker) full() bool { return len(c.errs) >= MaxFieldErrors }

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: c.errs}
}

// str decodes an optional string member; absent and null read as "". bad
// is true when the member has another type (already reported).
func (c *checker) str(o object, key, path string) (s string, bad bool) {
	raw, ok := o[key]
	if !ok || kind(raw) == 'n' {
		return "", false
	}
	if kind(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		c.bad(path, "must be a string")
		return "", true
	}
	return s, false
}

// strMap decodes an optional object of strings; absent and null read as an
// empty map.
func (c *checker) strMap(o object, key, path string) (m map[string]string, bad bool) {
	raw, ok := o[key]
	if !ok || kind(raw) == 'n' {
		return map[string]string{}, false
	}
	if kind(raw) != '{' || json.Unmarshal(raw, &m) != nil {
		c.bad(path, "must be an object of string values")
		return map[string]string{}, true
	}
	return m, false
}

// labels checks a label (or annotation) set; maxValue 0 leaves values
// unlimited.
func (c *checker) labels(m map[string]string, path string, maxValue int) {
	if len(m) > MaxLabels {
		c.bad(path, fmt.Sprintf("must have at most %d entries, got %d", MaxLabels, len(m)))
		return
	}
	for _, k := range sortedKeys(m) { // sorted so errors come in a stable order
		switch {
		case k == "" || len(k) > MaxLabelName:
			c.bad(path, fmt.Sprintf("name %s must be 1 to %d bytes", quote(k), MaxLabelName))
		case maxValue > 0 && len(m[k]) > maxValue:
			c.bad(path, fmt.Sprintf("value of %s must be at most %d bytes", quote(k), maxValue))
		}
	}
}

// status decodes a status member; def "" makes it required.
func (c *checker) status(o object, key, path, def string) string {
	s, bad := c.str(o, key, path)
	switch {
	case bad:
	case s == "" && def == "":
		c.bad(path, "is required")
	case s == "":
		return def
	case s != StatusFiring && s != StatusResolved:
		c.bad(path, "must be firing or resolved")
	}
	return s
}

// time decodes an RFC 3339 timestamp; the zero year reads as unset, as
// Alertmanager writes "0001-01-01T00:00:00Z" for "no end".
func (c *checker) time(o object, key, path string, required bool) time.Time {
	s, bad := c.str(o, key, path)
	if bad {
		return time.Time{}
	}
	if s == "" {
		if required {
			c.bad(path, "is required")
		}
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		c.bad(path, "must be an RFC 3339 timestamp")
		return time.Time{}
	}
	if t.Year() <= 1 {
		if required {
			c.bad(path, "must not be the zero time")
		}
		return time.Time{}
	}
	return t.UTC()
}

// maxLen reports a string longer than n bytes.
func (c *checker) maxLen(s string, n int, path string) {
	if len(s) > n {
		c.bad(path, fmt.Sprintf("must be at most %d bytes", n))
	}
}

// eachAlert decodes the "alerts" array and calls fn with each element that
// is an object, reporting the others, until the error list is full. Over
// MaxAlerts nothing is checked: a storm that size is rejected whole.
func (c *checker) eachAlert(top object, fn func(prefix string, o object)) {
	raw, ok := top["alerts"]
	if !ok || kind(raw) == 'n' {
		c.bad("alerts", "is required")
		return
	}
	var raws []json.RawMessage
	if kind(raw) != '[' || json.Unmarshal(raw, &raws) != nil {
		c.bad("alerts", "must be an array")
		return
	}
	switch {
	case len(raws) == 0:
		c.bad("alerts", "must hold at least one alert")
		return
	case len(raws) > MaxAlerts:
		c.bad("alerts", fmt.Sprintf("must hold at most %d alerts, got %d", MaxAlerts, len(raws)))
		return
	}
	for i, r := range raws {
		if c.full() {
			return
		}
		path := fmt.Sprintf("alerts[%d]", i)
		var o object
		if kind(r) != '{' || json.Unmarshal(r, &o) != nil {
			c.bad(path, "must be an object")
			continue
		}
		fn(path+".", o)
	}
}
