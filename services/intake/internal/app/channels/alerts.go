package channels

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/alerts"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// IncidentOutcome is what a webhook did to one incident.
type IncidentOutcome struct {
	TicketID, TicketNumber string
	Created                bool
	Alerts                 int
	sequence               uint64
}

// AlertsOutcome is what one alert webhook did.
type AlertsOutcome struct {
	Incidents []IncidentOutcome
	// Ignored counts resolved alerts that had no open incident.
	Ignored int
	// Sequence is the consistency token of the last write.
	Sequence uint64
}

// QuarantinedError is a payload that could not be parsed: the fields at
// fault, and where the raw payload is kept.
type QuarantinedError struct {
	QuarantineID string
	Invalid      *alerts.ValidationError
}

func (e *QuarantinedError) Error() string { return "alert payload quarantined: " + e.Invalid.Error() }

// ReceiveAlerts processes one alert webhook body for tenant (the port
// bounds its size): the alerts of
// one group (Alertmanager's groupKey, the generic "group") go to one
// incident, as do further alerts with a fingerprint the incident holds,
// while that incident is open; otherwise firing alerts open a new one.
func (s *Service) ReceiveAlerts(ctx context.Context, tenant string, body []byte, contentType string, m command.Meta) (AlertsOutcome, error) {
	batch, err := alerts.Parse(body, contentType)
	var ve *alerts.ValidationError
	if errors.As(err, &ve) {
		blob, perr := s.state.PutBlob(ctx, tenant, "application/json", body, s.now())
		if perr != nil {
			return AlertsOutcome{}, perr
		}
		qid, qerr := s.state.Quarantine(ctx, tenant, "alerts", ve.Error(), m.Actor, blob.ID, s.now())
		if qerr != nil {
			return AlertsOutcome{}, qerr
		}
		return AlertsOutcome{}, &QuarantinedError{QuarantineID: qid, Invalid: ve}
	}
	if err != nil {
		return AlertsOutcome{}, err
	}
	return s.applyAlerts(ctx, tenant, batch, m)
}

func (s *Service) applyAlerts(ctx context.Context, tenant string, batch *alerts.Batch, m command.Meta) (AlertsOutcome, error) {
	st, err := s.settings.Get(ctx, tenant)
	if err != nil {
		return AlertsOutcome{}, err
	}
	// Group in arrival order.
	var order []string
	groups := map[string][]ticket.Alert{}
	for _, a := range batch.Alerts {
		key := "fp:" + a.Fingerprint
		if a.Group != "" {
			key = "group:" + a.Group
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], domainAlert(a))
	}
	var out AlertsOutcome
	for _, key := range order {
		as := groups[key]
		keys := []string{key}
		for _, a := range as {
			keys = append(keys, "fp:"+a.Fingerprint)
		}
		err := s.state.WithAlertKeys(ctx, tenant, keys, s.now(), func(idx pgstore.AlertIndex) error {
			io, err := s.incident(ctx, tenant, idx, keys, as, st.AlertsAutoResolve, m)
			if err != nil {
				return err
			}
			if io == nil {
				out.Ignored += len(as)
				return nil
			}
			out.Incidents = append(out.Incidents, *io)
			out.Sequence = max(out.Sequence, io.sequence)
			return nil
		})
		if err != nil {
			return AlertsOutcome{}, err
		}
	}
	return out, nil
}

// incident feeds the group's alerts to its open incident, or opens one if
// any of them fires; nil when there was nothing to do.
func (s *Service) incident(ctx context.Context, tenant string, idx pgstore.AlertIndex, keys []string, as []ticket.Alert,
	autoResolve bool, m command.Meta) (*IncidentOutcome, error) {
	newID := func() string { return "c_" + ulid.Make().String() }
	for _, k := range keys {
		id := idx.Lookup(k)
		if id == "" {
			continue
		}
		t, err := s.tickets.Visible(ctx, command.Ref{Tenant: tenant, ID: id})
		if errors.Is(err, ticket.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !t.Open() {
			continue
		}
		res, err := s.tickets.Alerts(ctx, command.Ref{Tenant: tenant, ID: id}, m, ticket.AlertBatch{Alerts: as, AutoResolve: autoResolve, NewID: newID})
		if err != nil {
			return nil, err
		}
		idx.Record(id, firingKeys(keys[0], as)...)
		return &IncidentOutcome{TicketID: id, TicketNumber: res.Ticket.Number, Alerts: len(as), sequence: res.Sequence}, nil
	}
	if !anyFiring(as) {
		return nil, nil
	}
	severity := highest(as)
	impact, urgency := alerts.ImpactUrgency(severity)
	policy, err := s.settings.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	res, err := s.create.Handle(ctx, command.CreateTicket{
		Tenant: tenant, Type: ticketv1.TypeIncident, Title: incidentTitle(as), Description: incidentDescription(as),
		Impact: impact, Urgency: urgency, Requester: "monitoring (" + as[0].Source + ")", Channel: ticketv1.ChannelAlert,
		Tags: []string{"alert"}, Actor: m.Actor, CorrelationID: m.CorrelationID,
		Then: func(t ticket.Ticket, at time.Time) ([]any, error) {
			return ticket.DecideAlerts(t, ticket.AlertBatch{Alerts: as, AutoResolve: autoResolve, Policy: policy.Policy(), NewID: newID, At: at}), nil
		},
	})
	if err != nil {
		return nil, err
	}
	idx.Record(res.Ticket.ID, firingKeys(keys[0], as)...)
	return &IncidentOutcome{TicketID: res.Ticket.ID, TicketNumber: res.Ticket.Number, Created: true, Alerts: len(as), sequence: res.Sequence}, nil
}

// firingKeys are the index keys a group's incident answers for: the group,
// and the fingerprint of each alert that fires.
func firingKeys(group string, as []ticket.Alert) []string {
	keys := []string{group}
	for _, a := range as {
		if a.Status == ticketv1.AlertFiring {
			keys = append(keys, "fp:"+a.Fingerprint)
		}
	}
	return keys
}

func anyFiring(as []ticket.Alert) bool {
	for _, a := range as {
		if a.Status == ticketv1.AlertFiring {
			return true
		}
	}
	return false
}

func highest(as []ticket.Alert) string {
	conv := make([]alerts.Alert, len(as))
	for i, a := range as {
		conv[i] = alerts.Alert{Severity: a.Severity}
	}
	return alerts.HighestSeverity(conv)
}

// domainAlert converts a parsed alert, dropping what events cannot carry
// (NUL bytes; a URL that is not absolute).
func domainAlert(a alerts.Alert) ticket.Alert {
	clean := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	labels := make(map[string]string, len(a.Labels))
	for k, v := range a.Labels {
		labels[clean(k)] = clean(v)
	}
	u := a.URL
	if p, err := url.Parse(u); err != nil || !p.IsAbs() {
		u = ""
	}
	return ticket.Alert{Fingerprint: a.Fingerprint, GroupKey: a.Group, Status: a.Status, Title: clean(a.Title),
		Severity: a.Severity, Source: a.Source, URL: u, Labels: labels, StartsAt: a.StartsAt, EndsAt: a.EndsAt}
}

func incidentTitle(as []ticket.Alert) string {
	t := as[0].Title
	if len(as) > 1 {
		t = fmt.Sprintf("%s (and %d more alerts)", t, len(as)-1)
	}
	return ticket.Clip(t, ticket.MaxTitle)
}

func incidentDescription(as []ticket.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Opened by monitoring for %d alert(s):\n", len(as))
	for i, a := range as {
		if i == 50 {
			fmt.Fprintf(&b, "… and %d more (see the ticket's alerts)\n", len(as)-50)
			break
		}
		fmt.Fprintf(&b, "- [%s] %s\n", a.Severity, a.Title)
	}
	return ticket.Clip(b.String(), ticket.MaxDescription)
}
