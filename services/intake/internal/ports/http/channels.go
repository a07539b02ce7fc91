package httpport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/channels"
)

// readBody reads a raw body up to limit; over it is 413 naming the limit.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, limit+1))
	if err != nil {
		return nil, bodyError(err, "body", "could not be read")
	}
	if int64(len(b)) > limit {
		return nil, httpx.NewProblem(http.StatusRequestEntityTooLarge, "Request too large",
			fmt.Sprintf("The body is larger than the limit of %d bytes.", limit))
	}
	if len(b) == 0 {
		return nil, badField("body", "must not be empty")
	}
	return b, nil
}

// ReceiveEmail handles POST /v1/inbound/email (a raw message; the route
// skips spec validation, the body is not JSON).
func (s *Server) ReceiveEmail(c echo.Context, _ ReceiveEmailParams) error {
	p := principal(c)
	raw, err := readBody(c, s.d.MaxUpload)
	if err != nil {
		return err
	}
	out, err := s.d.Channels.ReceiveEmail(c.Request().Context(), p.Tenant, raw, meta(c, p))
	if err != nil {
		return problem(c, err)
	}
	if out.Sequence != 0 {
		c.Response().Header().Set(HeaderConsistencyToken, strconv.FormatUint(out.Sequence, 10))
	}
	status := http.StatusOK
	if out.Outcome == channels.OutcomeQuarantined || out.Outcome == channels.OutcomeDropped {
		status = http.StatusAccepted
	}
	return c.JSON(status, InboundResult{Outcome: InboundResultOutcome(out.Outcome), TicketId: optional(out.TicketID),
		TicketNumber: optional(out.TicketNumber), Reason: optional(out.Reason), QuarantineId: optional(out.QuarantineID)})
}

// ReceiveAlerts handles POST /v1/inbound/alerts. The route skips spec
// validation: the alert parser names every bad field itself.
func (s *Server) ReceiveAlerts(c echo.Context, _ ReceiveAlertsParams) error {
	p := principal(c)
	body, err := readBody(c, s.d.MaxUpload)
	if err != nil {
		return err
	}
	out, err := s.d.Channels.ReceiveAlerts(c.Request().Context(), p.Tenant, body, c.Request().Header.Get(echo.HeaderContentType), meta(c, p))
	var qe *channels.QuarantinedError
	if errors.As(err, &qe) {
		fields := make([]httpx.FieldError, len(qe.Invalid.Fields))
		for i, f := range qe.Invalid.Fields {
			fields[i] = httpx.FieldError{Field: f.Field, Message: f.Message}
		}
		return httpx.NewProblem(http.StatusBadRequest, httpx.TitleInvalidRequest,
			"The alert payload is invalid; it is kept in the quarantine as "+qe.QuarantineID+".", fields...)
	}
	if err != nil {
		return problem(c, err)
	}
	if out.Sequence != 0 {
		c.Response().Header().Set(HeaderConsistencyToken, strconv.FormatUint(out.Sequence, 10))
	}
	res := AlertsResult{Ignored: &out.Ignored}
	res.Incidents = make([]struct {
		Alerts       int    `json:"alerts"`
		Created      bool   `json:"created"`
		TicketId     string `json:"ticket_id"`
		TicketNumber string `json:"ticket_number"`
	}, len(out.Incidents)) // [] rather than null when there are none
	for n, i := range out.Incidents {
		res.Incidents[n].Alerts, res.Incidents[n].Created = i.Alerts, i.Created
		res.Incidents[n].TicketId, res.Incidents[n].TicketNumber = i.TicketID, i.TicketNumber
	}
	return c.JSON(http.StatusOK, res)
}

func quarantineItem(q pgstore.QuarantineItem) QuarantineItem {
	return QuarantineItem{Id: q.ID, Kind: QuarantineItemKind(q.Kind), Reason: q.Reason, Sender: optional(q.Sender),
		ReceivedAt: q.ReceivedAt, Status: QuarantineItemStatus(q.Status), TicketId: optional(q.TicketID)}
}

// ListQuarantine handles GET /v1/quarantine.
func (s *Server) ListQuarantine(c echo.Context, params ListQuarantineParams) error {
	status := ""
	if params.Status != nil {
		status = string(*params.Status)
	}
	items, err := s.d.Channels.Quarantine(c.Request().Context(), principal(c).Tenant, status)
	if err != nil {
		return problem(c, err)
	}
	out := QuarantineList{Items: make([]QuarantineItem, len(items))}
	for i, q := range items {
		out.Items[i] = quarantineItem(q)
	}
	return c.JSON(http.StatusOK, out)
}

// GetQuarantinedRaw handles GET /v1/quarantine/{qid}/raw.
func (s *Server) GetQuarantinedRaw(c echo.Context, qid Token, _ GetQuarantinedRawParams) error {
	raw, err := s.d.Channels.QuarantinedRaw(c.Request().Context(), principal(c).Tenant, qid)
	if err != nil {
		return problem(c, err)
	}
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+qid+`.raw"`)
	return c.Blob(http.StatusOK, echo.MIMEOctetStream, raw)
}

// ReprocessQuarantined handles POST /v1/quarantine/{qid}/reprocess.
func (s *Server) ReprocessQuarantined(c echo.Context, qid Token, _ ReprocessQuarantinedParams) error {
	p := principal(c)
	q, err := s.d.Channels.Reprocess(c.Request().Context(), p.Tenant, qid, meta(c, p))
	switch {
	case errors.Is(err, channels.ErrStillFailing):
		return httpx.NewProblem(http.StatusConflict, "Still cannot be processed", "The item stays held: "+q.Reason+".")
	case errors.Is(err, channels.ErrAlreadyProcessed):
		return httpx.NewProblem(http.StatusConflict, "Already processed", "The item was re-processed before.")
	case err != nil:
		return problem(c, err)
	}
	return c.JSON(http.StatusOK, quarantineItem(q))
}
