package httpport

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/identity/internal/app"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

const retryAfter = time.Second

// problem maps an application error to its HTTP answer; the only place that
// does. Anything it does not know becomes a logged 500 in httpx.
func problem(c echo.Context, err error) error {
	if err == nil {
		return nil
	}
	var (
		ve     *domain.ValidationError
		ce     *domain.ConflictError
		locked *app.LockedError
	)
	switch {
	case errors.As(err, &ve):
		fields := make([]httpx.FieldError, len(ve.Fields))
		msgs := make([]string, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = httpx.FieldError{Field: f.Field, Message: f.Message}
			msgs[i] = f.Field + " " + f.Message
		}
		return httpx.NewProblem(http.StatusBadRequest, httpx.TitleInvalidRequest, strings.Join(msgs, "; ")+".", fields...)
	case errors.Is(err, domain.ErrNotFound):
		return httpx.NewProblem(http.StatusNotFound, "Not found", "There is no such resource in this tenant.")
	case errors.Is(err, domain.ErrAlreadyExists):
		return httpx.NewProblem(http.StatusConflict, "Already taken",
			"The e-mail address or slug is already used.")
	case errors.As(err, &ce):
		return httpx.NewProblem(http.StatusConflict, "Conflict", ce.Reason+".")
	case errors.Is(err, app.ErrPrecondition):
		return httpx.NewProblem(http.StatusPreconditionFailed, "Precondition failed",
			"The resource changed since the ETag in If-Match; reload it and retry.")
	case errors.Is(err, app.ErrInvalidGrant):
		return oauthProblem(http.StatusUnauthorized, "invalid_grant",
			"The credentials or the refresh token are not valid.")
	case errors.As(err, &locked):
		return httpx.NewProblem(http.StatusTooManyRequests, "Too many attempts",
			"Too many failed attempts; retry after the time in Retry-After.").WithRetryAfter(locked.RetryAfter)
	case errors.Is(err, auth.ErrForbidden):
		return httpx.NewProblem(http.StatusForbidden, "Permission denied", "This credential cannot do that.")
	case errors.Is(err, app.ErrBadCursor):
		return badField("query.cursor", "is not a cursor this API issued")
	case errors.Is(err, es.ErrConcurrency):
		return httpx.NewProblem(http.StatusConflict, "Concurrent update",
			"The resource was changed by another request; reload it and retry.")
	case errors.Is(err, es.ErrUnavailable):
		return httpx.NewProblem(http.StatusServiceUnavailable, "Event store unavailable",
			"The change could not be stored right now; retry shortly.").WithRetryAfter(retryAfter)
	case errors.Is(err, app.ErrNotCaughtUp):
		return httpx.NewProblem(http.StatusServiceUnavailable, "Read model behind",
			"The read model has not caught up with this change yet; retry shortly.").WithRetryAfter(retryAfter)
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
