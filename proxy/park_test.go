package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/httpserve/certtest"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/proxy"
)

// waitMetric polls the proxy's metric until it equals want, for at most
// 10 s.
func waitMetric(t *testing.T, tp *testProxy, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := tp.metric(t, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// goroutineStacks returns the stacks of every goroutine of the process.
func goroutineStacks(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Streams over HTTP/1.1 on plain TCP are parked: the gauge counts them,
// and no goroutine of the proxy reads or writes one (no handler, no
// transport read loop, no pump), while events still reach every client.
func TestStreamsAreParked(t *testing.T) {
	const n = 20
	release := make(chan struct{})
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		select {
		case <-release:
		case <-done:
			return
		}
		writeChunk(conn, "data: hello\n\n")
		<-done
	})
	tp := startProxy(t, baseConfig(up))
	streams := make([]*rawResp, n)
	for i := range streams {
		streams[i] = rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
		checkStreamHead(t, streams[i], policy.Strict)
	}
	waitMetric(t, tp, "sseguard_proxy_parked_streams", n)
	// The handlers return just after they parked their stream.
	for deadline := time.Now().Add(10 * time.Second); ; {
		stacks, busy := goroutineStacks(t), ""
		for _, frame := range []string{"proxy.(*Proxy).serve", "proxy.(*streamBody).pump", "net/http.(*persistConn).readLoop"} {
			if c := strings.Count(stacks, frame); c > 0 {
				busy += fmt.Sprintf(" %d in %s", c, frame)
			}
		}
		if busy == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines%s: the streams are not parked", busy)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	close(release)
	for i, r := range streams {
		r.readUntil(func(b string) bool { return strings.Contains(b, "data: hello\n\n") }, 10*time.Second)
		if got := events(t, string(r.body)); !slices.Equal(got, []string{"hello"}) {
			t.Errorf("stream %d: events %q", i, got)
		}
		r.conn.Close()
	}
	// The clients left: every upstream connection is closed with them.
	waitMetric(t, tp, "sseguard_proxy_parked_streams", 0)
}

// A parked stream reads every body framing an upstream may use, and
// undoes it: chunked (with extensions and trailers), Content-Length, and
// close-delimited; a BOM split over several reads is stripped.
func TestParkedUpstreamFramings(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	for _, tc := range []struct {
		name   string
		pieces []string // written with a flush between (TCP may still join them)
		end    string   // metric label of how the upstream ended the stream
	}{
		{"chunked", []string{head + "Transfer-Encoding: chunked\r\n\r\n", "5;ext=1\r\ndata:\r\n", "6\r\n a\n\nda\r\n", "7\r\nta: b\n\n\r\n", "0\r\nX-Trailer: v\r\n\r\n"}, "clean"},
		{"content length", []string{head + "Content-Length: 20\r\n\r\n", "data: a\n\n", "data: b\n\n", "\n\n"}, "clean"},
		{"close delimited", []string{head + "Connection: close\r\n\r\n", "data: a\n\nd", "ata: b\n\n"}, "clean"},
		{"BOM split", []string{head + "Connection: close\r\n\r\n", "\xEF", "\xBB", "\xBFdata: a\n\ndata: b\n\n"}, "clean"},
		{"chunked cut short", []string{head + "Transfer-Encoding: chunked\r\n\r\n", "12\r\ndata: a\n\ndata: b\n\n\r\n", "5\r\n"}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := rawUpstream(t, func(conn net.Conn, _ *http.Request, _ <-chan struct{}) {
				for _, p := range tc.pieces {
					if _, err := io.WriteString(conn, p); err != nil {
						return
					}
				}
			})
			tp := startProxy(t, baseConfig(up))
			r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
			checkStreamHead(t, r, policy.Strict)
			body := r.readAll(10 * time.Second)
			if !r.clean {
				t.Errorf("the response was aborted; want a clean end")
			}
			if got := events(t, body); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("events %q from body %q", got, body)
			}
			if strings.Contains(body, "\xEF") {
				t.Errorf("body %q holds a BOM", body)
			}
			waitMetric(t, tp, fmt.Sprintf(`sseguard_proxy_stream_ends_total{how=%q,route="/events"}`, tc.end), 1)
		})
	}
}

// A client that stops reading is cut off after the write timeout, and its
// upstream connection closed, however much the upstream sends.
func TestParkedSlowClientIsCutOff(t *testing.T) {
	upstreamGone := make(chan struct{})
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		defer close(upstreamGone)
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		event := "data: " + strings.Repeat("x", 16<<10) + "\n\n"
		for range 100_000 { // 1.6 GB at most: far past any socket buffer
			_ = conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(event), event); err != nil {
				return
			}
		}
	})
	cfg := baseConfig(up)
	cfg.WriteTimeout = config.Duration(300 * time.Millisecond)
	tp := startProxy(t, cfg)
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	waitMetric(t, tp, "sseguard_proxy_parked_streams", 1)
	select { // the test's client never reads
	case <-upstreamGone:
	case <-time.After(15 * time.Second):
		t.Fatal("the upstream was still sending 15 s after the client stopped reading")
	}
	waitMetric(t, tp, "sseguard_proxy_parked_streams", 0)
}

// An HTTP/1.0 client gets a close-delimited body from a parked stream.
func TestParkedHTTP10Client(t *testing.T) {
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, _ <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		writeChunk(conn, "data: a\n\n")
		writeChunk(conn, "")
	})
	tp := startProxy(t, baseConfig(up))
	conn, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /events HTTP/1.0\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.TransferEncoding) != 0 || res.ContentLength != -1 {
		t.Errorf("framing: transfer-encoding %q, length %d; want close-delimited", res.TransferEncoding, res.ContentLength)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil || string(body) != "data: a\n\n" {
		t.Fatalf("body %q, err %v", body, err)
	}
}

// On an auto route, a request that asks for an event stream gets a
// connection of its own upstream; when the upstream answers with
// something else, the answer is proxied as before, and not parked.
func TestOwnUpstreamConnectionServesOtherAnswers(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	tp := startProxy(t, &proxy.Config{Upstream: up.URL})
	r := rawGet(t, tp.addr, "/anything", "Accept: text/event-stream, application/json")
	if r.code() != 200 {
		t.Fatalf("status %d", r.code())
	}
	if got := r.values("Content-Type"); !slices.Equal(got, []string{"application/json"}) {
		t.Errorf("Content-Type %q", got)
	}
	if body := r.readAll(5 * time.Second); body != `{"ok":true}` || !r.clean {
		t.Errorf("body %q (clean %v)", body, r.clean)
	}
	if n := tp.metric(t, "sseguard_proxy_parked_streams"); n != 0 {
		t.Errorf("parked %v, want 0", n)
	}
}

// A parked stream whose upstream stalls inside an event at shutdown gets
// until shutdown_timeout to reach a boundary, then is ended where it is:
// the client's body ends cleanly, the unfinished event without a blank
// line (so the client discards it), and Serve returns.
func TestShutdownCutsStalledParkedStream(t *testing.T) {
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		writeChunk(conn, "data: one\n\ndata: tw")
		<-done
	})
	cfg := baseConfig(up)
	cfg.ShutdownTimeout = config.Duration(300 * time.Millisecond)
	px, err := proxy.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- px.Serve(ctx, ln, nil) }()
	r := rawGet(t, ln.Addr().String(), "/events", "Accept: text/event-stream")
	r.readUntil(func(b string) bool { return strings.HasSuffix(b, "data: tw") }, 5*time.Second)
	start := time.Now()
	cancel()
	if body := r.readAll(10 * time.Second); body != "data: one\n\ndata: tw" || !r.clean {
		t.Errorf("body %q (clean %v), want the bytes so far and the body's end", body, r.clean)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return 10 s after the shutdown began")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("the stalled stream was cut after %s, before the 300 ms shutdown timeout", d)
	}
}

// TestTLSStreamsAreParked: streams of HTTP/1.1 clients over TLS are parked
// too (the epoll set watches the TLS connection's own descriptor, and
// writes go through it), and still get their events.
func TestTLSStreamsAreParked(t *testing.T) {
	const n = 5
	release := make(chan struct{})
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		select {
		case <-release:
		case <-done:
			return
		}
		writeChunk(conn, "data: hello\n\n")
		<-done
	})
	ca := certtest.NewCA(t)
	cert, key := ca.Issue(t, certtest.Leaf{CN: "proxy", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	cfg := baseConfig(up)
	cfg.TLS = config.TLS{CertFile: certtest.WriteFile(t, "proxy.pem", cert), KeyFile: certtest.WriteFile(t, "proxy-key.pem", key)}
	tp := startProxy(t, cfg)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	var conns []*tls.Conn
	for range n {
		c, err := tls.Dial("tcp", tp.addr, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, "GET /events HTTP/1.1\r\nHost: "+tp.addr+"\r\nAccept: text/event-stream\r\n\r\n")
		conns = append(conns, c)
	}
	waitMetric(t, tp, "sseguard_proxy_parked_streams", n)
	close(release)
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), "data: hello\n\n") {
			k, err := c.Read(buf)
			got.Write(buf[:k])
			if err != nil {
				t.Fatalf("stream %d: %v after %q", i, err, got.String())
			}
		}
		if !strings.HasPrefix(got.String(), "HTTP/1.1 200 OK\r\n") || !strings.Contains(got.String(), "Strict-Transport-Security: "+policy.DefaultHSTS+"\r\n") {
			t.Errorf("stream %d: %q, want a 200 stream with HSTS", i, got.String())
		}
		c.Close()
	}
	waitMetric(t, tp, "sseguard_proxy_parked_streams", 0)
}
