package httpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBodyDeadline sends one body whole and one that stalls half-way: the
// whole one is read, the stalled one fails at the deadline and calls
// onTimeout.
func TestBodyDeadline(t *testing.T) {
	type result struct {
		body     string
		err      error
		timedOut bool
	}
	results := make(chan result, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var timedOut atomic.Bool
		body, ok := BodyDeadline(w, r.Body, 300*time.Millisecond, func() { timedOut.Store(true) })
		if !ok {
			t.Error("a connection's writer cannot set deadlines")
		}
		b, err := io.ReadAll(body)
		results <- result{string(b), err, timedOut.Load()}
		w.WriteHeader(http.StatusNoContent)
	})
	s := New(h, Options{Logger: slog.New(slog.DiscardHandler)})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()

	send := func(req string) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		return c
	}
	whole := send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	defer whole.Close()
	if r := <-results; r.err != nil || r.body != "hello" || r.timedOut {
		t.Fatalf("whole body: %+v", r)
	}
	if res, err := http.ReadResponse(bufio.NewReader(whole), nil); err != nil || res.StatusCode != 204 {
		t.Fatalf("whole body: %v %v", res, err)
	}
	stalled := send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
	defer stalled.Close()
	if r := <-results; !errors.Is(r.err, os.ErrDeadlineExceeded) || r.body != "hel" || !r.timedOut {
		t.Fatalf("stalled body: %+v", r)
	}
}

func TestBodyDeadlineWithoutConnection(t *testing.T) {
	body := io.NopCloser(strings.NewReader("x"))
	got, ok := BodyDeadline(httptest.NewRecorder(), body, time.Second, func() { t.Error("timed out") })
	if ok || got != body {
		t.Fatalf("a recorder: ok %v, body %T", ok, got)
	}
}
