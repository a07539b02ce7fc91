package deadletter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/deadletter"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
)

func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Start(t).Conn(t)
	if err := deadletter.EnsureStream(context.Background(), js, 1); err != nil {
		t.Fatal(err)
	}
	return js
}

func newEvent() es.Event {
	return es.Event{
		ID: ulid.Make().String(), Type: "opsdesk.ticket.created.v1", Source: "/services/intake",
		Tenant: "t1", AggregateID: "tk_" + ulid.Make().String(), Time: time.Now().UTC(),
		Data: []byte(`{"title":"x"}`),
		// es.EncodeHeaders stores it; the letter must give it back.
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

// deadLetter stores a letter for consumer about a fresh event at original
// sequence seq and returns the event.
func deadLetter(t *testing.T, js jetstream.JetStream, consumer string, seq uint64) es.Event {
	t.Helper()
	e := newEvent()
	h := es.EncodeHeaders(e)
	h["Nats-Expected-Last-Subject-Sequence"] = []string{"41"} // must not apply to the DLQ publish
	err := deadletter.PublishOriginal(context.Background(), js, consumer, deadletter.Original{
		Stream: "TICKETS", Subject: "ticket.t1." + e.AggregateID, Sequence: seq, Header: h, Data: e.Data, Deliveries: 2,
	}, fmt.Errorf("failure %d", seq), 4)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func list(t *testing.T, js jetstream.JetStream, consumer string, limit int) []deadletter.Letter {
	t.Helper()
	ls, err := deadletter.List(context.Background(), js, consumer, limit)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestListFiltersByConsumerNewestLast(t *testing.T) {
	t.Parallel()
	js := setup(t)
	var a []es.Event
	for i := range 3 {
		a = append(a, deadLetter(t, js, "svc__a", uint64(10+i)))
		deadLetter(t, js, "svc__b", uint64(20+i))
	}

	got := list(t, js, "svc__a", 0)
	if len(got) != 3 {
		t.Fatalf("svc__a letters = %d, want 3", len(got))
	}
	for i, l := range got {
		if l.Consumer != "svc__a" || l.Event.ID != a[i].ID || l.OriginalSeq != uint64(10+i) {
			t.Fatalf("letter %d = %+v, want event %s seq %d", i, l, a[i].ID, 10+i)
		}
	}
	l := got[0]
	if l.Stream != "TICKETS" || l.Subject != "ticket.t1."+a[0].AggregateID || l.Attempts != 4 || l.Deliveries != 2 ||
		l.Error != "failure 10" || l.Malformed != "" || l.Time.IsZero() {
		t.Fatalf("letter = %+v", l)
	}
	if e := l.Event; e.Type != a[0].Type || e.Tenant != "t1" || e.Sequence != 10 || e.Subject != l.Subject ||
		e.TraceParent != a[0].TraceParent || !e.Time.Equal(a[0].Time) || string(e.Data) != `{"title":"x"}` {
		t.Fatalf("letter event = %+v", e)
	}

	if all := list(t, js, "", 0); len(all) != 6 {
		t.Fatalf("all letters = %d, want 6", len(all))
	}
	newest := list(t, js, "svc__a", 2)
	if len(newest) != 2 || newest[0].Event.ID != a[1].ID || newest[1].Event.ID != a[2].ID {
		t.Fatalf("limit 2 = %+v, want the two newest, oldest first", newest)
	}
	if none := list(t, js, "svc__c", 0); len(none) != 0 {
		t.Fatalf("svc__c letters = %+v", none)
	}
	if _, err := deadletter.List(context.Background(), js, "bad.name", 0); !errors.Is(err, deadletter.ErrInvalidConsumer) {
		t.Fatalf("List(bad.name) = %v", err)
	}
}

func TestListMoreThanOneBatch(t *testing.T) {
	t.Parallel()
	js := setup(t)
	const n = 300 // more than one fetch
	for i := range n {
		deadLetter(t, js, "svc__bulk", uint64(i+1))
	}
	got := list(t, js, "svc__bulk", 1000)
	if len(got) != n {
		t.Fatalf("got %d letters, want %d", len(got), n)
	}
	for i, l := range got {
		if l.OriginalSeq != uint64(i+1) {
			t.Fatalf("letter %d has original seq %d", i, l.OriginalSeq)
		}
	}
	if last := list(t, js, "svc__bulk", 5); len(last) != 5 || last[0].OriginalSeq != n-4 || last[4].OriginalSeq != n {
		t.Fatalf("newest 5 = %d letters from %d", len(last), last[0].OriginalSeq)
	}
}

func TestListWithoutStreamIsEmpty(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t).Conn(t)
	if ls := list(t, js, "", 0); len(ls) != 0 {
		t.Fatalf("letters = %+v", ls)
	}
}

func TestSameMessageIsDeadLetteredOnce(t *testing.T) {
	t.Parallel()
	js := setup(t)
	e := newEvent()
	o := deadletter.Original{Stream: "TICKETS", Subject: "ticket.t1.x", Sequence: 5, Header: es.EncodeHeaders(e), Data: e.Data}
	for range 2 {
		if err := deadletter.PublishOriginal(context.Background(), js, "svc__a", o, errors.New("no"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if ls := list(t, js, "", 0); len(ls) != 1 {
		t.Fatalf("letters = %d, want 1", len(ls))
	}
}

// Publish, the jetstream.Msg form the projection runner uses.
func TestPublishConsumedMessage(t *testing.T) {
	t.Parallel()
	js := setup(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TICKETS", Subjects: []string{"ticket.>"}}); err != nil {
		t.Fatal(err)
	}
	e := newEvent()
	msg := nats.NewMsg("ticket.t1." + e.AggregateID)
	msg.Header = nats.Header(es.EncodeHeaders(e))
	msg.Data = e.Data
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "TICKETS", jetstream.ConsumerConfig{Durable: "svc__proj", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	jm, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := deadletter.Publish(ctx, js, "svc__proj", jm, errors.New("apply failed"), 5); err != nil {
		t.Fatal(err)
	}
	ls := list(t, js, "svc__proj", 0)
	if len(ls) != 1 {
		t.Fatalf("letters = %+v", ls)
	}
	l := ls[0]
	if l.OriginalSeq != ack.Sequence || l.Stream != "TICKETS" || l.Attempts != 5 || l.Deliveries != 1 ||
		l.Error != "apply failed" || l.Event.ID != e.ID {
		t.Fatalf("letter = %+v", l)
	}
}

func TestReplayAndDiscard(t *testing.T) {
	t.Parallel()
	js := setup(t)
	ctx := context.Background()
	var reg deadletter.Registry // the zero value works
	var mu sync.Mutex
	var got []es.Event
	fail := true
	reg.Register("svc__a", func(_ context.Context, e es.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
		if fail {
			return errors.New("still broken")
		}
		return nil
	})
	e := deadLetter(t, js, "svc__a", 10)
	deadLetter(t, js, "svc__unregistered", 11)
	ls := list(t, js, "", 0)
	seqA, seqU := ls[0].Seq, ls[1].Seq

	if err := reg.Replay(ctx, js, seqA); !errors.Is(err, deadletter.ErrReplayFailed) || !strings.Contains(err.Error(), "still broken") {
		t.Fatalf("Replay while broken = %v", err)
	}
	if _, err := deadletter.Get(ctx, js, seqA); err != nil {
		t.Fatalf("letter gone after failed replay: %v", err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := reg.Replay(ctx, js, seqA); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	mu.Lock()
	if len(got) != 2 || got[1].ID != e.ID || got[1].Sequence != 10 || got[1].Subject != "ticket.t1."+e.AggregateID {
		t.Fatalf("handler got %+v", got)
	}
	mu.Unlock()
	if _, err := deadletter.Get(ctx, js, seqA); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("Get after replay = %v, want ErrNotFound", err)
	}

	for name, seq := range map[string]uint64{"replayed": seqA, "unknown seq": 999, "unregistered consumer": seqU} {
		if err := reg.Replay(ctx, js, seq); !errors.Is(err, deadletter.ErrNotFound) {
			t.Errorf("Replay %s = %v, want ErrNotFound", name, err)
		}
	}
	if err := deadletter.Discard(ctx, js, seqU); err != nil {
		t.Fatal(err)
	}
	if err := deadletter.Discard(ctx, js, seqU); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("second Discard = %v, want ErrNotFound", err)
	}
	if ls := list(t, js, "", 0); len(ls) != 0 {
		t.Fatalf("letters left = %+v", ls)
	}
}

func TestReplayRecoversPanic(t *testing.T) {
	t.Parallel()
	js := setup(t)
	reg := deadletter.NewRegistry()
	reg.Register("svc__a", func(context.Context, es.Event) error { panic("boom") })
	deadLetter(t, js, "svc__a", 1)
	ls := list(t, js, "", 0)
	if err := reg.Replay(context.Background(), js, ls[0].Seq); !errors.Is(err, deadletter.ErrReplayFailed) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Replay = %v", err)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	js := setup(t)
	reg := deadletter.NewRegistry()
	reg.Register("svc__a", func(context.Context, es.Event) error { return nil })
	e := deadLetter(t, js, "svc__a", 10)
	deadLetter(t, js, "svc__b", 11)
	ls := list(t, js, "", 0)

	ec := httpx.New(httpx.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	deadletter.Routes(ec.Group("/admin"), js, reg)
	do := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		ec.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}

	rec := do(http.MethodGet, "/admin/deadletters?consumer=svc__a")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	var body struct {
		Deadletters []struct {
			Seq         uint64          `json:"seq"`
			Consumer    string          `json:"consumer"`
			OriginalSeq uint64          `json:"original_seq"`
			Error       string          `json:"error"`
			Event       json.RawMessage `json:"event"`
		} `json:"deadletters"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Deadletters) != 1 || body.Deadletters[0].Consumer != "svc__a" || body.Deadletters[0].OriginalSeq != 10 ||
		!strings.Contains(string(body.Deadletters[0].Event), `"data":{"title":"x"}`) ||
		!strings.Contains(string(body.Deadletters[0].Event), e.ID) ||
		!strings.Contains(string(body.Deadletters[0].Event), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) {
		t.Fatalf("GET body = %s", rec.Body)
	}

	for path, field := range map[string]string{
		"/admin/deadletters?limit=0":      "query.limit",
		"/admin/deadletters?limit=abc":    "query.limit",
		"/admin/deadletters?limit=5000":   "query.limit",
		"/admin/deadletters?consumer=a.b": "query.consumer",
	} {
		expectProblem(t, do(http.MethodGet, path), http.StatusBadRequest, field)
	}
	for _, path := range []string{"/admin/deadletters?limit=1", "/admin/deadletters?consumer=svc__z"} {
		if rec := do(http.MethodGet, path); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d: %s", path, rec.Code, rec.Body)
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
		field        string
	}{
		{http.MethodPost, "/admin/deadletters/abc/replay", http.StatusBadRequest, "path.seq"},
		{http.MethodPost, "/admin/deadletters/0/replay", http.StatusBadRequest, "path.seq"},
		{http.MethodPost, "/admin/deadletters/999/replay", http.StatusNotFound, ""},
		{http.MethodPost, fmt.Sprintf("/admin/deadletters/%d/replay", ls[1].Seq), http.StatusNotFound, ""}, // svc__b: no replay function
		{http.MethodPost, fmt.Sprintf("/admin/deadletters/%d/replay", ls[0].Seq), http.StatusNoContent, ""},
		{http.MethodPost, fmt.Sprintf("/admin/deadletters/%d/replay", ls[0].Seq), http.StatusNotFound, ""},
		{http.MethodDelete, fmt.Sprintf("/admin/deadletters/%d", ls[1].Seq), http.StatusNoContent, ""},
		{http.MethodDelete, fmt.Sprintf("/admin/deadletters/%d", ls[1].Seq), http.StatusNotFound, ""},
	} {
		rec := do(c.method, c.path)
		if c.want == http.StatusNoContent {
			if rec.Code != c.want {
				t.Errorf("%s %s = %d, want %d: %s", c.method, c.path, rec.Code, c.want, rec.Body)
			}
			continue
		}
		expectProblem(t, rec, c.want, c.field)
	}
	if left := list(t, js, "", 0); len(left) != 0 {
		t.Fatalf("letters left = %+v", left)
	}

	// A handler that still fails: 409, the letter stays. A malformed
	// original: 422.
	reg.Register("svc__fail", func(context.Context, es.Event) error { return errors.New("secret internals") })
	deadLetter(t, js, "svc__fail", 12)
	if err := deadletter.PublishOriginal(context.Background(), js, "svc__a", deadletter.Original{
		Stream: "TICKETS", Subject: "ticket.t1.broken", Sequence: 13, Header: map[string][]string{"ce-id": {"x"}}, Data: []byte("?"),
	}, errors.New("malformed"), 1); err != nil {
		t.Fatal(err)
	}
	ls = list(t, js, "", 0)
	rec = do(http.MethodPost, fmt.Sprintf("/admin/deadletters/%d/replay", ls[0].Seq))
	expectProblem(t, rec, http.StatusConflict, "")
	if strings.Contains(rec.Body.String(), "secret internals") {
		t.Errorf("409 body leaks the handler error: %s", rec.Body)
	}
	expectProblem(t, do(http.MethodPost, fmt.Sprintf("/admin/deadletters/%d/replay", ls[1].Seq)), http.StatusUnprocessableEntity, "")
	if left := list(t, js, "", 0); len(left) != 2 || left[1].Malformed == "" {
		t.Fatalf("letters left = %+v", left)
	}
}

// expectProblem checks an application/problem+json answer with status and,
// when field is not empty, that field listed.
func expectProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, field string) {
	t.Helper()
	if rec.Code != status || rec.Header().Get(echo.HeaderContentType) != httpx.MIMEProblemJSON {
		t.Errorf("got %d %s, want %d problem+json: %s", rec.Code, rec.Header().Get(echo.HeaderContentType), status, rec.Body)
		return
	}
	var p httpx.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != status {
		t.Errorf("problem status %d, want %d", p.Status, status)
	}
	if field == "" {
		return
	}
	for _, f := range p.Errors {
		if f.Field == field {
			return
		}
	}
	t.Errorf("problem %+v does not name field %s", p, field)
}
