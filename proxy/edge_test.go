package proxy_test

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/httpserve/certtest"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/proxy"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// secretFile writes the HS256 test secret and returns its path.
func secretFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, testSecret, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mint(t testing.TB, sub string, perms auth.Permissions) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, sub, perms, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// countingUpstream is a well-behaved stream upstream that counts requests.
func countingUpstream(t testing.TB, hits *atomic.Int32) string {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: ok\n\n")
	})
	return up.URL
}

func TestEdgeRefusesBeforeUpstream(t *testing.T) {
	var hits atomic.Int32
	cfg := baseConfig(countingUpstream(t, &hits))
	cfg.Routes = []proxy.Route{
		{Prefix: "/events", Kind: proxy.KindStream},
		{Prefix: "/private", Kind: proxy.KindStream, Auth: proxy.AuthJWT, TopicParam: "topic"},
		{Prefix: "/api/poll", Kind: proxy.KindJSON},
	}
	cfg.Auth.Keys = []config.Key{{Algorithm: "HS256", SecretFile: secretFile(t)}}
	cfg.CORS.AllowedOrigins = []string{"https://app.example"}
	tp := startProxy(t, cfg)
	news := mint(t, "alice", auth.Permissions{Subscribe: []string{"news"}})
	expired, err := auth.Mint(testSecret, "alice", auth.Permissions{Subscribe: []string{"news"}}, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		method   string
		path     string
		hdr      []string
		status   int
		code     string
		retry    string
		fallback string
	}{
		{"accept any", "GET", "/events", []string{"Accept: */*"}, 406, policy.CodeAcceptNotAcceptable, "30", "/api/poll"},
		{"accept json", "GET", "/events", []string{"Accept: application/json"}, 406, policy.CodeAcceptNotAcceptable, "30", "/api/poll"},
		{"no accept", "GET", "/events", nil, 406, policy.CodeAcceptNotAcceptable, "30", "/api/poll"},
		{"post to stream", "POST", "/events", []string{"Accept: text/event-stream"}, 405, policy.CodeMethodNotAllowed, "", ""},
		{"poll wants json", "GET", "/api/poll", []string{"Accept: text/html"}, 406, policy.CodeAcceptNotAcceptable, "30", ""},
		{"no route", "GET", "/other", []string{"Accept: text/event-stream"}, 404, policy.CodeNotFound, "", ""},
		{"no token", "GET", "/private?topic=news", []string{"Accept: text/event-stream"}, 401, policy.CodeTokenMissing, "", ""},
		{"bad token", "GET", "/private?topic=news", []string{"Accept: text/event-stream", "Authorization: Bearer " + news + "x"}, 401, policy.CodeTokenInvalid, "", ""},
		{"expired token", "GET", "/private?topic=news", []string{"Accept: text/event-stream", "Authorization: Bearer " + expired}, 401, policy.CodeTokenExpired, "", ""},
		{"topic not granted", "GET", "/private?topic=news&topic=admin", []string{"Accept: text/event-stream", "Authorization: Bearer " + news}, 403, policy.CodeTopicForbidden, "", ""},
		{"foreign origin", "GET", "/events", []string{"Accept: text/event-stream", "Origin: https://evil.example"}, 403, policy.CodeOriginForbidden, "", ""},
		{"null origin", "GET", "/events", []string{"Accept: text/event-stream", "Origin: null"}, 403, policy.CodeOriginForbidden, "", ""},
		{"allowed origin, anonymous", "GET", "/events", []string{"Accept: text/event-stream", "Origin: https://app.example"}, 403, policy.CodeOriginForbidden, "", ""},
		{"plain options", "OPTIONS", "/events", nil, 405, policy.CodeMethodNotAllowed, "", ""},
		{"preflight foreign", "OPTIONS", "/events", []string{"Origin: https://evil.example", "Access-Control-Request-Method: GET"}, 403, policy.CodeOriginForbidden, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rawRequest(t, tp.addr, tc.method, tc.path, "", tc.hdr...)
			checkProblem(t, r, tc.status, tc.code, tc.retry, tc.fallback)
			// Readable by the allowed origin (its page can stop on a 403),
			// never by any other.
			var want []string
			if slices.Contains(tc.hdr, "Origin: https://app.example") {
				want = []string{"https://app.example"}
			}
			if got := r.values("Access-Control-Allow-Origin"); !slices.Equal(got, want) {
				t.Errorf("a refusal allowed origins %q, want %q", got, want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the upstream was asked %d times; edge refusals must not reach it", n)
	}
	tp.logs.mustFind(t, "refused", map[string]any{"route": "/private", "code": "topic_forbidden", "status": 403})
	if got := tp.metric(t, `sseguard_proxy_responses_total{code="accept_not_acceptable",status="406"}`); got != 4 {
		t.Errorf("406 count = %v, want 4", got)
	}

	// What is allowed does get through.
	r := rawGet(t, tp.addr, "/private?topic=news", "Accept: text/event-stream", "Authorization: Bearer "+news)
	checkStreamHead(t, r, policy.Strict)
	if hits.Load() != 1 {
		t.Fatalf("upstream hits %d, want 1", hits.Load())
	}
}

func TestCORSAllowedOrigin(t *testing.T) {
	var hits atomic.Int32
	cfg := baseConfig(countingUpstream(t, &hits))
	cfg.Routes = []proxy.Route{{Prefix: "/events", Kind: proxy.KindStream, Auth: proxy.AuthJWT}}
	cfg.Auth.Keys = []config.Key{{Algorithm: "HS256", SecretFile: secretFile(t)}}
	cfg.CORS.AllowedOrigins = []string{"https://app.example"}
	tp := startProxy(t, cfg)
	tok := mint(t, "alice", auth.Permissions{Subscribe: []string{"*"}, Origins: []string{"https://app.example"}})

	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream", "Origin: https://app.example", "Authorization: Bearer "+tok)
	if r.code() != 200 {
		t.Fatalf("status %q", r.status)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example",
		"Access-Control-Allow-Credentials": "true",
		"Cross-Origin-Resource-Policy":     "cross-origin",
		"Vary":                             "Origin",
	} {
		if got := r.values(name); !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want [%q]", name, got, want)
		}
	}

	pre := rawRequest(t, tp.addr, "OPTIONS", "/events", "", "Origin: https://app.example", "Access-Control-Request-Method: GET",
		"Access-Control-Request-Headers: authorization")
	pre.readAll(5 * time.Second)
	if pre.code() != 204 || !slices.Equal(pre.values("Access-Control-Allow-Origin"), []string{"https://app.example"}) ||
		!slices.Equal(pre.values("Access-Control-Allow-Headers"), []string{policy.CORSAllowHeaders}) {
		t.Errorf("preflight %q %q", pre.status, pre.fields)
	}
	if hits.Load() != 1 {
		t.Errorf("upstream hits %d, want 1 (preflights stay at the edge)", hits.Load())
	}
}

func TestHeaderAllowlists(t *testing.T) {
	got := make(chan *http.Request, 1)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Set-Cookie", "session=s3cr3t; Path=/")
		h.Set("Server", "Express/4.17.1")
		h.Set("X-Powered-By", "Express")
		h.Set("X-Debug-Trace", "db=10.0.0.5")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Language", "en")
		_, _ = io.WriteString(w, "data: ok\n\n")
	})
	cfg := baseConfig(up.URL)
	cfg.Routes[0].Auth, cfg.Routes[0].TopicParam = proxy.AuthJWT, "topic"
	cfg.Auth.Keys = []config.Key{{Algorithm: "HS256", SecretFile: secretFile(t)}}
	cfg.Auth.QueryParam = "access_token"
	tp := startProxy(t, cfg)
	tok := mint(t, "alice", auth.Permissions{Subscribe: []string{"news"}})

	r := rawGet(t, tp.addr, "/events?topic=news&access_token="+tok,
		"Accept: text/event-stream", "Accept-Encoding: gzip", "Last-Event-ID: 41",
		"Cookie: sid=abc; theme=dark", "X-Forwarded-For: 6.6.6.6", "X-Sseguard-Subject: admin",
		"X-Internal-Debug: 1", "User-Agent: test-client")
	checkStreamHeadAllowing(t, r, "Content-Language")
	if body := r.readAll(5 * time.Second); body != "data: ok\n\n" {
		t.Fatalf("body %q", body)
	}
	in := <-got
	for name, want := range map[string]string{
		"Last-Event-Id":      "41",
		"Accept-Encoding":    "identity",
		"Accept":             "text/event-stream",
		"User-Agent":         "test-client",
		"X-Forwarded-For":    "127.0.0.1",
		"X-Sseguard-Subject": "alice",
	} {
		if v := in.Header.Values(name); !slices.Equal(v, []string{want}) {
			t.Errorf("upstream got %s = %q, want [%q]", name, v, want)
		}
	}
	for _, name := range []string{"Cookie", "Authorization", "X-Internal-Debug"} {
		if v := in.Header.Values(name); len(v) > 0 {
			t.Errorf("upstream got %s = %q; it is not on the request allowlist", name, v)
		}
	}
	if q := in.URL.Query(); q.Has("access_token") || q.Get("topic") != "news" {
		t.Errorf("upstream query %q: the token parameter must be removed, the rest kept", in.URL.RawQuery)
	}
	for _, d := range []struct {
		header   string
		upstream []string
	}{
		{"Set-Cookie", []string{"[redacted]"}},
		{"Server", []string{"Express/4.17.1"}},
		{"X-Powered-By", []string{"Express"}},
		{"X-Debug-Trace", []string{"db=10.0.0.5"}},
		{"Access-Control-Allow-Origin", []string{"*"}},
	} {
		tp.logs.mustFind(t, "header drift", map[string]any{"header": d.header, "kind": "dropped", "upstream": d.upstream, "policy": ""})
	}
	if strings.Contains(tp.logs.String(), "s3cr3t") || strings.Contains(tp.logs.String(), tok) {
		t.Errorf("a secret reached the log:\n%s", tp.logs)
	}
	if got := tp.metric(t, `sseguard_proxy_header_drift_total{header="other",kind="dropped"}`); got != 1 {
		t.Errorf("X-Debug-Trace counted as %v under header=\"other\", want 1", got)
	}
}

// checkStreamHeadAllowing is checkStreamHead with extra allowlisted headers.
func checkStreamHeadAllowing(t testing.TB, r *rawResp, extra ...string) {
	t.Helper()
	var kept []field
	for _, f := range r.fields {
		if !slices.ContainsFunc(extra, func(e string) bool { return strings.EqualFold(e, f.name) }) {
			kept = append(kept, f)
		}
	}
	all := r.fields
	r.fields = kept
	checkStreamHead(t, r, policy.Strict)
	r.fields = all
}

func TestRoutesByPrefix(t *testing.T) {
	streams := make(chan string, 4)
	a := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		streams <- r.URL.Path + "?" + r.URL.RawQuery
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: from a\n\n")
	})
	polls := make(chan string, 4)
	b := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		polls <- r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "12")
		_, _ = io.WriteString(w, `{"events":[]`)
	})
	cfg := &proxy.Config{
		Upstream: a.URL,
		Routes: []proxy.Route{
			{Prefix: "/events", Kind: proxy.KindStream},
			{Prefix: "/api/", Upstream: b.URL + "/v2", Kind: proxy.KindJSON, StripPrefix: true},
		},
	}
	tp := startProxy(t, cfg)

	r := rawGet(t, tp.addr, "/events/sub?topic=x", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	if got := <-streams; got != "/events/sub?topic=x" {
		t.Errorf("stream upstream got %q", got)
	}
	j := rawGet(t, tp.addr, "/api/poll", "Accept: application/json")
	if body := j.readAll(5 * time.Second); j.code() != 200 || body != `{"events":[]` {
		t.Fatalf("poll: %q %q", j.status, body)
	}
	if got := <-polls; got != "/v2/poll" {
		t.Errorf("poll upstream got %q, want /v2/poll", got)
	}
	for _, h := range policy.Strict.Headers(policy.KindJSON, 1, 1) {
		if got := j.values(h.Name); !slices.Equal(got, []string{h.Value}) {
			t.Errorf("poll %s = %q, want [%q]", h.Name, got, h.Value)
		}
	}
	if got := j.values("Content-Length"); !slices.Equal(got, []string{"12"}) {
		t.Errorf("poll Content-Length = %q", got)
	}
	nr := rawGet(t, tp.addr, "/metrics", "Accept: */*")
	checkProblem(t, nr, 404, policy.CodeNotFound, "", "")
}

func TestAutoRoute(t *testing.T) {
	var hits atomic.Int32
	tp := startProxy(t, &proxy.Config{Upstream: countingUpstream(t, &hits), Fallback: "/poll"})
	r := rawGet(t, tp.addr, "/anything", "Accept: text/event-stream")
	checkStreamHead(t, r, policy.Strict)
	if body := r.readAll(5 * time.Second); body != "data: ok\n\n" {
		t.Fatalf("body %q", body)
	}
	// An auto route learns it is a stream from the upstream; Accept is then
	// checked, and the stream never reaches a client that did not ask for it.
	x := rawGet(t, tp.addr, "/anything", "Accept: */*")
	body := checkProblem(t, x, 406, policy.CodeAcceptNotAcceptable, "30", "/poll")
	if strings.Contains(body, "data:") {
		t.Errorf("stream bytes in the refusal: %q", body)
	}
}

func TestBodyLimit(t *testing.T) {
	got := make(chan string, 2)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"1"}`)
	})
	tp := startProxy(t, &proxy.Config{Upstream: up.URL, MaxBodyBytes: 16})
	ok := rawRequest(t, tp.addr, "POST", "/api/publish", `{"data":"hi"}`, "Content-Type: application/json")
	if body := ok.readAll(5 * time.Second); ok.code() != 200 || body != `{"id":"1"}` {
		t.Fatalf("small publish: %q %q", ok.status, body)
	}
	if b := <-got; b != `{"data":"hi"}` {
		t.Errorf("upstream got body %q", b)
	}
	big := rawRequest(t, tp.addr, "POST", "/api/publish", strings.Repeat("x", 100), "Content-Type: application/json")
	checkProblem(t, big, 413, policy.CodeBodyTooLarge, "", "")
	// Without Content-Length the limit is found while the body streams upstream.
	chunked := rawRequest(t, tp.addr, "POST", "/api/publish", "", "Content-Type: application/json",
		"Transfer-Encoding: chunked\r\n\r\n64\r\n"+strings.Repeat("x", 100)+"\r\n0\r\n")
	checkProblem(t, chunked, 413, policy.CodeBodyTooLarge, "", "")
}

func TestDriftLogRateLimit(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Powered-By", "PHP/8.1")
		_, _ = io.WriteString(w, "data: x\n\n")
	})
	logs := &syncBuffer{}
	cfg := baseConfig(up.URL)
	cfg.DriftLogInterval = config.Duration(time.Hour)
	px, err := proxy.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- px.Serve(ctx, ln, nil) }()
	for range 3 {
		r := rawGet(t, ln.Addr().String(), "/events", "Accept: text/event-stream")
		r.readAll(5 * time.Second)
	}
	want := map[string]any{"header": "X-Powered-By", "kind": "dropped", "upstream": []string{"PHP/8.1"}}
	if got := logs.find(t, "header drift", want); len(got) != 1 || got[0]["count"] != 1.0 {
		t.Fatalf("want one line with count 1 within the interval, got %v", got)
	}
	cancel() // Serve closes the proxy, which logs what the limit held back
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := logs.find(t, "header drift", want)
	if len(got) != 2 || got[1]["count"] != 2.0 {
		t.Fatalf("want the held-back count (2) logged at close, got %v", got)
	}
}

func TestShutdownEndsStreamsAtBoundary(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\ndata: tw")
		w.(http.Flusher).Flush()
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "o\n\ndata: three\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then stays open until the proxy leaves
	}))
	defer up.Close()
	logs := &syncBuffer{}
	px, err := proxy.New(context.Background(), baseConfig(up.URL), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- px.Serve(ctx, ln, nil) }()
	r := rawGet(t, ln.Addr().String(), "/events", "Accept: text/event-stream")
	r.readUntil(func(b string) bool { return strings.HasSuffix(b, "data: tw") }, 5*time.Second)
	cancel() // mid-event: the stream ends at the next boundary, neither before nor after
	body := r.readAll(5 * time.Second)
	rest, cut := strings.CutPrefix(body, "data: one\n\ndata: two\n\nretry: ")
	ms, _ := strings.CutSuffix(rest, "\n\n")
	if n, err := strconv.Atoi(ms); !cut || err != nil || n < 1000 || n > 3000 || !r.clean {
		t.Fatalf("body %q (clean %v)", body, r.clean)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the stream ended")
	}
	// Every goroutine the proxy started (handlers, stream pumps, upstream
	// connections) is gone once Serve has returned and the upstream closed.
	r.conn.Close()
	up.Close()
	goleak.VerifyNone(t, ignore)
}

func TestAutoRouteResponses(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/page":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", "script-src 'unsafe-inline'")
			_, _ = io.WriteString(w, "<p>hi</p>")
		case "/plain":
			h.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "plain")
		case "/redirect":
			http.Redirect(w, r, "http://10.0.0.5:3000/internal", http.StatusFound)
		case "/cached":
			h.Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		case "/json-gzip":
			h.Set("Content-Type", "application/json")
			h.Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, `{"ok":true}`)
			_ = zw.Close()
		case "/brotli":
			h.Set("Content-Type", "application/json")
			h.Set("Content-Encoding", "br")
			_, _ = io.WriteString(w, "\x0b\x02\x80{}\x03")
		}
	})
	tp := startProxy(t, &proxy.Config{Upstream: up.URL})
	for _, tc := range []struct {
		path, accept string
		status       int
		body         string
		headers      map[string]string // exact single values; "" means absent
	}{
		{"/page", "text/html", 200, "<p>hi</p>", map[string]string{
			"Content-Security-Policy": policy.PageCSP, "X-Frame-Options": "DENY", "Content-Type": "text/html; charset=utf-8"}},
		{"/plain", "*/*", 200, "plain", map[string]string{
			"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}},
		{"/redirect", "*/*", 502, "", map[string]string{"Location": ""}},
		{"/cached", "*/*", 304, "", map[string]string{"Etag": `"v1"`, "X-Content-Type-Options": "nosniff"}},
		{"/json-gzip", "application/json", 200, `{"ok":true}`, map[string]string{
			"Content-Encoding": "", "Content-Type": "application/json", "Cache-Control": "no-store"}},
		{"/brotli", "application/json", 502, "", map[string]string{"Content-Encoding": ""}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := rawGet(t, tp.addr, tc.path, "Accept: "+tc.accept)
			body := r.readAll(5 * time.Second)
			if r.code() != tc.status {
				t.Fatalf("status %q, want %d; body %q", r.status, tc.status, body)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.status >= 400 && strings.Contains(body, "10.0.0.5") {
				t.Errorf("the upstream's redirect target leaked: %q", body)
			}
			for name, want := range tc.headers {
				got := r.values(name)
				if want == "" && len(got) > 0 || want != "" && !slices.Equal(got, []string{want}) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
	tp.logs.mustFind(t, "upstream failed", map[string]any{"reason": "redirect", "upstream_status": 302})
	tp.logs.mustFind(t, "upstream failed", map[string]any{"reason": "encoding", "upstream_status": 200})
}

// TestClientCertificatesRequired serves the proxy over HTTPS with a client
// CA and client_auth require: a client with a certificate of that CA gets
// through (over HTTP/2), one without or with another CA's certificate
// fails the handshake, before any upstream request.
func TestClientCertificatesRequired(t *testing.T) {
	var upstreamHits atomic.Int32
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: x\n\n")
	})
	ca, rogue := certtest.NewCA(t), certtest.NewCA(t)
	srvCert, srvKey := ca.Issue(t, certtest.Leaf{CN: "proxy", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	cfg := baseConfig(up.URL)
	cfg.TLS = config.TLS{
		CertFile:     certtest.WriteFile(t, "proxy.pem", srvCert),
		KeyFile:      certtest.WriteFile(t, "proxy-key.pem", srvKey),
		ClientCAFile: certtest.WriteFile(t, "ca.pem", ca.PEM),
		ClientAuth:   "require",
	}
	tp := startProxy(t, cfg)
	get := func(from *certtest.CA) (*http.Response, error) {
		req, _ := http.NewRequest("GET", "https://"+tp.addr+"/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		res, err := ca.Client(t, from).Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return res, err
	}
	res, err := get(ca)
	if err != nil || res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("a certificate of the client CA: %v, %v", res, err)
	}
	for name, c := range map[string]*certtest.CA{"no certificate": nil, "another CA": rogue} {
		if res, err := get(c); err == nil {
			t.Errorf("%s: got through with %d", name, res.StatusCode)
		}
	}
	if n := upstreamHits.Load(); n != 1 {
		t.Fatalf("the upstream saw %d requests, want 1", n)
	}
}
