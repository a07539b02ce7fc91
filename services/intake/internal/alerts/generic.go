package alerts

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// genericSeverities are the severities the generic form accepts.
var genericSeverities = map[string]bool{
	"critical": true, "high": true, "warning": true, "medium": true, "low": true, "info": true,
}

// ParseGeneric parses the generic form: one alert object, or
// {"alerts":[...]} of them (a top-level "alerts" member selects the list
// form; other top-level members are then ignored). Field paths are "title"
// for the single form and "alerts[i].title" for the list.
func ParseGeneric(body []byte) (*Batch, error) {
	top, err := decodeTop(body)
	if err != nil {
		return nil, err
	}
	return parseGeneric(top)
}

func parseGeneric(top object) (*Batch, error) {
	c := &checker{}
	b := &Batch{Format: FormatGeneric}
	if _, list := top["alerts"]; list {
		c.eachAlert(top, func(prefix string, o object) {
			b.Alerts = append(b.Alerts, c.genericAlert(o, prefix))
		})
	} else {
		b.Alerts = []Alert{c.genericAlert(top, "")}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	b.GroupKey = b.Alerts[0].Group
	for _, a := range b.Alerts[1:] {
		if a.Group != b.GroupKey {
			b.GroupKey = ""
			break
		}
	}
	return b, nil
}

func (c *checker) genericAlert(o object, prefix string) Alert {
	a := Alert{Annotations: map[string]string{}}

	title, bad := c.str(o, "title", prefix+"title")
	switch {
	case bad:
	case strings.TrimSpace(title) == "":
		c.bad(prefix+"title", "is required")
	case utf8.RuneCountInString(title) > MaxTitle:
		c.bad(prefix+"title", fmt.Sprintf("must be at most %d characters", MaxTitle))
	case !oneLine(title):
		c.bad(prefix+"title", "must be a single line without control characters")
	}
	a.Title = strings.TrimSpace(title)

	a.Description, _ = c.str(o, "description", prefix+"description")
	if utf8.RuneCountInString(a.Description) > MaxDescription {
		c.bad(prefix+"description", fmt.Sprintf("must be at most %d characters", MaxDescription))
	}

	sev, bad := c.str(o, "severity", prefix+"severity")
	sev = strings.ToLower(strings.TrimSpace(sev))
	if sev == "" {
		sev = "warning"
	}
	if !bad && !genericSeverities[sev] {
		c.bad(prefix+"severity", "must be one of critical, high, warning, medium, low, info")
	}
	a.Severity = NormalizeSeverity(sev)

	a.Status = c.status(o, "status", prefix+"status", StatusFiring)
	a.Labels, _ = c.strMap(o, "labels", prefix+"labels")
	c.labels(a.Labels, prefix+"labels", MaxLabelValue)

	short := func(key string, n int) string {
		s, _ := c.str(o, key, prefix+key)
		s = strings.TrimSpace(s)
		c.maxLen(s, n, prefix+key)
		return s
	}
	a.Source = short("source", maxSource)
	if a.Source == "" {
		a.Source = "generic"
	}
	a.Group = short("group", maxGroup)
	a.URL = short("url", maxURL)
	a.StartsAt = c.time(o, "started_at", prefix+"started_at", false)
	a.Fingerprint = short("fingerprint", maxFingerprint)
	if a.Fingerprint == "" {
		a.Fingerprint = genericFingerprint(a.Source, a.Title, a.Labels)
	}
	return a
}

// oneLine reports that s has no line breaks or other control characters.
func oneLine(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	})
}

// fold turns runs of white space and control characters (line breaks
// included) into single spaces and trims the ends, making s one line.
func fold(s string) string {
	var b strings.Builder
	gap := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			gap = b.Len() > 0
			continue
		}
		if gap {
			b.WriteByte(' ')
			gap = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// clip cuts s to at most n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n-1 {
			return strings.TrimRightFunc(s[:j], unicode.IsSpace) + "…"
		}
		i++
	}
	return s
}
