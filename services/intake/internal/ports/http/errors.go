package httpport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/channels"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/settings"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
	"github.com/opsdesk/opsdesk/services/intake/internal/mail"
)

// retryAfter is what 503 answers tell clients to wait: an outage of NATS or
// a lagging read model is typically over within a second or two.
const retryAfter = time.Second

// problem maps an application error to its HTTP answer. It is the only
// place that does; anything it does not know is returned as is and becomes
// a logged 500 in httpx's error handler.
func problem(c echo.Context, err error) error {
	var (
		ve *ticket.ValidationError
		te *ticket.TransitionError
		ce *ticket.ConflictError
		tl *mail.TooLargeError
		re *channels.RejectedError
	)
	switch {
	case errors.As(err, &ve):
		fields := make([]httpx.FieldError, len(ve.Fields))
		msgs := make([]string, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = httpx.FieldError{Field: f.Field, Message: f.Message}
			msgs[i] = f.Field + " " + f.Message
		}
		return httpx.NewProblem(http.StatusBadRequest, httpx.TitleInvalidRequest,
			"The ticket is invalid: "+strings.Join(msgs, "; ")+".", fields...)
	case errors.Is(err, es.ErrInvalidKey):
		return httpx.NewProblem(http.StatusBadRequest, httpx.TitleInvalidRequest, "The caller's tenant is not a valid tenant id.")
	case errors.Is(err, query.ErrNotFound), errors.Is(err, ticket.ErrNotFound):
		return httpx.NewProblem(http.StatusNotFound, "Ticket not found",
			"There is no ticket "+c.Param("id")+" in this tenant.")
	case errors.Is(err, pgstore.ErrNotFound):
		return httpx.NewProblem(http.StatusNotFound, "Not found", "There is no such item in this tenant.")
	case errors.As(err, &te):
		p := httpx.NewProblem(http.StatusConflict, "Action not allowed",
			"The ticket is "+te.Status+" and cannot be "+past(te.Action)+"; allowed: "+allowedText(te.Allowed)+".")
		p.Allowed = append([]string{}, te.Allowed...)
		return p
	case errors.As(err, &ce):
		return httpx.NewProblem(http.StatusConflict, "Conflict", upperFirst(ce.Reason)+".")
	case errors.Is(err, command.ErrPrecondition), errors.Is(err, settings.ErrPrecondition):
		return httpx.NewProblem(http.StatusPreconditionFailed, "Precondition failed",
			"If-Match names a version that is no longer current; reload and retry.")
	case errors.Is(err, command.ErrIdempotencyMismatch):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "Idempotency-Key reused",
			"This Idempotency-Key was used within the last 24 hours for a different request.",
			httpx.FieldError{Field: "header.Idempotency-Key", Message: "was used for a different request"})
	case errors.As(err, &tl):
		return httpx.NewProblem(http.StatusRequestEntityTooLarge, "Message too large",
			fmt.Sprintf("The %s is %d bytes; the limit is %d bytes.", tl.What, tl.Size, tl.Limit))
	case errors.As(err, &re):
		return httpx.NewProblem(http.StatusForbidden, "Sender refused", upperFirst(re.Reason)+".")
	case errors.Is(err, query.ErrBadCursor):
		return badCursor()
	case errors.Is(err, ticket.ErrAlreadyExists), errors.Is(err, es.ErrConcurrency):
		return httpx.NewProblem(http.StatusConflict, "Concurrent update",
			"The ticket was changed by another request; reload it and retry.")
	case errors.Is(err, es.ErrUnavailable):
		return httpx.NewProblem(http.StatusServiceUnavailable, "Event store unavailable",
			"The ticket could not be stored right now; retry shortly.").WithRetryAfter(retryAfter)
	case errors.Is(err, query.ErrNotCaughtUp):
		return httpx.NewProblem(http.StatusServiceUnavailable, "Read model behind",
			"The read model has not reached the consistency token yet; retry shortly.").WithRetryAfter(retryAfter)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return httpx.NewProblem(http.StatusServiceUnavailable, "Request not completed",
			"The request was cancelled or timed out; retry shortly.").WithRetryAfter(retryAfter)
	}
	return err
}

// past is the action as a past participle, for messages.
func past(action string) string {
	switch action {
	case ticket.ActionOpen:
		return "opened"
	case ticket.ActionStart:
		return "started"
	case ticket.ActionPend:
		return "put on hold"
	case ticket.ActionClose:
		return "closed"
	case ticket.ActionReopen:
		return "reopened"
	case ticket.ActionCancel:
		return "cancelled"
	}
	return action + "d"
}

func allowedText(a []string) string {
	if len(a) == 0 {
		return "none, it is final"
	}
	return strings.Join(a, ", ")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func badField(field, msg string) error {
	return httpx.NewProblem(http.StatusBadRequest, httpx.TitleInvalidRequest, field+" "+msg,
		httpx.FieldError{Field: field, Message: msg})
}

func badCursor() error { return badField("query.cursor", "is not a cursor this API issued") }
