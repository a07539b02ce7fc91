package deadletter

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/httpx"
)

// MaxListLimit caps the limit query parameter of GET /deadletters.
const MaxListLimit = 1000

// Routes mounts the operator endpoints for dead letters on g:
//
//	GET    /deadletters?consumer=&limit=   newest letters, oldest first (JSON)
//	POST   /deadletters/:seq/replay        re-run through the registered handler, remove on success
//	DELETE /deadletters/:seq               discard without replaying
//
// Errors are application/problem+json (httpx.Problem). Dead letters of
// every tenant are visible here: mount g on an operator-only group, never
// on a tenant API.
func Routes(g *echo.Group, js jetstream.JetStream, r *Registry) {
	g.GET("/deadletters", func(c echo.Context) error {
		consumer := c.QueryParam("consumer")
		if consumer != "" && !validToken(consumer) {
			return httpx.NewProblem(http.StatusBadRequest, "Invalid request", "consumer must be a consumer name",
				httpx.FieldError{Field: "query.consumer", Message: "must be one subject token (no '.', '*', '>' or spaces)"})
		}
		limit := DefaultLimit
		if s := c.QueryParam("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > MaxListLimit {
				return httpx.NewProblem(http.StatusBadRequest, "Invalid request", "limit is out of range",
					httpx.FieldError{Field: "query.limit", Message: "must be an integer from 1 to " + strconv.Itoa(MaxListLimit)})
			}
			limit = n
		}
		letters, err := List(c.Request().Context(), js, consumer, limit)
		if err != nil {
			return unavailable(c, err)
		}
		out := make([]letterJSON, len(letters))
		for i, l := range letters {
			out[i] = toJSON(l)
		}
		return c.JSON(http.StatusOK, map[string]any{"deadletters": out})
	})

	g.POST("/deadletters/:seq/replay", func(c echo.Context) error {
		seq, err := parseSeq(c)
		if err != nil {
			return err
		}
		if err := r.Replay(c.Request().Context(), js, seq); err != nil {
			return letterProblem(c, seq, err)
		}
		return c.NoContent(http.StatusNoContent)
	})

	g.DELETE("/deadletters/:seq", func(c echo.Context) error {
		seq, err := parseSeq(c)
		if err != nil {
			return err
		}
		if err := Discard(c.Request().Context(), js, seq); err != nil {
			return letterProblem(c, seq, err)
		}
		return c.NoContent(http.StatusNoContent)
	})
}

func parseSeq(c echo.Context) (uint64, error) {
	seq, err := strconv.ParseUint(c.Param("seq"), 10, 64)
	if err != nil || seq == 0 {
		return 0, httpx.NewProblem(http.StatusBadRequest, "Invalid request", "seq is not a dead letter sequence",
			httpx.FieldError{Field: "path.seq", Message: "must be a positive integer"})
	}
	return seq, nil
}

// letterProblem is the one place that maps Replay and Discard errors to
// HTTP. Error text from handlers and NATS stays in the log, as for every
// OpsDesk answer.
func letterProblem(c echo.Context, seq uint64, err error) error {
	ctx := c.Request().Context()
	switch {
	case errors.Is(err, ErrNotFound):
		return httpx.NewProblem(http.StatusNotFound, "Dead letter not found",
			fmt.Sprintf("There is no dead letter %d, or no replay function for its consumer.", seq))
	case errors.Is(err, ErrNotReplayable):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "Dead letter cannot be replayed",
			fmt.Sprintf("Dead letter %d is not a valid event (see \"malformed\" in the list); discard it instead.", seq))
	case errors.Is(err, ErrReplayFailed):
		slog.WarnContext(ctx, "dead letter replay failed", "seq", seq, "err", err)
		return httpx.NewProblem(http.StatusConflict, "Replay failed",
			fmt.Sprintf("The handler failed again; dead letter %d is kept. The error is logged with this request's trace id.", seq))
	default:
		return unavailable(c, err)
	}
}

func unavailable(c echo.Context, err error) error {
	slog.WarnContext(c.Request().Context(), "dead letters unavailable", "err", err)
	return httpx.NewProblem(http.StatusServiceUnavailable, "Dead letters unavailable",
		"The message broker did not answer; try again.").WithRetryAfter(time.Second)
}

// letterJSON is the wire form of a Letter.
type letterJSON struct {
	Seq         uint64    `json:"seq"`
	Consumer    string    `json:"consumer"`
	Stream      string    `json:"stream"`
	Subject     string    `json:"subject"`
	OriginalSeq uint64    `json:"original_seq"`
	Attempts    int       `json:"attempts"`
	Deliveries  uint64    `json:"deliveries,omitempty"`
	Error       string    `json:"error"`
	Time        time.Time `json:"time"`
	Malformed   string    `json:"malformed,omitempty"`
	Event       eventJSON `json:"event"`
}

type eventJSON struct {
	ID            string          `json:"id,omitempty"`
	Type          string          `json:"type,omitempty"`
	Source        string          `json:"source,omitempty"`
	Tenant        string          `json:"tenant,omitempty"`
	AggregateID   string          `json:"aggregate_id,omitempty"`
	Time          *time.Time      `json:"time,omitempty"`
	Actor         string          `json:"actor,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	CausationID   string          `json:"causation_id,omitempty"`
	TraceID       string          `json:"trace_id,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	// RawData holds a body that is not JSON (only for malformed letters).
	RawData string `json:"raw_data,omitempty"`
}

func toJSON(l Letter) letterJSON {
	e := l.Event
	ej := eventJSON{
		ID: e.ID, Type: e.Type, Source: e.Source, Tenant: e.Tenant, AggregateID: e.AggregateID,
		Actor: e.Actor, CorrelationID: e.CorrelationID, CausationID: e.CausationID,
		TraceID: es.TraceID(e.TraceParent),
	}
	if !e.Time.IsZero() {
		t := e.Time
		ej.Time = &t
	}
	if json.Valid(e.Data) {
		ej.Data = e.Data
	} else if len(e.Data) > 0 {
		ej.RawData = string(e.Data)
	}
	return letterJSON{
		Seq: l.Seq, Consumer: l.Consumer, Stream: l.Stream, Subject: l.Subject,
		OriginalSeq: l.OriginalSeq, Attempts: l.Attempts, Deliveries: l.Deliveries, Error: l.Error, Time: l.Time,
		Malformed: l.Malformed, Event: ej,
	}
}
