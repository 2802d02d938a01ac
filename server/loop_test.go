package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
)

// startTLS is start over HTTPS. Its client speaks HTTP/2, whose streams
// are never parked: the handler serves them itself, with
// sse.Stream.Serve. It returns a client that trusts the server.
func startTLS(t *testing.T, mutate func(*config.Config)) (*testServer, *http.Client) {
	t.Helper()
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, "hub", nil, nil, []net.IP{net.ParseIP("127.0.0.1")}, false)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, mutate, nil, func(s *Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}
	})
	ts.base = "https://" + strings.TrimPrefix(ts.base, "http://")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return ts, &http.Client{Transport: tr}
}

// streamLines opens a stream at path and returns its status and a reader
// of its lines, which sends them until the stream ends.
func streamLines(t *testing.T, ctx context.Context, c *http.Client, url string, hdr http.Header) (*http.Response, <-chan string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header = hdr.Clone()
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return res, lines
}

// lastRetry reads lines until the stream ends and returns the last retry
// field among them, in milliseconds (-1 for none).
func lastRetry(t *testing.T, lines <-chan string) int {
	t.Helper()
	ms := -1
	for line := range lines {
		if v, ok := strings.CutPrefix(line, "retry: "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("retry line %q", line)
			}
			ms = n
		}
	}
	return ms
}

// TestServedStreamsEnd: the streams a handler serves itself (the event
// stream over TLS and HTTP/2, the dashboard's always) send heartbeats
// while idle, and end with retry: 0 when the token expires and with a
// jittered 1-3 s hint when the server shuts down.
func TestServedStreamsEnd(t *testing.T) {
	for _, path := range []string{"events", "dashboard"} {
		for _, end := range []string{"expiry", "shutdown"} {
			t.Run(path+"/"+end, func(t *testing.T) {
				ts, client := startTLS(t, func(c *config.Config) {
					c.Stream.Heartbeat = config.Duration(200 * time.Millisecond)
				})
				ttl := time.Hour
				if end == "expiry" {
					ttl = 1500 * time.Millisecond
				}
				url, hdr := ts.base+"/events?topic=t", http.Header{"Authorization": {"Bearer " + token(t, allPerms, ttl)}}
				if path == "dashboard" {
					tok := token(t, auth.Permissions{Subscribe: []string{DashboardTopic}}, ttl)
					url, hdr = ts.base+"/dashboard/stream", http.Header{"Cookie": {DashboardCookie + "=" + tok}}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				res, lines := streamLines(t, ctx, client, url, hdr)
				if res.StatusCode != http.StatusOK || res.TLS == nil {
					t.Fatalf("status %d over %s, want 200 over TLS", res.StatusCode, res.Proto)
				}
				// A heartbeat first, after the opening retry: the stream
				// is idle (the dashboard's stats come a second in, events
				// never).
				for line := range lines {
					if line == ": keep-alive" {
						break
					}
				}
				if end == "shutdown" {
					go func() { _ = ts.stop() }()
				}
				ms := lastRetry(t, lines)
				if ctx.Err() != nil {
					t.Fatal("the stream did not end within 20 s")
				}
				switch {
				case end == "expiry" && ms != 0:
					t.Fatalf("last retry %d ms at expiry, want retry: 0 so the client reconnects with a fresh token", ms)
				case end == "shutdown" && (ms < 1000 || ms >= 3000):
					t.Fatalf("last retry %d ms at shutdown, want 1000-2999", ms)
				}
			})
		}
	}
}
