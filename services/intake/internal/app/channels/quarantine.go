package channels

import (
	"context"
	"errors"

	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/alerts"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
	"github.com/opsdesk/opsdesk/services/intake/internal/mail"
)

// ErrStillFailing: a re-processed item still cannot be processed; the item
// stays held with the new reason.
var ErrStillFailing = errors.New("the item still cannot be processed")

// ErrAlreadyProcessed: the item was re-processed before.
var ErrAlreadyProcessed = errors.New("the item was already re-processed")

// Quarantine lists the tenant's held and processed items.
func (s *Service) Quarantine(ctx context.Context, tenant, status string) ([]pgstore.QuarantineItem, error) {
	return s.state.QuarantineList(ctx, tenant, status)
}

// QuarantinedRaw returns an item's raw bytes.
func (s *Service) QuarantinedRaw(ctx context.Context, tenant, id string) ([]byte, error) {
	q, err := s.state.QuarantineGet(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	b, err := s.state.Blob(ctx, tenant, q.BlobID)
	return b.Data, err
}

// Reprocess runs a held item through its channel again: after a parser fix
// or a settings change it may now go through. It answers the item as it is
// afterwards; ErrStillFailing (with the item updated) when it does not.
func (s *Service) Reprocess(ctx context.Context, tenant, id string, m command.Meta) (pgstore.QuarantineItem, error) {
	q, err := s.state.QuarantineGet(ctx, tenant, id)
	if err != nil {
		return pgstore.QuarantineItem{}, err
	}
	if q.Status != pgstore.QuarantineHeld {
		return q, ErrAlreadyProcessed
	}
	ticketID, err := s.reprocess(ctx, tenant, q, m)
	var (
		pe *mail.ParseError
		ve *alerts.ValidationError
		te *ticket.ValidationError
	)
	if errors.As(err, &pe) || errors.As(err, &ve) || errors.As(err, &te) {
		q.Reason = err.Error()
		if err := s.state.QuarantineResolve(ctx, tenant, id, pgstore.QuarantineHeld, q.Reason, "", s.now()); err != nil {
			return q, err
		}
		return q, ErrStillFailing
	}
	if err != nil {
		return q, err
	}
	q.Status, q.TicketID = pgstore.QuarantineReprocessed, ticketID
	return q, s.state.QuarantineResolve(ctx, tenant, id, q.Status, q.Reason, ticketID, s.now())
}

func (s *Service) reprocess(ctx context.Context, tenant string, q pgstore.QuarantineItem, m command.Meta) (string, error) {
	switch q.Kind {
	case "email":
		out, err := s.reprocessEmail(ctx, tenant, q, m)
		return out.TicketID, err
	default:
		b, err := s.state.Blob(ctx, tenant, q.BlobID)
		if err != nil {
			return "", err
		}
		batch, err := alerts.Parse(b.Data, "application/json")
		if err != nil {
			return "", err
		}
		out, err := s.applyAlerts(ctx, tenant, batch, m)
		if err != nil || len(out.Incidents) == 0 {
			return "", err
		}
		return out.Incidents[0].TicketID, nil
	}
}
