// Package requesters is intake's reaction to users joining a tenant
// (durable consumer intake__requesters_identified on IDENTITY): tickets
// whose requester was known only by that e-mail address, typically opened
// by mail from an unknown sender whom identity then onboarded as a
// requester, get the user as their requester, so the user sees them.
package requesters

import (
	"context"
	"encoding/json"
	"fmt"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/reaction"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
)

// Name is the handler's name (consumer intake__requesters_identified).
const Name = "requesters_identified"

// Tickets finds a tenant's tickets known by an address only.
type Tickets interface {
	Unidentified(ctx context.Context, tenant, email string) ([]string, error)
}

// Handler returns the reaction. Before it looks in the read model it waits
// (caughtUp) for the read model to reach the end of TICKETS as it is now:
// the ticket that made identity onboard the user was appended before the
// user was, so it is then in the read model.
func Handler(caughtUp func(context.Context) error, rm Tickets, cmds *command.Tickets) reaction.Handler {
	return func(ctx context.Context, e es.Event) error {
		if e.Type != identityv1.TypeUserOnboarded {
			return nil
		}
		var u identityv1.UserOnboarded
		if err := json.Unmarshal(e.Data, &u); err != nil {
			return reaction.Permanent(fmt.Errorf("decode %s: %w", e.ID, err))
		}
		key, err := e.KeyIn(identityv1.Context)
		if err != nil {
			return reaction.Permanent(err)
		}
		tenant := key.Tenant
		if err := caughtUp(ctx); err != nil {
			return fmt.Errorf("wait for the tickets read model: %w", err)
		}
		ids, err := rm.Unidentified(ctx, tenant, u.Email)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := cmds.IdentifyRequester(ctx, tenant, id, u.UserID, u.Email); err != nil {
				return err
			}
		}
		return nil
	}
}
