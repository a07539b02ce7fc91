package httpport

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	intakev1 "github.com/opsdesk/opsdesk/api/events/intake/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// ref is the ticket a command of the caller acts on: requesters (without
// tickets:read_all) only reach their own.
func ref(p auth.Principal, id string) command.Ref {
	r := command.Ref{Tenant: p.Tenant, ID: id}
	if !p.Can(auth.PermTicketsReadAll) {
		r.Requester = p.ID
	}
	return r
}

func meta(c echo.Context, p auth.Principal) command.Meta {
	return command.Meta{Actor: p.Actor(), CorrelationID: httpx.RequestID(c)}
}

// ifMatch parses If-Match: a version ("3", W/"3") or *, which matches any.
func ifMatch(h *IfMatch) (*uint64, error) {
	if h == nil || *h == "" || *h == "*" {
		return nil, nil
	}
	v := strings.Trim(strings.TrimPrefix(*h, "W/"), `"`)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, badField("header.If-Match", `must be an ETag of this resource, e.g. "3"`)
	}
	return &n, nil
}

// written answers a command's result: the ticket after it, or the follow-up
// opened instead (201 with its Location).
func written(c echo.Context, res command.Result) error {
	h := c.Response().Header()
	h.Set(HeaderConsistencyToken, strconv.FormatUint(res.Sequence, 10))
	if res.FollowUp != nil {
		h.Set(echo.HeaderLocation, "/v1/tickets/"+res.FollowUp.ID)
		h.Set("ETag", etag(int64(res.FollowUp.Version)))
		return c.JSON(http.StatusCreated, ticketFromDomain(*res.FollowUp))
	}
	h.Set("ETag", etag(int64(res.Ticket.Version)))
	return c.JSON(http.StatusOK, ticketFromDomain(res.Ticket))
}

// bind decodes a JSON body the validator has checked; a missing optional
// body is an empty one.
func bind(c echo.Context, v any) error {
	if c.Request().ContentLength == 0 {
		return nil
	}
	return (&echo.DefaultBinder{}).BindBody(c, v)
}

// UpdateTicket handles PATCH /v1/tickets/{id}.
func (s *Server) UpdateTicket(c echo.Context, id TicketRef, params UpdateTicketParams) error {
	p := principal(c)
	v, err := ifMatch(params.IfMatch)
	if err != nil {
		return err
	}
	var req UpdateTicketRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	u := ticket.Update{Title: req.Title, Description: req.Description, Category: req.Category,
		Impact: (*string)(req.Impact), Urgency: (*string)(req.Urgency), Tags: req.Tags, ConfigItems: req.ConfigItems,
		Watchers: req.Watchers}
	if req.CustomFields != nil {
		u.CustomFields = *req.CustomFields
	}
	res, err := s.tickets.Update(c.Request().Context(), ref(p, id), v, meta(c, p), u)
	if err != nil {
		return problem(c, err)
	}
	return written(c, res)
}

// transition runs one lifecycle action. Requesters reach only the actions
// routed with tickets:comment (close, reopen, cancel), on their own tickets.
func (s *Server) transition(c echo.Context, id string, h *IfMatch, t ticket.Transition) error {
	p := principal(c)
	v, err := ifMatch(h)
	if err != nil {
		return err
	}
	r := ref(p, id)
	if !p.Can(auth.PermTicketsWork) {
		r.Requester = p.ID
	}
	res, err := s.tickets.Transition(c.Request().Context(), r, v, meta(c, p), t)
	if err != nil {
		return problem(c, err)
	}
	return written(c, res)
}

func (s *Server) simpleAction(c echo.Context, id string, h *IfMatch, action string) error {
	var req ActionRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	return s.transition(c, id, h, ticket.Transition{Action: action, Reason: deref(req.Reason)})
}

// OpenTicket handles POST /v1/tickets/{id}/open.
func (s *Server) OpenTicket(c echo.Context, id TicketRef, p OpenTicketParams) error {
	return s.simpleAction(c, id, p.IfMatch, ticket.ActionOpen)
}

// StartTicket handles POST /v1/tickets/{id}/start.
func (s *Server) StartTicket(c echo.Context, id TicketRef, p StartTicketParams) error {
	return s.simpleAction(c, id, p.IfMatch, ticket.ActionStart)
}

// CloseTicket handles POST /v1/tickets/{id}/close.
func (s *Server) CloseTicket(c echo.Context, id TicketRef, p CloseTicketParams) error {
	return s.simpleAction(c, id, p.IfMatch, ticket.ActionClose)
}

// ReopenTicket handles POST /v1/tickets/{id}/reopen.
func (s *Server) ReopenTicket(c echo.Context, id TicketRef, p ReopenTicketParams) error {
	return s.simpleAction(c, id, p.IfMatch, ticket.ActionReopen)
}

// CancelTicket handles POST /v1/tickets/{id}/cancel.
func (s *Server) CancelTicket(c echo.Context, id TicketRef, p CancelTicketParams) error {
	return s.simpleAction(c, id, p.IfMatch, ticket.ActionCancel)
}

// PendTicket handles POST /v1/tickets/{id}/pend.
func (s *Server) PendTicket(c echo.Context, id TicketRef, p PendTicketParams) error {
	var req PendRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	return s.transition(c, id, p.IfMatch, ticket.Transition{Action: ticket.ActionPend, Reason: string(req.Reason), Note: deref(req.Note)})
}

// ResolveTicket handles POST /v1/tickets/{id}/resolve.
func (s *Server) ResolveTicket(c echo.Context, id TicketRef, p ResolveTicketParams) error {
	var req ResolveRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	return s.transition(c, id, p.IfMatch, ticket.Transition{Action: ticket.ActionResolve, Code: string(req.Code), Note: req.Note})
}

// AddComment handles POST /v1/tickets/{id}/comments.
func (s *Server) AddComment(c echo.Context, id TicketRef, params AddCommentParams) error {
	p := principal(c)
	v, err := ifMatch(params.IfMatch)
	if err != nil {
		return err
	}
	var req CommentRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	internal := req.Internal != nil && *req.Internal
	if internal && !p.Can(auth.PermTicketsWork) {
		return httpx.NewProblem(http.StatusForbidden, "Permission denied", "Only agents write internal notes.",
			httpx.FieldError{Field: "internal", Message: "requires tickets:work"})
	}
	r := ref(p, id)
	if !p.Can(auth.PermTicketsWork) {
		r.Requester = p.ID
	}
	res, err := s.tickets.Comment(c.Request().Context(), r, v, meta(c, p), ticket.Comment{
		Body: req.Body, Internal: internal, AuthorID: p.ID, Author: cmp.Or(p.Email, p.Name, p.ID),
		AuthorRole: authorRole(p), Channel: "api",
	})
	if err != nil {
		return problem(c, err)
	}
	return written(c, res)
}

// authorRole is agent for callers who work tickets; the application turns
// an agent commenting on their own ticket into its requester.
func authorRole(p auth.Principal) string {
	if p.Can(auth.PermTicketsWork) {
		return "agent"
	}
	return "requester"
}

// ListComments handles GET /v1/tickets/{id}/comments.
func (s *Server) ListComments(c echo.Context, id TicketRef, p ListCommentsParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	comments, err := s.queries.Comments(c.Request().Context(), scope(principal(c)), id, token)
	if err != nil {
		return problem(c, err)
	}
	out := CommentList{Items: make([]Comment, len(comments))}
	for i, cm := range comments {
		out.Items[i] = Comment{Id: cm.ID, Body: cm.Body, Internal: cm.Internal, AuthorId: optional(cm.AuthorID),
			Author: cm.Author, AuthorRole: CommentAuthorRole(cm.AuthorRole), Channel: cm.Channel, CreatedAt: cm.CreatedAt}
	}
	return c.JSON(http.StatusOK, out)
}

// LinkTicket handles POST /v1/tickets/{id}/links.
func (s *Server) LinkTicket(c echo.Context, id TicketRef, params LinkTicketParams) error {
	p := principal(c)
	v, err := ifMatch(params.IfMatch)
	if err != nil {
		return err
	}
	var req LinkRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := s.tickets.Link(c.Request().Context(), ref(p, id), v, meta(c, p), string(req.Kind), req.Target)
	if err != nil {
		return problem(c, err)
	}
	return written(c, res)
}

// UnlinkTicket handles DELETE /v1/tickets/{id}/links/{kind}/{target}.
func (s *Server) UnlinkTicket(c echo.Context, id TicketRef, kind LinkKind, target Token, _ UnlinkTicketParams) error {
	p := principal(c)
	res, err := s.tickets.Unlink(c.Request().Context(), ref(p, id), meta(c, p), string(kind), target)
	if err != nil {
		return problem(c, err)
	}
	return written(c, res)
}

// RateTicket handles POST /v1/tickets/{id}/satisfaction: only the
// requester rates, so the ref is always scoped to the caller.
func (s *Server) RateTicket(c echo.Context, id TicketRef, _ RateTicketParams) error {
	p := principal(c)
	var req SatisfactionRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	r := command.Ref{Tenant: p.Tenant, ID: id, Requester: p.ID}
	res, err := s.tickets.Rate(c.Request().Context(), r, meta(c, p), ticket.Rate{Rating: req.Rating, Comment: deref(req.Comment), RaterID: p.ID})
	if err != nil {
		return problem(c, err)
	}
	return written(c, res)
}

// CountTickets handles GET /v1/ticket-counts.
func (s *Server) CountTickets(c echo.Context, p CountTicketsParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	counts, err := s.queries.Counts(c.Request().Context(), scope(principal(c)), token)
	if err != nil {
		return problem(c, err)
	}
	out := TicketCounts{Counts: map[string]int{}}
	for st, n := range counts {
		out.Counts[st] = n
		out.Total += n
	}
	return c.JSON(http.StatusOK, out)
}

// GetTicketTimeline handles GET /v1/tickets/{id}/timeline: the history
// with each entry's kind, internal entries hidden from requesters.
func (s *Server) GetTicketTimeline(c echo.Context, id TicketRef, p GetTicketTimelineParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	events, err := s.queries.Events(c.Request().Context(), scope(principal(c)), id, token)
	if err != nil {
		return problem(c, err)
	}
	out := Timeline{Items: make([]TimelineEntry, len(events))}
	for i, e := range events {
		kind := TimelineEntryKindEvent
		switch e.Type {
		case "opsdesk.ticket.commented.v1":
			kind = TimelineEntryKindComment
		case "opsdesk.ticket.attachment_added.v1":
			kind = TimelineEntryKindAttachment
		}
		data, internal := json.RawMessage(e.Data), e.Internal
		out.Items[i] = TimelineEntry{Kind: kind, Type: e.Type, Time: e.Time, Actor: e.Actor, Sequence: e.Sequence,
			Internal: &internal, Data: &data}
	}
	return c.JSON(http.StatusOK, out)
}

// GetIntakeSettings handles GET /v1/settings/intake.
func (s *Server) GetIntakeSettings(c echo.Context, _ GetIntakeSettingsParams) error {
	p := principal(c)
	st, err := s.d.Settings.Get(c.Request().Context(), p.Tenant)
	if err != nil {
		return problem(c, err)
	}
	return s.settingsAnswer(c, p, st.SettingsUpdated, st.Version)
}

// PutIntakeSettings handles PUT /v1/settings/intake.
func (s *Server) PutIntakeSettings(c echo.Context, params PutIntakeSettingsParams) error {
	p := principal(c)
	v, err := ifMatch(params.IfMatch)
	if err != nil {
		return err
	}
	var req IntakeSettingsRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	in := intakev1.SettingsUpdated{ReopenWindowDays: req.ReopenWindowDays, AutoCloseDays: req.AutoCloseDays,
		UnknownSenders: string(req.UnknownSenders), AlertsAutoResolve: req.AlertsAutoResolve}
	if req.CustomFieldsSchema != nil {
		in.CustomFieldsSchema = *req.CustomFieldsSchema
	}
	if req.InboundAddresses != nil {
		in.InboundAddresses = *req.InboundAddresses
	}
	st, _, err := s.d.Settings.Put(c.Request().Context(), p.Tenant, v, in, p.Actor(), httpx.RequestID(c))
	if err != nil {
		return problem(c, err)
	}
	return s.settingsAnswer(c, p, st.SettingsUpdated, st.Version)
}

func (s *Server) settingsAnswer(c echo.Context, p auth.Principal, st intakev1.SettingsUpdated, version uint64) error {
	out := IntakeSettings{ReopenWindowDays: st.ReopenWindowDays, AutoCloseDays: st.AutoCloseDays,
		UnknownSenders: IntakeSettingsUnknownSenders(st.UnknownSenders), AlertsAutoResolve: st.AlertsAutoResolve,
		Version: int64(version), DefaultAddress: s.d.Channels.DefaultAddress(c.Request().Context(), p.Tenant)}
	if len(st.CustomFieldsSchema) > 0 {
		raw := json.RawMessage(st.CustomFieldsSchema)
		out.CustomFieldsSchema = &raw
	}
	addrs := append([]string{}, st.InboundAddresses...)
	out.InboundAddresses = &addrs
	c.Response().Header().Set("ETag", etag(int64(version)))
	return c.JSON(http.StatusOK, out)
}
