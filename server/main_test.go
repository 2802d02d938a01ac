package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

func TestMain(m *testing.M) {
	if os.Getenv(childHubEnv) != "" {
		os.Exit(serveChildHub())
	}
	goredis.SetLogger(quietRedis{})
	// A go-redis pool whose dial failed (a Redis master a test killed)
	// retries in a goroutine that sleeps a second between attempts and
	// sees its client closed only when it wakes: it ends on its own.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// quietRedis drops go-redis's own log lines (dials refused while a test
// has Redis down), which the tests' errors already report.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to count descriptors: %v", err)
	}
	return len(ents)
}

// TestNewStartsNothing: New only allocates, so servers that are never run
// (a test that reads their metrics, a command that fails before serving)
// leave no goroutine and no descriptor behind.
func TestNewStartsNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	fds := openFDs(t)
	for range 3 {
		h := hub.New(hub.Options{Store: memory.New(store.Retention{}), Logger: slog.New(slog.DiscardHandler)})
		srv := New(config.Default(), h, nil, slog.New(slog.DiscardHandler))
		if _, err := srv.reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t, ignore)
	if n := openFDs(t); n != fds {
		t.Fatalf("open descriptors went from %d to %d", fds, n)
	}
}

// TestRunStopsWhatItStarted runs a server with an open, parked stream,
// stops it, and checks that the poller, the hub, the metrics loop and
// every connection are gone when Run returns, and that Run refuses to run
// twice.
func TestRunStopsWhatItStarted(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	fds := openFDs(t)
	ts := start(t, nil, nil)

	// A stream, read until its first event: the hub runs (it committed
	// the publish) and the stream is live.
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /events?topic=demo HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	rd := newLineReader(c)
	rd.until(t, func(l string) bool { return strings.HasPrefix(l, "retry:") })
	if _, err := ts.hub.Publish(context.Background(), store.Record{Topic: "demo", Data: "x"}); err != nil {
		t.Fatal(err)
	}
	rd.until(t, func(l string) bool { return l == "data: x" })

	if err := ts.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The stream ended with a retry hint, the connection closed.
	rd.until(t, func(l string) bool { return strings.HasPrefix(l, "retry:") })
	rd.eof(t)
	c.Close()
	goleak.VerifyNone(t, ignore)
	if n := openFDs(t); n != fds {
		t.Fatalf("open descriptors went from %d to %d", fds, n)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Run(context.Background(), ln); err == nil {
		t.Fatal("a second Run was accepted")
	}
}

// TestZeroConfig: a zero config.Config (and a nil verifier and logger)
// is a working configuration, as a file that sets nothing is.
func TestZeroConfig(t *testing.T) {
	h := hub.New(hub.Options{Store: memory.New(store.Retention{}), Logger: slog.New(slog.DiscardHandler)})
	addr, _ := runLoopback(t, New(&config.Config{}, h, nil, nil))
	base := "http://" + addr
	for _, tt := range []struct {
		path, accept string
		status       int
		code         string
	}{
		{"/healthz", "", 200, ""},
		{"/events?topic=demo", "text/event-stream", 401, policy.CodeTokenMissing},
		{"/events?topic=demo", "*/*", 406, policy.CodeAcceptNotAcceptable}, // strict profile by default
		{"/metrics", "", 200, ""},
	} {
		req, _ := http.NewRequest("GET", base+tt.path, nil)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p policy.Problem
		if tt.code != "" {
			_ = json.NewDecoder(res.Body).Decode(&p)
		}
		res.Body.Close()
		if res.StatusCode != tt.status || p.Code != tt.code {
			t.Errorf("%s (Accept %q): %d %q, want %d %q", tt.path, tt.accept, res.StatusCode, p.Code, tt.status, tt.code)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestNewVerifierZeroConfig: the verifier of a zero config.Config has the
// defaults' anonymous topic and the secret.
func TestNewVerifierZeroConfig(t *testing.T) {
	v, stop, err := NewVerifier(context.Background(), &config.Config{}, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if want := *config.Default().Auth.AnonymousSubscribe; strings.Join(v.Anonymous, ",") != strings.Join(want, ",") {
		t.Fatalf("anonymous %q, want %q", v.Anonymous, want)
	}
	if _, prob := v.Verify(token(t, allPerms, time.Hour)); prob != nil {
		t.Fatalf("a token of the secret: %v", prob)
	}
}

// lineReader reads a stream's lines (chunk framing included) from a raw
// connection under a deadline.
type lineReader struct {
	c  net.Conn
	br *bufio.Reader
}

func newLineReader(c net.Conn) *lineReader {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return &lineReader{c: c, br: bufio.NewReader(c)}
}

// until reads lines until ok accepts one.
func (r *lineReader) until(t *testing.T, ok func(string) bool) {
	t.Helper()
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before the line wanted: %v", err)
		}
		if ok(strings.TrimRight(l, "\r\n")) {
			return
		}
	}
}

// eof reads to the end of the connection, which must be a clean close.
func (r *lineReader) eof(t *testing.T) {
	t.Helper()
	if _, err := io.Copy(io.Discard, r.br); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("the connection did not close cleanly: %v", err)
	}
}
