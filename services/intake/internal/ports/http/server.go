// Package httpport is intake's HTTP port: Echo handlers implementing the
// ServerInterface generated from api/openapi/intake.yaml, and the one place
// where application errors become problem+json responses.
package httpport

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/channels"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/settings"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// HeaderConsistencyToken carries the stream sequence of a write.
const HeaderConsistencyToken = "X-Consistency-Token"

// Server implements the generated ServerInterface.
type Server struct {
	create  *command.CreateTicketHandler
	tickets *command.Tickets
	queries *query.Handler
	d       Deps
}

var _ ServerInterface = (*Server)(nil)

// Deps are the application's handlers the port calls.
type Deps struct {
	Create   *command.CreateTicketHandler
	Tickets  *command.Tickets
	Queries  *query.Handler
	Settings *settings.Service
	Blobs    command.BlobStore
	Channels *channels.Service
	// MailDomain makes each tenant's default address <slug>@MailDomain.
	MailDomain string
	// MaxAttachment is the largest file accepted; MaxUpload the largest
	// multipart body (and inbound mail).
	MaxAttachment, MaxUpload int64
}

// NewServer returns the HTTP port over the application's handlers.
func NewServer(d Deps) *Server {
	return &Server{create: d.Create, tickets: d.Tickets, queries: d.Queries, d: d}
}

// principal is the verified caller (the auth middleware ran first).
func principal(c echo.Context) auth.Principal {
	p, _ := auth.FromContext(c.Request().Context())
	return p
}

// scope is whose tickets the caller may see: every ticket of the tenant
// with tickets:read_all, else only its own.
func scope(p auth.Principal) query.Scope {
	if p.Can(auth.PermTicketsReadAll) {
		return query.Scope{Tenant: p.Tenant}
	}
	return query.Scope{Tenant: p.Tenant, Requester: p.ID}
}

// CreateTicket handles POST /v1/tickets.
func (s *Server) CreateTicket(c echo.Context, params CreateTicketParams) error {
	p := principal(c)
	// The validator has checked the body against the schema (required
	// fields, enums, lengths, no unknown properties); a decoding error that
	// still gets here is a 400 naming the field, through httpx.
	var req CreateTicketRequest
	if err := (&echo.DefaultBinder{}).BindBody(c, &req); err != nil {
		return err
	}
	description := ""
	if req.Description != nil {
		description = *req.Description
	}
	// The requester is the calling user unless someone who may see every
	// ticket logs one for somebody else; an integration (API token) always
	// names the requester.
	requester, requesterID := cmp.Or(p.Email, p.Name, p.ID), p.ID
	switch {
	case p.Kind == auth.KindAPIToken && req.Requester == nil:
		return badField("requester", "is required when an API token logs a ticket")
	case p.Kind == auth.KindAPIToken:
		requester, requesterID = *req.Requester, ""
	case req.Requester != nil && *req.Requester != requester:
		if !p.Can(auth.PermTicketsReadAll) {
			return httpx.NewProblem(http.StatusForbidden, "Permission denied",
				"Requesters log tickets for themselves; leave requester out.",
				httpx.FieldError{Field: "requester", Message: "must be yourself"})
		}
		requester, requesterID = *req.Requester, ""
	}
	var (
		tags, items, watchers []string
		custom                json.RawMessage
	)
	if req.Tags != nil {
		tags = *req.Tags
	}
	if req.ConfigItems != nil {
		items = *req.ConfigItems
	}
	if req.Watchers != nil {
		watchers = *req.Watchers
	}
	if req.CustomFields != nil {
		custom = *req.CustomFields
	}
	key := ""
	if params.IdempotencyKey != nil {
		key = *params.IdempotencyKey
	}
	res, err := s.create.Handle(c.Request().Context(), command.CreateTicket{
		Category:       deref(req.Category),
		Tags:           tags,
		ConfigItems:    items,
		Watchers:       watchers,
		CustomFields:   custom,
		IdempotencyKey: key,
		Tenant:         p.Tenant,
		Type:           string(req.Type),
		Title:          req.Title,
		Description:    description,
		Impact:         string(req.Impact),
		Urgency:        string(req.Urgency),
		Requester:      requester,
		RequesterID:    requesterID,
		Channel:        ticketv1.ChannelAPI,
		Actor:          p.Actor(),
		CorrelationID:  httpx.RequestID(c),
	})
	if err != nil {
		return problem(c, err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, "/v1/tickets/"+res.Ticket.ID)
	h.Set("ETag", etag(int64(res.Ticket.Version)))
	h.Set(HeaderConsistencyToken, strconv.FormatUint(res.Sequence, 10))
	if res.Replayed {
		return c.JSON(http.StatusOK, ticketFromDomain(res.Ticket))
	}
	return c.JSON(http.StatusCreated, ticketFromDomain(res.Ticket))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// GetTicket handles GET /v1/tickets/{id}.
func (s *Server) GetTicket(c echo.Context, id TicketRef, p GetTicketParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	t, err := s.queries.Ticket(c.Request().Context(), scope(principal(c)), id, token)
	if err != nil {
		return problem(c, err)
	}
	c.Response().Header().Set("ETag", etag(t.Version))
	return c.JSON(http.StatusOK, ticketFromView(t))
}

// ListTickets handles GET /v1/tickets.
func (s *Server) ListTickets(c echo.Context, p ListTicketsParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	f := query.Filter{CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore}
	if p.Status != nil {
		f.Status = string(*p.Status)
	}
	if p.Type != nil {
		f.Type = string(*p.Type)
	}
	if p.Q != nil {
		f.Query = *p.Q
	}
	if p.Priority != nil {
		f.Priority = string(*p.Priority)
	}
	f.Requester, f.Assignee = deref(p.Requester), deref(p.Assignee)
	if p.Tag != nil {
		f.Tags = ticket.NormalizeTags(*p.Tag)
	}
	if p.Limit != nil {
		if *p.Limit < 1 || *p.Limit > query.MaxLimit {
			return badField("query.limit", "must be between 1 and "+strconv.Itoa(query.MaxLimit))
		}
		f.Limit = *p.Limit
	}
	if p.Cursor != nil {
		cur, err := query.DecodeCursor(*p.Cursor)
		if err != nil {
			return badCursor()
		}
		f.After = &cur
	}
	page, err := s.queries.List(c.Request().Context(), scope(principal(c)), f, token)
	if err != nil {
		return problem(c, err)
	}
	out := TicketPage{Items: make([]Ticket, len(page.Items))}
	for i, t := range page.Items {
		out.Items[i] = ticketFromView(t)
	}
	if page.Next != nil {
		next := page.Next.Encode()
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}

// ListTicketEvents handles GET /v1/tickets/{id}/events.
func (s *Server) ListTicketEvents(c echo.Context, id TicketRef, p ListTicketEventsParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	events, err := s.queries.Events(c.Request().Context(), scope(principal(c)), id, token)
	if err != nil {
		return problem(c, err)
	}
	out := TicketEventList{Items: make([]TicketEvent, len(events))}
	for i, e := range events {
		out.Items[i] = eventFromView(e)
	}
	return c.JSON(http.StatusOK, out)
}

func consistencyToken(h *string) (uint64, error) {
	if h == nil || *h == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(*h, 10, 64)
	if err != nil {
		return 0, badField("header."+HeaderConsistencyToken, "must be a stream sequence from an earlier write")
	}
	return v, nil
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ticketFromDomain answers a command with the ticket as the aggregate
// has it, in the read model's shape (what only the read model knows, the
// assignee and link times, is left out).
func ticketFromDomain(t ticket.Ticket) Ticket {
	v := query.Ticket{
		ID: t.ID, Number: t.Number, Type: t.Type, Status: t.Status, Title: t.Title, Description: t.Description,
		Impact: t.Impact, Urgency: t.Urgency, Priority: t.Priority, Requester: t.Requester, RequesterID: t.RequesterID,
		Channel: t.Channel, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Version: int64(t.Version),
		Category: t.Category, Tags: t.Tags, ConfigItems: t.ConfigItems, Watchers: t.Watchers, CustomFields: t.CustomFields,
		PendingReason: t.PendingReason, ResolutionCode: t.ResolutionCode, ResolutionNote: t.ResolutionNote,
		ResolvedAt: optionalTime(t.ResolvedAt), AutoCloseAt: optionalTime(t.AutoCloseAt), ReopenUntil: optionalTime(t.ReopenUntil),
		ClosedAt: optionalTime(t.ClosedAt), FirstResponseAt: optionalTime(t.FirstResponseAt),
		MergedInto: t.MergedInto, FollowUpOf: t.FollowUpOf, Comments: t.Comments, Attachments: t.Attachments,
	}
	if t.Satisfaction != 0 {
		v.Satisfaction = &t.Satisfaction
	}
	for _, l := range t.Links {
		v.Links = append(v.Links, query.Link{Kind: l.Kind, TargetID: l.Target, TargetNumber: l.TargetNumber})
	}
	return ticketFromView(v)
}

// resolution is the API's resolution, nil for none.
func resolution(code, note string) *struct {
	Code string `json:"code"`
	Note string `json:"note"`
} {
	if code == "" {
		return nil
	}
	return &struct {
		Code string `json:"code"`
		Note string `json:"note"`
	}{Code: code, Note: note}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func list(l []string) *[]string {
	if l == nil {
		l = []string{}
	}
	return &l
}

func custom(raw json.RawMessage) *json.RawMessage {
	if len(raw) == 0 {
		raw = json.RawMessage(`{}`)
	}
	return &raw
}

func ticketFromView(t query.Ticket) Ticket {
	out := Ticket{
		Id: t.ID, Number: t.Number, Type: TicketType(t.Type), Status: TicketStatus(t.Status),
		Title: t.Title, Description: t.Description, Impact: Level(t.Impact), Urgency: Level(t.Urgency),
		Priority: Priority(t.Priority), Requester: t.Requester, RequesterId: optional(t.RequesterID), Channel: t.Channel,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Version: t.Version,
		Category: &t.Category, Tags: list(t.Tags), ConfigItems: list(t.ConfigItems), Watchers: list(t.Watchers),
		CustomFields: custom(t.CustomFields), AssigneeId: optional(t.AssigneeID), PendingReason: optional(t.PendingReason),
		ResolvedAt: t.ResolvedAt, AutoCloseAt: t.AutoCloseAt, ReopenUntil: t.ReopenUntil, ClosedAt: t.ClosedAt,
		FirstResponseAt: t.FirstResponseAt, MergedInto: optional(t.MergedInto), FollowUpOf: optional(t.FollowUpOf),
		Satisfaction: t.Satisfaction, CommentCount: &t.Comments, AttachmentCount: &t.Attachments,
	}
	out.Resolution = resolution(t.ResolutionCode, t.ResolutionNote)
	links := make([]Link, len(t.Links))
	for i, l := range t.Links {
		links[i] = Link{Kind: LinkKind(l.Kind), TargetId: l.TargetID, TargetNumber: l.TargetNumber, CreatedAt: optionalTime(l.CreatedAt)}
	}
	out.Links = &links
	return out
}

// eventFromView maps one history entry to its API shape.
func eventFromView(e query.Event) TicketEvent {
	out := TicketEvent{
		Id: e.ID, Type: e.Type, Time: e.Time, Actor: e.Actor,
		Sequence: e.Sequence, Version: e.Version, Data: e.Data,
	}
	if e.TraceID != "" {
		tid := e.TraceID
		out.TraceId = &tid
	}
	return out
}
