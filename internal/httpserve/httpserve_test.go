package httpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// logLines is a log sink that hands each line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test reads only the lines it expects
	}
	return len(p), nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// openStream sends a GET to addr and returns the connection once the
// response header has arrived.
func openStream(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("stream: %v %v", res, err)
	}
	return c, br
}

func TestNewDefaults(t *testing.T) {
	s := New(http.NotFoundHandler(), Options{})
	hs := s.HTTP
	if hs.ReadHeaderTimeout != DefaultReadHeaderTimeout || hs.IdleTimeout != DefaultIdleTimeout ||
		hs.MaxHeaderBytes != DefaultMaxHeaderBytes || hs.TLSConfig != nil || hs.ErrorLog == nil ||
		s.shutdownTimeout != DefaultShutdownTimeout || s.log == nil {
		t.Fatalf("zero Options: %+v, shutdown %v", hs, s.shutdownTimeout)
	}
	s = New(http.NotFoundHandler(), Options{ReadHeaderTimeout: time.Second, IdleTimeout: 2 * time.Second, MaxHeaderBytes: 100, ShutdownTimeout: 3 * time.Second})
	if s.HTTP.ReadHeaderTimeout != time.Second || s.HTTP.IdleTimeout != 2*time.Second || s.HTTP.MaxHeaderBytes != 100 || s.shutdownTimeout != 3*time.Second {
		t.Fatalf("set Options not kept: %+v", s.HTTP)
	}
}

// TestServeRunsHooksAndWaitsForThem opens a stream that ends only when a
// shutdown hook says so, stops the server, and checks that the stream
// ended cleanly, that Serve returned nil, and only after the hook had
// returned.
func TestServeRunsHooksAndWaitsForThem(t *testing.T) {
	stop := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_ = http.NewResponseController(w).Flush()
		<-stop
		_, _ = io.WriteString(w, "bye")
	})
	s := New(h, Options{ShutdownTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	hookEnd := make(chan struct{})
	var hookDone bool
	s.OnShutdown(func() {
		close(stop)
		<-hookEnd // Serve must wait for this
		hookDone = true
	})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	_, br := openStream(t, ln.Addr().String())
	cancel()
	body, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(body), "bye") {
		t.Fatalf("stream ended with %q, %v", body, err)
	}
	select {
	case err := <-errc:
		t.Fatalf("Serve returned (%v) before its hook did", err)
	default:
	}
	close(hookEnd)
	if err := <-errc; err != nil || !hookDone {
		t.Fatalf("Serve: %v (hook done %v)", err, hookDone)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("the listener still accepts after Serve returned")
	}
}

// TestServeClosesPastTheTimeout holds a handler that ignores the shutdown:
// past the shutdown timeout the connection is closed, which cancels the
// handler's context, and Serve returns.
func TestServeClosesPastTheTimeout(t *testing.T) {
	canceled := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
		close(canceled)
	})
	logs := make(logLines, 16)
	s := New(h, Options{ShutdownTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	openStream(t, ln.Addr().String())
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	<-canceled
	// Serve logs the line before it returns.
	var all []string
	for len(logs) > 0 {
		l := <-logs
		if strings.Contains(l, "shutdown timed out") {
			return
		}
		all = append(all, l)
	}
	t.Fatalf("no timeout line in the log:\n%s", strings.Join(all, ""))
}

// failingListener fails its first Accept.
type failingListener struct{ net.Listener }

var errAccept = errors.New("accept failed for the test")

func (l failingListener) Accept() (net.Conn, error) { return nil, errAccept }

// TestServeFailureStopsLikeAShutdown makes serving fail: Serve returns the
// error, wrapped, after running the hooks, with ctx still live.
func TestServeFailureStopsLikeAShutdown(t *testing.T) {
	s := New(http.NotFoundHandler(), Options{Logger: slog.New(slog.DiscardHandler)})
	hooked := false
	s.OnShutdown(func() { hooked = true })
	ln := listen(t)
	err := s.Serve(context.Background(), failingListener{ln})
	if !errors.Is(err, errAccept) || !strings.HasPrefix(err.Error(), "serve: ") || !hooked {
		t.Fatalf("Serve: %v (hook ran %v)", err, hooked)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("the listener still accepts after Serve returned")
	}
}

// TestServeAfterCancel starts with ctx already ended: Serve stops at once.
func TestServeAfterCancel(t *testing.T) {
	s := New(http.NotFoundHandler(), Options{Logger: slog.New(slog.DiscardHandler)})
	ran := 0
	s.OnShutdown(func() { ran++ })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Serve(ctx, listen(t)); err != nil || ran != 1 {
		t.Fatalf("Serve: %v, hook ran %d times", err, ran)
	}
}
