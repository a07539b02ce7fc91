package smtpin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// spans records every span; tests in this package do not run in parallel,
// so each test resets it.
var spans = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	os.Exit(m.Run())
}

// guard bounds every wait on a channel so a bug fails instead of hanging.
const guard = 10 * time.Second

// --- fakes ---

type call struct {
	env  Envelope
	raw  []byte
	span trace.SpanContext
}

type fakeDeliverer struct {
	mu    sync.Mutex
	calls []call
	fn    func(ctx context.Context, env Envelope) error // nil: accept
}

func (d *fakeDeliverer) Deliver(ctx context.Context, env Envelope, raw []byte) error {
	d.mu.Lock()
	d.calls = append(d.calls, call{env: env, raw: slices.Clone(raw), span: trace.SpanContextFromContext(ctx)})
	fn := d.fn
	d.mu.Unlock()
	if fn != nil {
		return fn(ctx, env)
	}
	return nil
}

func (d *fakeDeliverer) got() []call {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

type fakeChecker map[string]error // missing address -> ErrUnknownRecipient

func (c fakeChecker) CheckRecipient(_ context.Context, addr string) error {
	if err, ok := c[addr]; ok {
		return err
	}
	return ErrUnknownRecipient
}

var known = fakeChecker{
	"help@acme.test":    nil,
	"billing@acme.test": nil,
	"ops@acme.test":     nil,
	"flaky@acme.test":   errors.New("directory down"),
}

// logRecorder forwards log messages to a channel so tests can wait for a
// server state ("smtp listening", "smtp stopping") instead of sleeping.
type logRecorder struct{ ch chan string }

func (h logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h logRecorder) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r.Message:
	default: // never block the server on a slow test
	}
	return nil
}
func (h logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logRecorder) WithGroup(string) slog.Handler      { return h }

func waitLog(t *testing.T, ch <-chan string, msg string) {
	t.Helper()
	timeout := time.After(guard)
	for {
		select {
		case m := <-ch:
			if m == msg {
				return
			}
		case <-timeout:
			t.Fatalf("no log %q", msg)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// --- helpers ---

type running struct {
	srv    *Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// start serves on a free loopback port; cleanup stops it.
func start(t *testing.T, cfg Config, rc RecipientChecker, d Deliverer, log *slog.Logger) *running {
	t.Helper()
	spans.Reset()
	if log == nil {
		log = discard()
	}
	cfg.Addr = "127.0.0.1:0"
	srv := New(cfg, rc, d, log)
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	// The serving ctx carries a span (as a service's start-up might); a
	// message's trace must not join it.
	startup := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	ctx, cancel := context.WithCancel(trace.ContextWithSpanContext(context.Background(), startup))
	r := &running{srv: srv, addr: srv.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(guard):
			t.Error("server did not stop")
		}
	})
	return r
}

func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // let cleanup see it too
		return err
	case <-time.After(guard):
		t.Fatal("server did not stop")
		return nil
	}
}

func dial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("mx.sender.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// send runs one transaction; rcptErrs has one entry per recipient. It
// does not touch t, so goroutines may call it.
func send(c *smtp.Client, from string, to []string, raw string) (rcptErrs []error, err error) {
	if err := c.Mail(from, nil); err != nil {
		return nil, fmt.Errorf("MAIL: %w", err)
	}
	for _, rcpt := range to {
		rcptErrs = append(rcptErrs, c.Rcpt(rcpt, nil))
	}
	w, err := c.Data()
	if err != nil {
		return rcptErrs, err
	}
	if _, err := io.WriteString(w, raw); err != nil {
		return rcptErrs, err
	}
	return rcptErrs, w.Close()
}

func smtpErr(t *testing.T, err error, code int, enh smtp.EnhancedCode) *smtp.SMTPError {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("want SMTP %d error, got %v", code, err)
	}
	if se.Code != code || se.EnhancedCode != enh {
		t.Fatalf("want %d %v, got %d %v %q", code, enh, se.Code, se.EnhancedCode, se.Message)
	}
	return se
}

const msg1 = "From: Alice <alice@customer.test>\r\n" +
	"To: help@acme.test\r\n" +
	"Subject: printer on fire\r\n" +
	"\r\n" +
	"It is on fire.\r\n" +
	".a line starting with a dot (dot-stuffed on the wire)\r\n" +
	"..\r\n" +
	"bye\r\n"

// --- tests ---

func TestDeliverKnownRecipient(t *testing.T) {
	d := &fakeDeliverer{}
	r := start(t, Config{}, known, d, nil)
	c := dial(t, r.addr)

	before := time.Now()
	rcptErrs, err := send(c, "alice@customer.test", []string{"help@acme.test"}, msg1)
	if err != nil || rcptErrs[0] != nil { // go-smtp's client errors unless DATA gets 250
		t.Fatalf("rcpt %v, data %v", rcptErrs[0], err)
	}

	calls := d.got()
	if len(calls) != 1 {
		t.Fatalf("Deliver called %d times, want 1", len(calls))
	}
	got := calls[0]
	if string(got.raw) != msg1 {
		t.Errorf("raw differs:\n got %q\nwant %q", got.raw, msg1)
	}
	if got.env.From != "alice@customer.test" || !slices.Equal(got.env.To, []string{"help@acme.test"}) {
		t.Errorf("envelope = %+v", got.env)
	}
	if host, _, _ := net.SplitHostPort(got.env.RemoteAddr); host != "127.0.0.1" {
		t.Errorf("RemoteAddr = %q", got.env.RemoteAddr)
	}
	if got.env.ReceivedAt.Before(before.Add(-time.Second)) || got.env.ReceivedAt.After(time.Now()) {
		t.Errorf("ReceivedAt = %v", got.env.ReceivedAt)
	}

	// The span wraps Deliver, and Deliver's ctx carries it so downstream
	// spans join the trace.
	ended := spans.Ended()
	if len(ended) != 1 || ended[0].Name() != "smtp DATA" {
		t.Fatalf("spans = %v", ended)
	}
	sp := ended[0]
	if sp.SpanContext().SpanID() != got.span.SpanID() || !got.span.IsValid() {
		t.Errorf("Deliver ctx span %v, recorded span %v", got.span, sp.SpanContext())
	}
	if sp.Parent().IsValid() {
		t.Errorf("message span has parent %v, want a new trace", sp.Parent())
	}
	want := map[attribute.Key]attribute.Value{
		"network.peer.address":  attribute.StringValue("127.0.0.1"),
		"smtp.recipients.count": attribute.IntValue(1),
		"smtp.message.size":     attribute.IntValue(len(msg1)),
	}
	for _, kv := range sp.Attributes() {
		if w, ok := want[kv.Key]; ok {
			if kv.Value != w {
				t.Errorf("attr %s = %v, want %v", kv.Key, kv.Value.String(), w.String())
			}
			delete(want, kv.Key)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing span attributes %v", want)
	}
	if sp.Status().Code == codes.Error {
		t.Errorf("span status = %v", sp.Status())
	}
}

func TestTwoMessagesOneConnection(t *testing.T) {
	d := &fakeDeliverer{}
	r := start(t, Config{}, known, d, nil)
	c := dial(t, r.addr)

	if _, err := send(c, "a@customer.test", []string{"help@acme.test"}, "Subject: one\r\n\r\n1\r\n"); err != nil {
		t.Fatal(err)
	}
	// A repeated RCPT is delivered once.
	if _, err := send(c, "b@customer.test", []string{"billing@acme.test", "ops@acme.test", "ops@acme.test"}, "Subject: two\r\n\r\n2\r\n"); err != nil {
		t.Fatal(err)
	}

	calls := d.got()
	if len(calls) != 2 {
		t.Fatalf("Deliver called %d times, want 2", len(calls))
	}
	if e := calls[0].env; e.From != "a@customer.test" || !slices.Equal(e.To, []string{"help@acme.test"}) || string(calls[0].raw) != "Subject: one\r\n\r\n1\r\n" {
		t.Errorf("first = %+v %q", e, calls[0].raw)
	}
	if e := calls[1].env; e.From != "b@customer.test" || !slices.Equal(e.To, []string{"billing@acme.test", "ops@acme.test"}) || string(calls[1].raw) != "Subject: two\r\n\r\n2\r\n" {
		t.Errorf("second = %+v %q", e, calls[1].raw)
	}
}

func TestRecipientChecks(t *testing.T) {
	d := &fakeDeliverer{}
	r := start(t, Config{}, known, d, nil)
	c := dial(t, r.addr)

	// Only unknown: refused at RCPT, so DATA has nobody to deliver to.
	rcptErrs, err := send(c, "a@customer.test", []string{"nobody@acme.test"}, "x\r\n")
	if len(rcptErrs) != 1 {
		t.Fatal(err)
	}
	smtpErr(t, rcptErrs[0], 550, smtp.EnhancedCode{5, 1, 1})
	if err == nil {
		t.Fatal("DATA without accepted recipients succeeded")
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}

	// Mixed: the known one gets the message; a failing check is temporary.
	rcptErrs, err = send(c, "a@customer.test", []string{"help@acme.test", "nobody@acme.test", "flaky@acme.test"}, "Subject: hi\r\n\r\nhi\r\n")
	if err != nil || rcptErrs[0] != nil {
		t.Fatalf("rcpt %v, data %v", rcptErrs, err)
	}
	smtpErr(t, rcptErrs[1], 550, smtp.EnhancedCode{5, 1, 1})
	smtpErr(t, rcptErrs[2], 451, smtp.EnhancedCode{4, 3, 0})

	calls := d.got()
	if len(calls) != 1 || !slices.Equal(calls[0].env.To, []string{"help@acme.test"}) {
		t.Fatalf("calls = %+v", calls)
	}
}

func TestMessageSizeLimit(t *testing.T) {
	const limit = 1024
	d := &fakeDeliverer{}
	r := start(t, Config{MaxMessageBytes: limit}, known, d, nil)
	c := dial(t, r.addr)

	body := func(n int) string { // n bytes of short CRLF lines
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(strings.Repeat("x", 62) + "\r\n")
		}
		return b.String()[:n]
	}

	_, err := send(c, "a@customer.test", []string{"help@acme.test"}, body(limit+1))
	se := smtpErr(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	if !strings.Contains(se.Message, fmt.Sprintf("limit %d bytes", limit)) {
		t.Errorf("reply %q does not name the limit", se.Message)
	}
	_, err = send(c, "a@customer.test", []string{"help@acme.test"}, body(20*limit))
	smtpErr(t, err, 552, smtp.EnhancedCode{5, 3, 4})
	if n := len(d.got()); n != 0 {
		t.Fatalf("Deliver called %d times for oversized messages", n)
	}

	// Exactly the limit is fine, on the same connection.
	exact := body(limit-2) + "\r\n"
	if _, err := send(c, "a@customer.test", []string{"help@acme.test"}, exact); err != nil {
		t.Fatalf("message of exactly the limit: %v", err)
	}
	if calls := d.got(); len(calls) != 1 || string(calls[0].raw) != exact {
		t.Fatalf("calls = %d", len(calls))
	}
}

func TestDeliverErrorMapping(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code int
		enh  smtp.EnhancedCode
		text string
	}{
		{"temporary", errors.New("db: connection refused"), 451, smtp.EnhancedCode{4, 3, 0}, "try again later"},
		{"deadline", context.DeadlineExceeded, 451, smtp.EnhancedCode{4, 3, 0}, "try again later"},
		{"rejected", fmt.Errorf("policy: %w", &RejectedError{Reason: "sender not allowed for this tenant"}), 550, smtp.EnhancedCode{5, 7, 1}, "sender not allowed for this tenant"},
		{"unknown recipient", fmt.Errorf("route: %w", ErrUnknownRecipient), 550, smtp.EnhancedCode{5, 1, 1}, "mailbox unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDeliverer{fn: func(context.Context, Envelope) error { return tc.err }}
			r := start(t, Config{}, known, d, nil)
			c := dial(t, r.addr)

			_, err := send(c, "a@customer.test", []string{"help@acme.test"}, msg1)
			se := smtpErr(t, err, tc.code, tc.enh)
			if !strings.Contains(se.Message, tc.text) {
				t.Errorf("reply %q lacks %q", se.Message, tc.text)
			}
			if strings.Contains(se.Message, "db:") {
				t.Errorf("reply leaks internals: %q", se.Message)
			}
			if n := len(d.got()); n != 1 {
				t.Errorf("Deliver called %d times", n)
			}
			if ended := spans.Ended(); len(ended) != 1 || ended[0].Status().Code != codes.Error || len(ended[0].Events()) == 0 {
				t.Errorf("span did not record the error: %v", ended)
			}
		})
	}
}

func TestListenAndServeStopsOnCancel(t *testing.T) {
	logs := make(chan string, 64)
	srv := New(Config{Addr: "127.0.0.1:0"}, known, &fakeDeliverer{}, slog.New(logRecorder{logs}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx) }()

	waitLog(t, logs, "smtp listening")
	addr := srv.Addr()
	// It is up. (An idle connection would hold the graceful stop until
	// ShutdownTimeout; TestForcedStop covers that, so close this one.)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ListenAndServe = %v, want nil", err)
		}
	case <-time.After(guard):
		t.Fatal("ListenAndServe did not return")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("connection accepted after stop")
	}
}

func TestGracefulStopFinishesInFlightMessage(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	d := &fakeDeliverer{fn: func(ctx context.Context, _ Envelope) error {
		close(entered)
		<-release
		return ctx.Err() // a stop must not cancel an in-flight Deliver
	}}
	logs := make(chan string, 64)
	r := start(t, Config{}, known, d, slog.New(logRecorder{logs}))
	c := dial(t, r.addr)

	sent := make(chan error, 1)
	go func() {
		_, err := send(c, "a@customer.test", []string{"help@acme.test"}, msg1)
		sent <- err
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	waitLog(t, logs, "smtp stopping")
	close(release)

	if err := <-sent; err != nil {
		t.Fatalf("in-flight message not acknowledged: %v", err)
	}
	// New transactions are refused while draining.
	smtpErr(t, c.Mail("b@customer.test", nil), 421, smtp.EnhancedCode{4, 3, 2})
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

func TestForcedStop(t *testing.T) {
	entered := make(chan struct{})
	cancelled := make(chan error, 1)
	d := &fakeDeliverer{fn: func(ctx context.Context, _ Envelope) error {
		close(entered)
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}}
	r := start(t, Config{ShutdownTimeout: 200 * time.Millisecond}, known, d, nil)
	idle := dial(t, r.addr)
	busy := dial(t, r.addr)

	sent := make(chan error, 1)
	go func() {
		_, err := send(busy, "a@customer.test", []string{"help@acme.test"}, msg1)
		sent <- err
	}()
	<-entered

	err := r.stop(t)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want a forced-stop error", err)
	}
	if got := <-cancelled; !errors.Is(got, context.Canceled) {
		t.Errorf("in-flight Deliver ctx = %v, want cancelled", got)
	}
	if <-sent == nil {
		t.Error("message acknowledged although the stop cut it off")
	}
	if err := idle.Noop(); err == nil {
		t.Error("idle connection still open after forced stop")
	}
}
