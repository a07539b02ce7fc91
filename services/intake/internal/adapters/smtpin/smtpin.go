// Package smtpin is intake's inbound SMTP listener: mail servers deliver
// support mail to it and it hands each accepted message to the application
// layer through a Deliverer.
//
// It is an inbound MX-style endpoint with no AUTH and no TLS: anyone who can
// reach the port can submit mail claiming any sender. Expose it only where a
// trusted MTA relays to it (loopback, a private network), and do not treat
// the envelope or headers as proof of which tenant or person sent a message;
// this package claims no per-tenant authenticity.
package smtpin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

var tracer = otel.Tracer("opsdesk/intake/smtp")

// Deliverer is the application layer: it stores or processes one message
// for its recipients. It must be durable before returning nil: the SMTP 250
// is an acknowledgement, and an acknowledged message is never lost.
//
// The error picks the SMTP reply: ErrUnknownRecipient -> 550 5.1.1,
// *RejectedError -> 550 5.7.1 with its Reason, anything else -> 451 4.3.0
// (temporary: the sending MTA retries, so delivery is at-least-once).
type Deliverer interface {
	Deliver(ctx context.Context, env Envelope, raw []byte) error
}

// RecipientChecker validates RCPT TO early, so unknown mailboxes are refused
// at RCPT rather than after the whole message was transferred. It returns
// ErrUnknownRecipient to refuse (550 5.1.1); other errors give 451 4.3.0.
type RecipientChecker interface {
	CheckRecipient(ctx context.Context, addr string) error
}

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	From       string   // MAIL FROM; "" for the null sender (bounces)
	To         []string // accepted RCPT TO addresses, in order, deduplicated
	RemoteAddr string   // peer host:port (the relaying MTA, not the author)
	ReceivedAt time.Time
}

// ErrUnknownRecipient refuses a recipient: 550 5.1.1.
var ErrUnknownRecipient = errors.New("smtpin: unknown recipient")

// RejectedError refuses a message permanently for policy reasons (unknown
// sender, mail loop): 550 5.7.1 with Reason as the reply text, which the
// sender sees in its bounce, so keep it free of internals.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "smtpin: message rejected: " + e.Reason }

// Config tunes the listener; zero values take the defaults noted.
type Config struct {
	Addr            string        // default "127.0.0.1:2525"; "127.0.0.1:0" picks a free port
	Domain          string        // hostname in the greeting, default "opsdesk.localhost"
	MaxMessageBytes int64         // default 25 MiB; larger DATA gets 552 5.3.4
	MaxRecipients   int           // default 50; more RCPTs get 452 from go-smtp
	ReadTimeout     time.Duration // default 60s
	WriteTimeout    time.Duration // default 60s
	DeliverTimeout  time.Duration // bound on each Deliver/CheckRecipient call, default 30s
	// ShutdownTimeout bounds the graceful stop; afterwards connections are
	// closed and in-flight calls cancelled. Default DeliverTimeout+5s so a
	// Deliver started just before the stop can finish and be acknowledged.
	ShutdownTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:2525"
	}
	if c.Domain == "" {
		c.Domain = "opsdesk.localhost"
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 25 << 20
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = 50
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.DeliverTimeout <= 0 {
		c.DeliverTimeout = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = c.DeliverTimeout + 5*time.Second
	}
	return c
}

// Server is the SMTP listener. Serve (or ListenAndServe) may be called once.
type Server struct {
	cfg  Config
	rc   RecipientChecker
	d    Deliverer
	log  *slog.Logger
	stop atomic.Bool // set once the graceful stop begins

	mu     sync.Mutex
	ln     net.Listener
	served bool
}

// New returns a server. rc may be nil, in which case every recipient is
// accepted at RCPT and the Deliverer decides.
func New(cfg Config, rc RecipientChecker, d Deliverer, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg.withDefaults(), rc: rc, d: d, log: log}
}

// Listen binds Config.Addr; Addr reports the bound address afterwards.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smtpin: listen %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln, nil
}

// Addr is the actual listening address, or "" before listening.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// ListenAndServe binds Config.Addr and serves until ctx is done (see Serve).
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve accepts SMTP connections on ln until ctx is done, then stops
// gracefully: the listener closes at once, open sessions get up to
// ShutdownTimeout to finish (new transactions are refused with 421), then
// remaining connections are closed and in-flight calls cancelled. It returns
// nil on a clean stop, and an error if the stop had to force connections
// closed or accepting failed. When it returns no session is running, provided
// the Deliverer and RecipientChecker return once their ctx is cancelled.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("smtpin: Serve called twice")
	}
	s.served, s.ln = true, ln
	s.mu.Unlock()

	// Calls into the app outlive ctx's cancellation (that is the graceful
	// part) but keep its values; hardStop cancels them once time is up.
	// Any span in ctx (service start-up) is dropped: each message is its
	// own trace, SMTP carries no trace context to join.
	callCtx, hardStop := context.WithCancel(trace.ContextWithSpanContext(context.WithoutCancel(ctx), trace.SpanContext{}))
	defer hardStop()

	tl := &trackingListener{Listener: ln, conns: map[*trackedConn]struct{}{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, ctx: callCtx, remote: c.Conn().RemoteAddr().String()}, nil
	}))
	srv.Domain = s.cfg.Domain
	// go-smtp's DATA reader refuses a message of exactly its limit (it
	// checks the budget before seeing the terminator), so give it one spare
	// byte; Data enforces the real limit with its own bounded reader.
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes + 1
	srv.MaxRecipients = s.cfg.MaxRecipients
	srv.ReadTimeout = s.cfg.ReadTimeout
	srv.WriteTimeout = s.cfg.WriteTimeout
	srv.AllowInsecureAuth = false // no AUTH is offered at all (session has no Auth)
	srv.ErrorLog = slogAdapter{s.log}

	s.log.InfoContext(ctx, "smtp listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tl) }()

	select {
	case err := <-served:
		// Accept failed for good; tear down what is left.
		s.stop.Store(true)
		_ = srv.Close()
		hardStop()
		tl.wg.Wait()
		return fmt.Errorf("smtpin: serve: %w", err)
	case <-ctx.Done():
	}

	s.stop.Store(true)
	s.log.InfoContext(ctx, "smtp stopping", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	// Stop accepting and let go-smtp's Serve return before Shutdown: its
	// Shutdown waits on a WaitGroup that Serve adds to per connection, and
	// an Add racing that Wait is a data race inside go-smtp.
	_ = tl.Close()
	<-served                  // the accept error from our own Close; expected
	err := srv.Shutdown(sctx) // waits for sessions to end (listener already closed)
	if err == nil {
		s.log.InfoContext(ctx, "smtp stopped")
		return nil
	}
	hardStop()
	n := tl.closeAll()
	tl.wg.Wait()
	s.log.WarnContext(ctx, "smtp stop forced", "connections_closed", n, "err", err)
	return fmt.Errorf("smtpin: graceful stop: %d connection(s) force-closed: %w", n, err)
}

// session is one SMTP connection's state; go-smtp calls Reset between
// transactions, so several messages per connection are independent.
type session struct {
	s      *Server
	ctx    context.Context
	remote string

	// mu guards the envelope: with BDAT, go-smtp runs Data on another
	// goroutine, concurrently with a possible RSET.
	mu   sync.Mutex
	from string
	to   []string
}

func (ss *session) Reset() {
	ss.mu.Lock()
	ss.from, ss.to = "", nil
	ss.mu.Unlock()
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.stop.Load() {
		// Nudge idle connections off during the graceful stop; the MTA retries.
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "service shutting down, try again later"}
	}
	ss.mu.Lock()
	ss.from, ss.to = from, nil
	ss.mu.Unlock()
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if rc := ss.s.rc; rc != nil {
		ctx, cancel := context.WithTimeout(ss.ctx, ss.s.cfg.DeliverTimeout)
		err := rc.CheckRecipient(ctx, to)
		cancel()
		switch {
		case errors.Is(err, ErrUnknownRecipient):
			ss.s.log.InfoContext(ctx, "smtp recipient refused", "rcpt", to, "remote", ss.remote)
			return errUnknownRecipient
		case err != nil:
			ss.s.log.WarnContext(ctx, "smtp recipient check failed", "rcpt", to, "remote", ss.remote, "err", err)
			return errTemporary
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, t := range ss.to {
		if t == to { // a repeated RCPT must not deliver twice
			return nil
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.mu.Lock()
	env := Envelope{From: ss.from, To: slices.Clone(ss.to), RemoteAddr: ss.remote}
	ss.mu.Unlock()

	// Bounded here too, not only by go-smtp: memory must not depend on
	// the peer, and the reply should name the limit.
	limit := ss.s.cfg.MaxMessageBytes
	raw, err := io.ReadAll(io.LimitReader(r, limit+1))
	if errors.Is(err, smtp.ErrDataTooLarge) || int64(len(raw)) > limit {
		ss.s.log.WarnContext(ss.ctx, "smtp message too large", "from", env.From, "remote", env.RemoteAddr, "limit", limit)
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("message too large (limit %d bytes)", limit)}
	}
	if err != nil {
		return err // peer vanished or aborted (RSET during BDAT); nothing to acknowledge
	}
	env.ReceivedAt = time.Now().UTC()
	return ss.s.deliver(ss.ctx, env, raw)
}

var (
	errUnknownRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
	errTemporary        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure, try again later"}
)

// deliver hands one message to the Deliverer inside a span and maps its
// error to the SMTP reply.
func (s *Server) deliver(ctx context.Context, env Envelope, raw []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DeliverTimeout)
	defer cancel()
	ctx, span := tracer.Start(ctx, "smtp DATA",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(peerAttrs(env.RemoteAddr)...),
		trace.WithAttributes(
			attribute.Int("smtp.recipients.count", len(env.To)),
			attribute.Int("smtp.message.size", len(raw)),
		))
	defer span.End()

	// Never log the body: it is customer content.
	attrs := []any{"from", env.From, "rcpts", len(env.To), "size", len(raw), "remote", env.RemoteAddr}
	err := s.d.Deliver(ctx, env, raw)
	if err == nil {
		s.log.InfoContext(ctx, "smtp message accepted", attrs...)
		return nil
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	s.log.WarnContext(ctx, "smtp message not accepted", append(attrs, "err", err)...)

	var rej *RejectedError
	switch {
	case errors.Is(err, ErrUnknownRecipient):
		return errUnknownRecipient
	case errors.As(err, &rej):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: rej.Reason}
	default:
		// Internals stay out of the reply; the sender's MTA just retries.
		return errTemporary
	}
}

func peerAttrs(hostport string) []attribute.KeyValue {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return []attribute.KeyValue{attribute.String("network.peer.address", hostport)}
	}
	kv := []attribute.KeyValue{attribute.String("network.peer.address", host)}
	if p, err := strconv.Atoi(port); err == nil {
		kv = append(kv, attribute.Int("network.peer.port", p))
	}
	return kv
}

// trackingListener remembers accepted connections, because go-smtp's Close
// is unusable after Shutdown: a timed-out stop must close them itself and
// wait for their sessions to end.
type trackingListener struct {
	net.Listener
	wg    sync.WaitGroup // one per accepted connection, done when go-smtp closes it
	mu    sync.Mutex
	conns map[*trackedConn]struct{}

	closeOnce sync.Once
	closeErr  error
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.wg.Add(1) // Accept runs before Serve returns, so before any wg.Wait
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// Close is idempotent so go-smtp's Shutdown closing it again is not an error.
func (l *trackingListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// closeAll closes the sockets under go-smtp, which then ends each session
// (and calls trackedConn.Close). It reports how many were open.
func (l *trackingListener) closeAll() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Conn.Close()
	}
	return len(l.conns)
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.wg.Done()
	})
	return c.Conn.Close()
}

// slogAdapter routes go-smtp's internal error log (accept/connection
// errors; never message content) to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.log.Warn("smtp server error", "detail", fmt.Sprintf(format, v...))
}

func (a slogAdapter) Println(v ...any) {
	a.log.Warn("smtp server error", "detail", strings.TrimSpace(fmt.Sprintln(v...)))
}
