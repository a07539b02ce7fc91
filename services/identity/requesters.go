package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/reaction"
	"github.com/opsdesk/opsdesk/services/identity/internal/app"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// RequestersFromMail is the reaction (durable consumer
// identity__requesters_from_mail on TICKETS) that onboards the unknown
// sender of a mail that opened a ticket as a requester of the tenant.
// Intake only opens such a ticket when the tenant's policy is
// create_requester; a ticket whose requester is known carries its user id
// and is skipped.
const RequestersFromMail = "requesters_from_mail"

func requestersFromMail(a *app.App, log *slog.Logger) reaction.Handler {
	return func(ctx context.Context, e es.Event) error {
		if e.Type != ticketv1.TypeTicketCreated {
			return nil
		}
		var c ticketv1.TicketCreated
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return reaction.Permanent(fmt.Errorf("decode %s: %w", e.ID, err))
		}
		if c.Channel != ticketv1.ChannelEmail || c.RequesterID != "" {
			return nil
		}
		key, err := e.KeyIn(ticketv1.Context)
		if err != nil {
			return reaction.Permanent(err)
		}
		created, err := a.OnboardRequester(app.WithMeta(ctx, app.Meta{CorrelationID: e.CorrelationID}), key.Tenant, c.Requester)
		var ve *domain.ValidationError
		switch {
		case errors.As(err, &ve), errors.Is(err, domain.ErrNotFound):
			// An address identity does not take, or a tenant it does not
			// know: retrying cannot help; the ticket keeps its address.
			return reaction.Permanent(err)
		case err != nil:
			return err
		}
		if created {
			log.InfoContext(ctx, "requester onboarded from mail", "tenant", e.Tenant, "ticket", c.TicketID)
		}
		return nil
	}
}
