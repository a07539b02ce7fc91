package ticket

import (
	"fmt"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Alert is one monitoring alert as the alert channel hands it over.
type Alert struct {
	Fingerprint, GroupKey, Status, Title, Severity, Source, URL string
	Labels                                                      map[string]string
	StartsAt, EndsAt                                            time.Time
}

// AlertBatch is what a webhook brought for one incident. AutoResolve is the
// tenant's setting; CommentIDs hands out ids for the notes resolved alerts
// add (c_<ULID>).
type AlertBatch struct {
	Alerts      []Alert
	AutoResolve bool
	Policy      Policy
	NewID       func() string
	At          time.Time
}

// Open reports whether an incident still takes alerts: it is not resolved,
// closed, cancelled or merged.
func (t Ticket) Open() bool {
	return t.Exists() && !t.Terminal() && t.Status != StatusResolved && t.MergedInto == ""
}

// DecideAlerts folds a batch of alerts into an incident (t may be the
// events of its creation, folded): a firing alert not firing on it yet is
// listed (TicketAlertReceived; a repeat notification adds nothing); a
// resolved alert that was firing adds an internal note and
// TicketAlertResolved; and when the tenant enabled it and no alert of the
// incident fires any more, the incident is resolved.
func DecideAlerts(t Ticket, b AlertBatch) []any {
	var out []any
	firing := map[string]bool{}
	for fp, f := range t.Alerts {
		firing[fp] = f
	}
	var resolvedNow []string
	for _, a := range b.Alerts {
		switch {
		case a.Status == ticketv1.AlertFiring && !firing[a.Fingerprint]:
			firing[a.Fingerprint] = true
			starts := a.StartsAt
			if starts.IsZero() {
				starts = b.At // a generic alert need not say when it started
			}
			out = append(out, ticketv1.TicketAlertReceived{
				Fingerprint: a.Fingerprint, GroupKey: a.GroupKey, Title: a.Title, Severity: a.Severity,
				Source: a.Source, Labels: a.Labels, StartsAt: starts.UTC().Truncate(time.Microsecond), URL: a.URL,
			})
		case a.Status == ticketv1.AlertResolved && firing[a.Fingerprint]:
			firing[a.Fingerprint] = false
			ends := a.EndsAt
			if ends.IsZero() {
				ends = b.At
			}
			out = append(out, ticketv1.TicketAlertResolved{Fingerprint: a.Fingerprint, EndsAt: ends.UTC().Truncate(time.Microsecond)})
			resolvedNow = append(resolvedNow, a.Title)
		}
	}
	if len(resolvedNow) > 0 && b.NewID != nil {
		body := "Monitoring reports resolved: "
		for i, title := range resolvedNow {
			if i > 0 {
				body += "; "
			}
			body += title
		}
		out = append(out, ticketv1.TicketCommented{
			CommentID: b.NewID(), Body: body, Internal: true, Author: "monitoring",
			AuthorRole: ticketv1.AuthorSystem, Channel: ticketv1.ChannelAlert,
		})
	}
	stillFiring := 0
	for _, f := range firing {
		if f {
			stillFiring++
		}
	}
	if b.AutoResolve && len(resolvedNow) > 0 && stillFiring == 0 && t.Status != StatusResolved && !t.Terminal() {
		note := fmt.Sprintf("Every alert of the incident has resolved (%d).", len(firing))
		out = append(out, resolved(t, ticketv1.ResolutionFixed, note, ticketv1.CauseAlertsResolved, b.Policy, b.At))
	}
	return out
}
