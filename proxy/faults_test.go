package proxy_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/proxy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// These tests put the proxy in front of upstreams that each have one
// fault, and assert what the client saw on the wire and what the drift log
// said.

const streamCT = "text/event-stream; charset=utf-8"

// writeChunk writes s as one HTTP/1.1 chunk; "" writes the terminator.
func writeChunk(w io.Writer, s string) {
	if s == "" {
		_, _ = io.WriteString(w, "0\r\n\r\n")
		return
	}
	_, _ = fmt.Fprintf(w, "%x\r\n%s\r\n", len(s), s)
}

func TestNoContentType(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // no sniffing: send no Content-Type at all
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "data: one\n\n")
	})
	tp := startProxy(t, baseConfig(up.URL))
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	if body := r.readAll(5 * time.Second); body != "data: one\n\n" || !r.clean {
		t.Fatalf("body %q (clean end %v), want %q", body, r.clean, "data: one\n\n")
	}
	tp.logs.mustFind(t, "header drift", map[string]any{
		"route": "/events", "header": "Content-Type", "kind": "missing", "upstream": []string{},
		"policy": streamCT, "status": 200, "count": 1,
	})
	tp.logs.mustFind(t, "header drift", map[string]any{
		"header": "Cache-Control", "kind": "wrong_value", "upstream": []string{"no-cache"},
		"policy": "no-cache, no-store, no-transform",
	})
	if got := tp.metric(t, `sseguard_proxy_header_drift_total{header="Content-Type",kind="missing"}`); got != 1 {
		t.Errorf("drift metric = %v, want 1", got)
	}
}

func TestTextPlain(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "data: this is not a stream\n\n")
	})
	tp := startProxy(t, baseConfig(up.URL))
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	body := checkProblem(t, r, 502, policy.CodeUpstreamFailed, "5", "/api/poll")
	if strings.Contains(body, "not a stream") {
		t.Errorf("the upstream body reached the client: %q", body)
	}
	tp.logs.mustFind(t, "header drift", map[string]any{
		"route": "/events", "header": "Content-Type", "kind": "wrong_value",
		"upstream": []string{"text/plain; charset=utf-8"}, "policy": streamCT, "count": 1,
	})
	tp.logs.mustFind(t, "upstream failed", map[string]any{
		"route": "/events", "reason": "content_type", "status": 502, "upstream_status": 200,
	})
}

func TestDuplicateCacheControl(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header()["Cache-Control"] = []string{"no-cache", "public, max-age=60"}
		_, _ = io.WriteString(w, "data: one\n\n")
	})
	tp := startProxy(t, baseConfig(up.URL))
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	if body := r.readAll(5 * time.Second); body != "data: one\n\n" {
		t.Fatalf("body %q", body)
	}
	tp.logs.mustFind(t, "header drift", map[string]any{
		"header": "Cache-Control", "kind": "duplicate", "upstream": []string{"no-cache", "public, max-age=60"},
		"policy": "no-cache, no-store, no-transform",
	})
	if got := tp.metric(t, `sseguard_proxy_header_drift_total{header="Cache-Control",kind="duplicate"}`); got != 1 {
		t.Errorf("drift metric = %v, want 1", got)
	}
}

func TestGzipStream(t *testing.T) {
	next := make(chan struct{})
	gotEncoding := make(chan string, 1)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		gotEncoding <- r.Header.Get("Accept-Encoding")
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", "999")
		w.Header().Del("Content-Length")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, "data: one\n\n")
		_ = zw.Flush()
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(zw, "data: two\n\n")
		_ = zw.Close()
	})
	tp := startProxy(t, baseConfig(up.URL))
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream", "Accept-Encoding: gzip, br")
	checkStreamHead(t, r, policy.Strict)
	if got := <-gotEncoding; got != "identity" {
		t.Errorf("upstream got Accept-Encoding %q, want identity", got)
	}
	// The first event arrives decoded before the upstream writes the second.
	r.readUntil(func(b string) bool { return b == "data: one\n\n" }, 5*time.Second)
	close(next)
	if body := r.readAll(5 * time.Second); body != "data: one\n\ndata: two\n\n" || !r.clean {
		t.Fatalf("body %q (clean %v)", body, r.clean)
	}
	tp.logs.mustFind(t, "header drift", map[string]any{
		"header": "Content-Encoding", "kind": "content_encoding", "upstream": []string{"gzip"}, "policy": "",
	})
}

func TestServerErrorHTML(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Powered-By", "Express")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, "<html><body><pre>TypeError: x is undefined\n    at /srv/app/stream.js:42</pre></body></html>")
	})
	tp := startProxy(t, baseConfig(up.URL))
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	body := checkProblem(t, r, 502, policy.CodeUpstreamFailed, "5", "/api/poll")
	for _, leak := range []string{"<html", "TypeError", "stream.js"} {
		if strings.Contains(body, leak) {
			t.Errorf("the upstream error body reached the client: %q", body)
		}
	}
	if got := r.values("X-Powered-By"); len(got) > 0 {
		t.Errorf("X-Powered-By = %q reached the client", got)
	}
	tp.logs.mustFind(t, "upstream failed", map[string]any{
		"route": "/events", "reason": "status", "status": 502, "code": "upstream_failed", "upstream_status": 500, "count": 1,
	})
	if got := tp.logs.find(t, "header drift", nil); len(got) != 0 {
		t.Errorf("an error response is replaced, not compared: drift lines %v", got)
	}
}

func TestStallLongerThanHeartbeat(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, step := range []struct {
			s     string
			pause time.Duration
		}{
			{"data: one\n\n", 300 * time.Millisecond}, // idle between events
			{"data: two\n\n", 0},
			{"data: par", 300 * time.Millisecond}, // stalled inside an event
			{"tial\n\n", 0},
		} {
			_, _ = io.WriteString(w, step.s)
			f.Flush()
			time.Sleep(step.pause)
		}
	})
	cfg := baseConfig(up.URL)
	cfg.Heartbeat = config.Duration(50 * time.Millisecond)
	tp := startProxy(t, cfg)
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	body := r.readAll(10 * time.Second)
	want := regexp.MustCompile(`^data: one\n\n(: keep-alive\n\n){2,}data: two\n\n(: keep-alive\n\n)*data: partial\n\n$`)
	if !want.MatchString(body) || !r.clean {
		t.Fatalf("body %q (clean %v), want heartbeats between events and none inside one", body, r.clean)
	}
	if got := events(t, body); !slices.Equal(got, []string{"one", "two", "partial"}) {
		t.Errorf("client events %q", got)
	}
	if n := tp.metric(t, `sseguard_proxy_heartbeats_total{result="skipped_mid_event"}`); n < 1 {
		t.Errorf("skipped heartbeats = %v, want at least 1", n)
	}
	if len(tp.logs.find(t, "heartbeat skipped: upstream stalled mid-event", map[string]any{"route": "/events"})) == 0 {
		t.Errorf("no log line for the skipped heartbeat:\n%s", tp.logs)
	}
}

func TestDroppedMidEvent(t *testing.T) {
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		writeChunk(conn, "data: one\n\n")
		writeChunk(conn, "id: 2\ndata: hal")
		time.Sleep(150 * time.Millisecond) // longer than the heartbeat: none may come
		writeChunk(conn, "f")
		// The connection drops here, inside the chunked body and inside an event.
	})
	cfg := baseConfig(up)
	cfg.Heartbeat = config.Duration(40 * time.Millisecond)
	tp := startProxy(t, cfg)
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	body := r.readAll(5 * time.Second)
	if !regexp.MustCompile(`^data: one\n\n(: keep-alive\n\n)*id: 2\ndata: half$`).MatchString(body) {
		t.Fatalf("body %q, want the bytes up to the drop and nothing after them", body)
	}
	if !r.clean {
		t.Errorf("the response was aborted; want a clean end (the chunked terminator)")
	}
	// What a client makes of it: the unfinished event is discarded, and its
	// id never becomes the last event ID.
	if got := events(t, body); !slices.Equal(got, []string{"one"}) {
		t.Errorf("client events %q, want only [one]", got)
	}
	tp.logs.mustFind(t, "upstream ended the stream mid-event; the client discards the unfinished event",
		map[string]any{"route": "/events", "how": "mid_event"})
	if got := tp.metric(t, `sseguard_proxy_stream_ends_total{how="mid_event",route="/events"}`); got != 1 {
		t.Errorf("stream end metric = %v, want 1", got)
	}
}

func TestConnectionKeepAliveOverHTTP2(t *testing.T) {
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"+
			"Cache-Control: no-cache\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"+
			"Transfer-Encoding: chunked\r\n\r\n")
		writeChunk(conn, "data: over h2\n\n")
		writeChunk(conn, "")
	})
	logs := &syncBuffer{}
	px, err := proxy.New(context.Background(), baseConfig(up), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	srv := httptest.NewUnstartedServer(px)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	u, _ := url.Parse(srv.URL + "/events")
	c := &rawhttp.Client{Proto: rawhttp.HTTP2, Insecure: true} // the test server's own certificate
	res, err := c.Do(context.Background(), &rawhttp.Request{Method: "GET", URL: u,
		Header: []rawhttp.Field{{Name: "accept", Value: "text/event-stream"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("negotiated %s, want HTTP/2", res.Proto)
	}
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("body: %v (so far %q)", err, raw)
	}
	body := string(raw)
	get := func(name string) []string { return res.Values(name) }
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, h := range policy.Strict.Headers(policy.KindStream, 2, 0) {
		if got := get(strings.ToLower(h.Name)); !slices.Equal(got, []string{h.Value}) {
			t.Errorf("%s = %q, want exactly [%q]", h.Name, got, h.Value)
		}
	}
	for _, name := range policy.ConnectionSpecific {
		if got := get(strings.ToLower(name)); len(got) > 0 {
			t.Errorf("connection-specific %s = %q sent over HTTP/2", name, got)
		}
	}
	if body != "data: over h2\n\n" {
		t.Errorf("body %q", body)
	}
	for _, h := range []struct{ name, value string }{{"Connection", "keep-alive"}, {"Keep-Alive", "timeout=5"}} {
		logs.mustFind(t, "header drift", map[string]any{
			"route": "/events", "header": h.name, "kind": "forbidden_h2", "upstream": []string{h.value},
			"policy": "", "client_proto": "HTTP/2.0",
		})
	}
}

func TestUpstreamSlowHeaders(t *testing.T) {
	up := rawUpstream(t, func(conn net.Conn, _ *http.Request, done <-chan struct{}) {
		select { // 20 s before the header, unless the test is over
		case <-time.After(20 * time.Second):
		case <-done:
			return
		}
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
	})
	cfg := baseConfig(up)
	cfg.HeaderTimeout = config.Duration(200 * time.Millisecond)
	tp := startProxy(t, cfg)
	start := time.Now()
	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
	checkProblem(t, r, 504, policy.CodeUpstreamTimeout, "5", "/api/poll")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the 504 took %s; want it shortly after the 200 ms header timeout", d)
	}
	line := tp.logs.mustFind(t, "upstream failed", map[string]any{"route": "/events", "reason": "timeout", "status": 504})
	if err, _ := line["err"].(string); !strings.Contains(err, "timeout awaiting response headers") {
		t.Errorf("err = %q", err)
	}
}

func TestUpstreamRefusedAndReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := "http://" + ln.Addr().String()
	ln.Close()
	reset := rawUpstream(t, func(conn net.Conn, _ *http.Request, _ <-chan struct{}) {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
	})
	for _, tc := range []struct{ name, upstream string }{
		{"refused", closedPort},
		{"reset", reset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := startProxy(t, baseConfig(tc.upstream))
			r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
			checkProblem(t, r, 502, policy.CodeUpstreamFailed, "5", "/api/poll")
			tp.logs.mustFind(t, "upstream failed", map[string]any{"route": "/events", "reason": "connect", "status": 502})
		})
	}
}

func TestUpstreamClientErrorsKeepTheirMeaning(t *testing.T) {
	for _, tc := range []struct {
		upstream       int
		retry          string
		status         int
		code, fallback string
	}{
		{404, "", 404, policy.CodeNotFound, "/api/poll"},
		{401, "", 401, policy.CodeTokenMissing, "/api/poll"},
		{429, "7", 429, policy.CodeRateLimited, "/api/poll"},
		{503, "7", 503, policy.CodeUnavailable, "/api/poll"},
		{502, "5", 502, policy.CodeUpstreamFailed, "/api/poll"},
	} {
		t.Run(fmt.Sprint(tc.upstream), func(t *testing.T) {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.Header().Set("Set-Cookie", "session=secret")
				http.Error(w, "upstream says no", tc.upstream)
			})
			tp := startProxy(t, baseConfig(up.URL))
			r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
			body := checkProblem(t, r, tc.status, tc.code, tc.retry, tc.fallback)
			if strings.Contains(body, "upstream says no") || len(r.values("Set-Cookie")) > 0 {
				t.Errorf("upstream error content reached the client: %q %q", body, r.fields)
			}
		})
	}
}
