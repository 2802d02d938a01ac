package server

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sseguard/sseguard/store"
)

// http11Only returns a copy of c whose transport speaks HTTP/1.1 over
// TLS, as a client that does not offer h2 in ALPN does.
func http11Only(c *http.Client) *http.Client {
	tr := c.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	return &http.Client{Transport: tr}
}

// waitParked polls until s has n parked streams, for up to 10 s.
func waitParked(t *testing.T, s *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.poller.Len() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams parked after 10 s, want %d", s.poller.Len(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestTLSStreamIsParked: an HTTP/1.1 stream over TLS is parked as a plain
// one is (before, TLS streams kept their handler goroutine), gets live
// events through the poller, and ends at shutdown with the jittered
// retry hint, leaving no goroutine behind. An HTTP/2 stream on the same
// server is not parked.
func TestTLSStreamIsParked(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ts, h2 := startTLS(t, nil)
	h1 := http11Only(h2)
	defer h1.Transport.(*http.Transport).CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hdr := http.Header{"Authorization": {"Bearer " + token(t, allPerms, time.Hour)}}

	res2, lines2 := streamLines(t, ctx, h2, ts.base+"/events?topic=t", hdr)
	if res2.ProtoMajor != 2 {
		t.Fatalf("the h2 client got %s", res2.Proto)
	}
	waitSubscribers(t, ts.hub, 1)
	if _, err := ts.hub.Publish(ctx, store.Record{Topic: "t", Data: "first"}); err != nil {
		t.Fatal(err)
	}
	for line := range lines2 {
		if line == "data: first" {
			break
		}
	}
	if n := ts.srv.poller.Len(); n != 0 {
		t.Fatalf("%d streams parked with only an HTTP/2 stream open", n)
	}

	res, lines := streamLines(t, ctx, h1, ts.base+"/events?topic=t", hdr)
	if res.ProtoMajor != 1 || res.TLS == nil {
		t.Fatalf("stream over %s, TLS %v: want HTTP/1.1 over TLS", res.Proto, res.TLS != nil)
	}
	waitParked(t, ts.srv, 1)
	if _, err := ts.hub.Publish(ctx, store.Record{Topic: "t", Data: "x"}); err != nil {
		t.Fatal(err)
	}
	got := false
	for line := range lines {
		if line == "data: x" {
			got = true
			break
		}
	}
	if !got {
		t.Fatal("the parked TLS stream ended before its event")
	}
	go func() { _ = ts.stop() }()
	ms := lastRetry(t, lines)
	if ctx.Err() != nil {
		t.Fatal("the parked TLS stream did not end within 20 s of the shutdown")
	}
	if ms < 1000 || ms >= 3000 {
		t.Fatalf("last retry %d ms at shutdown, want 1000-2999", ms)
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	for range lines2 {
	}
	res.Body.Close()
	res2.Body.Close()
	h2.Transport.(*http.Transport).CloseIdleConnections()
	h1.Transport.(*http.Transport).CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}
