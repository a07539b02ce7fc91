package httpx_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/httpx"
)

func TestListenServesAndDrainsOnCancel(t *testing.T) {
	t.Parallel()
	e := httpx.New(httpx.Config{}, slog.New(slog.DiscardHandler))
	entered, release := make(chan struct{}), make(chan struct{})
	e.GET("/slow", func(c echo.Context) error {
		close(entered)
		<-release
		return c.String(http.StatusOK, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpx.Listen(ctx, e, ln, 10*time.Second) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel() // shutdown starts with the request in flight

	select {
	case err := <-served:
		t.Fatalf("Listen returned %v before the in-flight request finished", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request: %q, %v; want it completed", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepts connections after shutdown")
	}
}

func TestServeReportsListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := httpx.New(httpx.Config{}, nil)
	if err := httpx.Serve(context.Background(), e, ln.Addr().String(), time.Second); err == nil {
		t.Fatal("Serve on a taken port returned nil")
	}
}

func TestShutdownTimeoutBoundsDrain(t *testing.T) {
	t.Parallel()
	e := httpx.New(httpx.Config{}, slog.New(slog.DiscardHandler))
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	e.GET("/stuck", func(c echo.Context) error {
		close(entered)
		<-release
		return nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- httpx.Listen(ctx, e, ln, 100*time.Millisecond) }()
	go func() {
		if res, err := http.Get("http://" + ln.Addr().String() + "/stuck"); err == nil {
			res.Body.Close()
		}
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		if err == nil {
			t.Fatal("Listen returned nil although a request outlived the shutdown timeout")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not give up after its shutdown timeout")
	}
}
