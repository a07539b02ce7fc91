package httpport

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/query"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// retryAfter is what 503 answers tell clients to wait: an outage of NATS or
// a lagging read model is typically over within a second or two.
const retryAfter = time.Second

// problem maps an application error to its HTTP answer. It is the only
// place that does; anything it does not know is returned as is and becomes
// a logged 500 in httpx's error handler.
func problem(c echo.Context, err error) error {
	var ve *ticket.ValidationError
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
	case errors.Is(err, query.ErrNotFound):
		return httpx.NewProblem(http.StatusNotFound, "Ticket not found",
			"There is no ticket "+c.Param("id")+" in this tenant.")
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

func badField(field, msg string) error {
	return httpx.NewProblem(http.StatusBadRequest, httpx.TitleInvalidRequest, field+" "+msg,
		httpx.FieldError{Field: field, Message: msg})
}

func badCursor() error { return badField("query.cursor", "is not a cursor this API issued") }
