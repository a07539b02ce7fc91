package alerts

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ParseAlertmanager parses an Alertmanager webhook_config payload
// (version "4"). Any version string is accepted, since Grafana sends the
// same alert shape as version "1"; groupLabels, commonLabels and
// commonAnnotations are ignored, as every alert carries its own.
func ParseAlertmanager(body []byte) (*Batch, error) {
	top, err := decodeTop(body)
	if err != nil {
		return nil, err
	}
	return parseAlertmanager(top)
}

func parseAlertmanager(top object) (*Batch, error) {
	c := &checker{}
	b := &Batch{Format: FormatAlertmanager}
	if v, bad := c.str(top, "version", "version"); v == "" && !bad {
		c.bad("version", "is required")
	}
	b.GroupKey, _ = c.str(top, "groupKey", "groupKey")
	b.Receiver, _ = c.str(top, "receiver", "receiver")
	b.ExternalURL, _ = c.str(top, "externalURL", "externalURL")
	// The group status may differ from an alert's (a group fires while any
	// alert does), so it is checked but not compared with the alerts'.
	c.status(top, "status", "status", StatusFiring)
	b.Truncated = c.count(top, "truncatedAlerts")
	c.eachAlert(top, func(prefix string, o object) {
		a := c.amAlert(o, prefix)
		a.Group = b.GroupKey
		b.Alerts = append(b.Alerts, a)
	})
	if err := c.err(); err != nil {
		return nil, err
	}
	return b, nil
}

// count decodes an optional non-negative integer.
func (c *checker) count(o object, key string) int {
	raw, ok := o[key]
	if !ok || kind(raw) == 'n' {
		return 0
	}
	var num json.Number
	k := kind(raw)
	if (k != '-' && (k < '0' || k > '9')) || json.Unmarshal(raw, &num) != nil {
		c.bad(key, "must be a non-negative integer")
		return 0
	}
	n, err := strconv.Atoi(num.String())
	if err != nil || n < 0 {
		c.bad(key, "must be a non-negative integer")
		return 0
	}
	return n
}

func (c *checker) amAlert(o object, prefix string) Alert {
	a := Alert{Source: "alertmanager"}
	a.Status = c.status(o, "status", prefix+"status", "")
	labels, labelsBad := c.strMap(o, "labels", prefix+"labels")
	annotations, annotationsBad := c.strMap(o, "annotations", prefix+"annotations")
	c.labels(labels, prefix+"labels", MaxLabelValue)
	c.labels(annotations, prefix+"annotations", 0)
	a.Labels, a.Annotations = labels, annotations

	a.Title = amTitle(labels, annotations)
	switch {
	case labelsBad || annotationsBad:
	case len(labels) == 0:
		c.bad(prefix+"labels", "must not be empty")
	case a.Title == "":
		c.bad(prefix+"labels", "must include alertname when annotations.summary is empty")
	}

	desc := annotations["description"]
	if strings.TrimSpace(desc) == "" {
		desc = annotations["message"] // kube-prometheus rules used "message"
	}
	a.Description = clip(strings.TrimSpace(desc), MaxDescription)
	a.Severity = NormalizeSeverity(labels["severity"])
	a.StartsAt = c.time(o, "startsAt", prefix+"startsAt", true)
	a.EndsAt = c.time(o, "endsAt", prefix+"endsAt", false)
	a.URL, _ = c.str(o, "generatorURL", prefix+"generatorURL")

	fp, _ := c.str(o, "fingerprint", prefix+"fingerprint")
	a.Fingerprint = strings.TrimSpace(fp)
	c.maxLen(a.Fingerprint, maxFingerprint, prefix+"fingerprint")
	if a.Fingerprint == "" {
		// Older Alertmanagers (< 0.19) send none; this is the value they
		// would have sent.
		a.Fingerprint = Fingerprint(labels)
	}
	return a
}

// amTitle is the summary annotation, else alertname plus where it fires
// (instance, else job); "" when neither makes a title.
func amTitle(labels, annotations map[string]string) string {
	if t := clip(fold(annotations["summary"]), MaxTitle); t != "" {
		return t
	}
	t := fold(labels["alertname"])
	if t == "" {
		return ""
	}
	where := fold(labels["instance"])
	if where == "" {
		where = fold(labels["job"])
	}
	if where != "" {
		t += " on " + where
	}
	return clip(t, MaxTitle)
}
