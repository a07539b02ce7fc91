package ticket

import (
	"slices"
	"strings"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// LinkKinds are the kinds a client may create; the rest (duplicated_by,
// causes, follow_up_of, followed_up_by) are recorded as inverses or by the
// follow-up flow.
var LinkKinds = []string{ticketv1.LinkParent, ticketv1.LinkChild, ticketv1.LinkDuplicateOf, ticketv1.LinkCausedBy, ticketv1.LinkRelated}

// inverse is the kind recorded on the target of a link.
var inverse = map[string]string{
	ticketv1.LinkParent:       ticketv1.LinkChild,
	ticketv1.LinkChild:        ticketv1.LinkParent,
	ticketv1.LinkDuplicateOf:  ticketv1.LinkDuplicatedBy,
	ticketv1.LinkDuplicatedBy: ticketv1.LinkDuplicateOf,
	ticketv1.LinkCausedBy:     ticketv1.LinkCauses,
	ticketv1.LinkCauses:       ticketv1.LinkCausedBy,
	ticketv1.LinkRelated:      ticketv1.LinkRelated,
	ticketv1.LinkFollowUpOf:   ticketv1.LinkFollowedUpBy,
	ticketv1.LinkFollowedUpBy: ticketv1.LinkFollowUpOf,
}

// Inverse returns the kind a link of kind is recorded with on its target.
func Inverse(kind string) string { return inverse[kind] }

// DecideLink links a to b with kind (read from a: "parent" means b is a's
// parent) and returns the events of each. duplicate_of merges: a is closed
// as a duplicate of b, and a's requester (when a user) starts watching b.
// Rules: both exist and differ; no link twice; a ticket has one parent, and
// the two are not already linked the other way round; caused_by points at
// a problem; neither side of a merge is closed, cancelled or merged.
func DecideLink(a, b Ticket, kind string) (forA, forB []any, err error) {
	if !a.Exists() || !b.Exists() {
		return nil, nil, ErrNotFound
	}
	if !slices.Contains(LinkKinds, kind) {
		return nil, nil, &ValidationError{Fields: []FieldError{{Field: "kind", Message: "must be one of " + strings.Join(LinkKinds, ", ")}}}
	}
	conflict := func(reason string) ([]any, []any, error) { return nil, nil, &ConflictError{Reason: reason} }
	switch {
	case a.ID == b.ID:
		return conflict("a ticket cannot be linked to itself")
	case a.HasLink(kind, b.ID):
		return conflict("the tickets are already linked this way")
	case len(a.Links) >= MaxLinksPerTicket || len(b.Links) >= MaxLinksPerTicket:
		return conflict("a ticket holds at most 200 links")
	}
	for _, l := range a.Links {
		if l.Target == b.ID && (l.Kind == ticketv1.LinkParent || l.Kind == ticketv1.LinkChild) &&
			(kind == ticketv1.LinkParent || kind == ticketv1.LinkChild) {
			return conflict("the tickets are already parent and child")
		}
	}
	switch kind {
	case ticketv1.LinkParent:
		if parentOf(a) != "" {
			return conflict("the ticket already has a parent, " + parentOf(a))
		}
	case ticketv1.LinkChild:
		if parentOf(b) != "" {
			return conflict(b.Number + " already has a parent, " + parentOf(b))
		}
	case ticketv1.LinkCausedBy:
		if b.Type != ticketv1.TypeProblem {
			return conflict("caused_by must point at a problem; " + b.Number + " is a " + b.Type)
		}
	case ticketv1.LinkDuplicateOf:
		switch {
		case a.Terminal() || a.MergedInto != "":
			return conflict("the ticket is " + a.Status + " and cannot be merged")
		case b.Terminal() || b.MergedInto != "":
			return conflict(b.Number + " is " + b.Status + "; merge into an open ticket")
		}
		forA = []any{
			ticketv1.TicketLinked{Kind: kind, Target: b.ID, TargetNumber: b.Number},
			ticketv1.TicketMerged{Into: b.ID, IntoNumber: b.Number, Requester: a.Requester, RequesterID: a.RequesterID},
			ticketv1.TicketClosed{From: a.Status, Reason: ticketv1.CloseMerged},
		}
		forB = []any{ticketv1.TicketLinked{Kind: Inverse(kind), Target: a.ID, TargetNumber: a.Number}}
		if w := a.RequesterID; w != "" && w != b.RequesterID && !slices.Contains(b.Watchers, w) {
			watchers := append(slices.Clone(b.Watchers), w)
			forB = append(forB, ticketv1.TicketUpdated{Watchers: &watchers})
		}
		return forA, forB, nil
	}
	return []any{ticketv1.TicketLinked{Kind: kind, Target: b.ID, TargetNumber: b.Number}},
		[]any{ticketv1.TicketLinked{Kind: Inverse(kind), Target: a.ID, TargetNumber: a.Number}}, nil
}

// DecideUnlink removes a link of kind from a to b, and its inverse from b.
// Merges and follow-ups are history and cannot be unlinked.
func DecideUnlink(a, b Ticket, kind string) (forA, forB []any, err error) {
	if !a.Exists() || !b.Exists() {
		return nil, nil, ErrNotFound
	}
	if !a.HasLink(kind, b.ID) {
		return nil, nil, ErrNotFound
	}
	switch kind {
	case ticketv1.LinkDuplicateOf, ticketv1.LinkDuplicatedBy, ticketv1.LinkFollowUpOf, ticketv1.LinkFollowedUpBy:
		return nil, nil, &ConflictError{Reason: kind + " links record a merge or a follow-up and cannot be removed"}
	}
	return []any{ticketv1.TicketUnlinked{Kind: kind, Target: b.ID}},
		[]any{ticketv1.TicketUnlinked{Kind: Inverse(kind), Target: a.ID}}, nil
}

func parentOf(t Ticket) string {
	for _, l := range t.Links {
		if l.Kind == ticketv1.LinkParent {
			return l.TargetNumber
		}
	}
	return ""
}
