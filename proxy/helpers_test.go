package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/proxy"
	"github.com/sseguard/sseguard/sse"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines written so far.
func (s *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	s.mu.Lock()
	raw := s.b.String()
	s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(raw), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// find returns the log lines whose msg is msg and whose attributes include
// every one of want (compared in their JSON form).
func (s *syncBuffer) find(t testing.TB, msg string, want map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range s.lines(t) {
		if l["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range want {
			a, _ := json.Marshal(l[k])
			b, _ := json.Marshal(v)
			if !bytes.Equal(a, b) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// mustFind fails unless exactly one log line matches.
func (s *syncBuffer) mustFind(t testing.TB, msg string, want map[string]any) map[string]any {
	t.Helper()
	got := s.find(t, msg, want)
	if len(got) != 1 {
		t.Fatalf("want one %q log line with %v, got %d; log:\n%s", msg, want, len(got), s.String())
	}
	return got[0]
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testProxy is a proxy served on loopback.
type testProxy struct {
	addr string
	px   *proxy.Proxy
	logs *syncBuffer
}

// baseConfig is the configuration most tests start from: one stream route
// at /events with a short heartbeat, and a fallback.
func baseConfig(upstream string) *proxy.Config {
	return &proxy.Config{
		Upstream:  upstream,
		Fallback:  "/api/poll",
		Heartbeat: config.Duration(time.Hour),
		Routes:    []proxy.Route{{Prefix: "/events", Kind: proxy.KindStream}},
	}
}

// startProxy serves a proxy for cfg on loopback until the test ends.
func startProxy(t testing.TB, cfg *proxy.Config) *testProxy {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	px, err := proxy.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- px.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("proxy did not stop within 15 s")
		}
	})
	return &testProxy{addr: ln.Addr().String(), px: px, logs: logs}
}

// metric returns the value of the sample of the proxy's metrics whose line
// starts with prefix (name and labels), or 0.
func (tp *testProxy) metric(t testing.TB, prefix string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	tp.px.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, prefix)), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

// upstream serves h on loopback (HTTP/1.1) until the test ends.
func upstream(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// rawUpstream accepts connections on loopback and hands each, after its
// request head was read, to serve, which writes whatever bytes it likes.
// done is closed when the test ends, before the listener is closed.
func rawUpstream(t testing.TB, serve func(conn net.Conn, req *http.Request, done <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				serve(conn, req, done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

type field struct{ name, value string }

// rawResp is a response read off the wire byte by byte, keeping repeated
// header lines as sent.
type rawResp struct {
	t       testing.TB
	conn    net.Conn
	br      *bufio.Reader
	status  string
	fields  []field
	chunked bool
	length  int // Content-Length, or -1
	body    []byte
	ended   bool // the body ended
	clean   bool // ... with the chunked terminator, or at Content-Length
}

// rawGet sends a GET over a fresh HTTP/1.1 connection and reads the head.
// hdr are "Name: value" lines.
func rawGet(t testing.TB, addr, path string, hdr ...string) *rawResp {
	t.Helper()
	return rawRequest(t, addr, "GET", path, "", hdr...)
}

func rawRequest(t testing.TB, addr, method, path, body string, hdr ...string) *rawResp {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, addr)
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return rawSend(t, addr, method, b.String(), 10*time.Second)
}

// rawSend writes raw, a request as it goes on the wire, over a fresh
// connection, and reads the response head within the given time.
func rawSend(t testing.TB, addr, method, raw string, within time.Duration) *rawResp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	r := &rawResp{t: t, conn: conn, br: bufio.NewReader(conn), length: -1}
	_ = conn.SetReadDeadline(time.Now().Add(within))
	line, err := r.br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the status line: %v", err)
	}
	r.status = strings.TrimRight(line, "\r\n")
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the header: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		r.fields = append(r.fields, field{name, strings.TrimSpace(value)})
	}
	r.chunked = slices.Equal(r.values("Transfer-Encoding"), []string{"chunked"})
	if v := r.values("Content-Length"); len(v) == 1 {
		r.length, _ = strconv.Atoi(v[0])
	}
	if method == "HEAD" || strings.Contains(r.status, " 204 ") || strings.Contains(r.status, " 304 ") {
		r.ended, r.clean = true, true
	}
	return r
}

// values returns every value of the header name, in order, as sent.
func (r *rawResp) values(name string) []string {
	var out []string
	for _, f := range r.fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// code returns the status code.
func (r *rawResp) code() int {
	parts := strings.Fields(r.status)
	if len(parts) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(parts[1])
	return n
}

// readPiece reads the next chunk (or, unframed, what is there) of the body.
func (r *rawResp) readPiece() {
	switch {
	case r.chunked:
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.ended = true
			return
		}
		size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
		if err != nil {
			r.t.Fatalf("bad chunk size line %q", line)
		}
		if size == 0 {
			for { // trailers
				l, err := r.br.ReadString('\n')
				if err != nil || l == "\r\n" {
					r.ended, r.clean = true, err == nil
					return
				}
			}
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			r.ended = true
			return
		}
		r.body = append(r.body, buf[:size]...)
	case r.length >= 0:
		buf := make([]byte, r.length-len(r.body))
		n, err := io.ReadFull(r.br, buf)
		r.body = append(r.body, buf[:n]...)
		r.ended, r.clean = true, err == nil
	default:
		buf := make([]byte, 4096)
		n, err := r.br.Read(buf)
		r.body = append(r.body, buf[:n]...)
		if err != nil {
			r.ended, r.clean = true, err == io.EOF
		}
	}
}

// readUntil reads the body until cond holds for what was read, or the body
// ends, or within passes (a failure).
func (r *rawResp) readUntil(cond func(body string) bool, within time.Duration) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(within))
	for !cond(string(r.body)) && !r.ended {
		r.readPiece()
	}
	if !cond(string(r.body)) {
		r.t.Fatalf("body %q does not satisfy the condition (ended %v)", r.body, r.ended)
	}
}

// readAll reads the body to its end.
func (r *rawResp) readAll(within time.Duration) string {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(within))
	for !r.ended {
		r.readPiece()
	}
	return string(r.body)
}

// events parses body as a client does and returns the data of each event.
func events(t testing.TB, body string) []string {
	t.Helper()
	p := sse.NewParser(strings.NewReader(body))
	var out []string
	for {
		ev, err := p.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Data)
	}
}

// checkStreamHead asserts a stream's head: status 200, each policy header
// of the profile exactly once with its exact value, nothing the policy
// forbids, and no header outside the policy and net/http's own.
func checkStreamHead(t testing.TB, r *rawResp, p *policy.Profile) {
	t.Helper()
	if r.code() != 200 {
		t.Fatalf("status %q, want 200; body %q", r.status, r.readAll(5*time.Second))
	}
	allowed := map[string]bool{"Date": true, "Transfer-Encoding": true, "Vary": true}
	for _, h := range p.Headers(policy.KindStream, 1, 1) {
		allowed[http.CanonicalHeaderKey(h.Name)] = true
		if got := r.values(h.Name); !slices.Equal(got, []string{h.Value}) {
			t.Errorf("%s = %q, want exactly [%q]", h.Name, got, h.Value)
		}
	}
	if !r.chunked {
		t.Errorf("HTTP/1.1 stream not chunked: Transfer-Encoding %q", r.values("Transfer-Encoding"))
	}
	for _, f := range r.fields {
		if !allowed[http.CanonicalHeaderKey(f.name)] {
			t.Errorf("header %s: %s is not the policy's", f.name, f.value)
		}
	}
	if got := r.values("Vary"); !slices.Equal(got, []string{"Origin"}) {
		t.Errorf("Vary = %q, want [Origin]", got)
	}
}

// problemBody is the JSON of a problem response.
type problemBody struct {
	Type     string `json:"type"`
	Status   int    `json:"status"`
	Code     string `json:"error"`
	Detail   string `json:"detail"`
	Fallback string `json:"fallback"`
}

// checkProblem asserts a problem response: status, the profile's problem
// headers once each, Retry-After when retry is not empty, and the code and
// fallback; it returns the body.
func checkProblem(t testing.TB, r *rawResp, status int, code, retry, fallback string) string {
	t.Helper()
	body := r.readAll(5 * time.Second)
	if r.code() != status {
		t.Fatalf("status %q, want %d; body %q", r.status, status, body)
	}
	for _, h := range policy.Strict.Headers(policy.KindProblem, 1, 1) {
		want := h.Value
		if h.Name == "Cross-Origin-Resource-Policy" && len(r.values("Access-Control-Allow-Origin")) > 0 {
			want = "cross-origin" // readable by an allowed origin, as CORS widens it
		}
		if got := r.values(h.Name); !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want exactly [%q]", h.Name, got, want)
		}
	}
	if got := r.values("Retry-After"); retry == "" && len(got) > 0 || retry != "" && !slices.Equal(got, []string{retry}) {
		t.Errorf("Retry-After = %q, want %q", got, retry)
	}
	var pb problemBody
	if err := json.Unmarshal([]byte(body), &pb); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if pb.Code != code || pb.Status != status || pb.Fallback != fallback {
		t.Errorf("problem %+v, want status %d, error %q, fallback %q", pb, status, code, fallback)
	}
	return body
}
