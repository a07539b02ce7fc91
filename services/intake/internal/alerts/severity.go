package alerts

import "strings"

// Normalized severities, lowest to highest.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// severityAliases maps the severity words monitoring tools use (Prometheus
// rule conventions, syslog, Zabbix, PagerDuty-style P1..P5) to ours.
var severityAliases = map[string]string{
	"critical": SeverityCritical, "crit": SeverityCritical, "page": SeverityCritical,
	"fatal": SeverityCritical, "emergency": SeverityCritical, "disaster": SeverityCritical, "p1": SeverityCritical,
	"high": SeverityHigh, "error": SeverityHigh, "err": SeverityHigh, "major": SeverityHigh, "p2": SeverityHigh,
	"medium": SeverityMedium, "warning": SeverityMedium, "warn": SeverityMedium, "average": SeverityMedium,
	"moderate": SeverityMedium, "minor": SeverityMedium, "p3": SeverityMedium,
	"low": SeverityLow, "info": SeverityLow, "information": SeverityLow, "informational": SeverityLow,
	"notice": SeverityLow, "debug": SeverityLow, "none": SeverityLow, "p4": SeverityLow, "p5": SeverityLow,
}

var severityRank = map[string]int{SeverityLow: 0, SeverityMedium: 1, SeverityHigh: 2, SeverityCritical: 3}

// NormalizeSeverity maps a tool's severity word (any case) to one of the
// Severity* constants; unknown or missing reads as medium, so an alert
// never lands below notice just because its rule lacks a severity label.
func NormalizeSeverity(s string) string {
	if n, ok := severityAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return n
	}
	return SeverityMedium
}

// HighestSeverity is the highest normalized severity of alerts, medium for
// none. Callers opening an incident pass the firing alerts.
func HighestSeverity(alerts []Alert) string {
	best := ""
	for _, a := range alerts {
		if s := NormalizeSeverity(a.Severity); best == "" || severityRank[s] > severityRank[best] {
			best = s
		}
	}
	if best == "" {
		return SeverityMedium
	}
	return best
}

// ImpactUrgency gives the impact and urgency (ticket levels low, medium,
// high) of an incident opened at severity.
func ImpactUrgency(severity string) (impact, urgency string) {
	switch NormalizeSeverity(severity) {
	case SeverityCritical:
		return "high", "high"
	case SeverityHigh:
		return "high", "medium"
	case SeverityLow:
		return "low", "low"
	default:
		return "medium", "medium"
	}
}
