package httpx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Server timeouts that protect the listener from slow or idle clients.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Serve listens on addr and serves e until ctx is cancelled, then stops
// accepting connections and drains in-flight requests for at most
// shutdownTimeout. It returns nil after a clean drain, or the error that
// stopped serving.
func Serve(ctx context.Context, e *echo.Echo, addr string, shutdownTimeout time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", addr, err)
	}
	return Listen(ctx, e, ln, shutdownTimeout)
}

// Listen is Serve on a listener the caller opened (tests listen on
// 127.0.0.1:0 and read ln.Addr()). It closes ln.
func Listen(ctx context.Context, e *echo.Echo, ln net.Listener, shutdownTimeout time.Duration) error {
	if shutdownTimeout <= 0 {
		shutdownTimeout = DefaultShutdownTimeout
	}
	srv := e.Server
	srv.Handler = e
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = readHeaderTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = idleTimeout
	}
	e.Listener = ln

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // someone called e.Shutdown / e.Close
		}
		return fmt.Errorf("http serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	// ctx is already done: drain on a fresh deadline that keeps ctx's values.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-served
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("http shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}
