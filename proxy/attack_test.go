package proxy_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/proxy"
)

// These tests attack the proxy as an outside reviewer did: each row is a
// request, what the client must get, and whether the upstream may see it.
// The upstreams read paths the lenient way real backends do, so a path the
// proxy lets through to the wrong route shows up as the protected stream.

// secretBody is what the protected stream serves.
const secretBody = "data: secret\n\n"

// recorder keeps the request targets an upstream received, as sent.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, s)
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// lenientPath is how a lenient backend reads a request path: decoded
// twice (a framework decoding after the server did), backslashes as
// slashes, path parameters cut (Tomcat), dot segments resolved, trailing
// dots and spaces trimmed (IIS), letter case ignored (Express, ASP.NET).
func lenientPath(p string) string {
	if d, err := url.PathUnescape(p); err == nil {
		p = d
	}
	p = strings.ReplaceAll(p, `\`, "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ". ")
		}
		segs[i] = s
	}
	return strings.ToLower(strings.ToUpper(path.Clean("/" + strings.Join(segs, "/"))))
}

// lenientUpstream serves the secret stream wherever lenientPath reads
// /events, "public" elsewhere, and records every request target.
func lenientUpstream(t testing.TB) (string, *recorder) {
	rec := &recorder{}
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		rec.add(r.RequestURI)
		if p := lenientPath(r.URL.Path); p == "/events" || strings.HasPrefix(p, "/events/") {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, secretBody)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "public")
	})
	return up.URL, rec
}

// attackConfig protects /events with a token and leaves the rest open:
// the layout of the review's findings.
func attackConfig(t testing.TB, up string) *proxy.Config {
	cfg := baseConfig(up)
	cfg.Routes = []proxy.Route{
		{Prefix: "/events", Kind: proxy.KindStream, Auth: proxy.AuthJWT},
		{Prefix: "/", Auth: proxy.AuthNone},
	}
	cfg.Auth.Keys = []config.Key{{Algorithm: "HS256", SecretFile: secretFile(t)}}
	return cfg
}

// paddingBitsAltered returns tok with the last character of its signature
// changed in the bits that base64url padding leaves over: a lenient decoder
// reads the same signature, a strict one refuses it.
func paddingBitsAltered(t testing.TB, tok string) string {
	t.Helper()
	dot := strings.LastIndexByte(tok, '.')
	sig := tok[dot+1:]
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != sig {
		t.Fatalf("signature %q is not canonical base64url: %v", sig, err)
	}
	if len(raw)%3 == 0 {
		t.Fatalf("a %d-byte signature has no padding bits", len(raw))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	altered := sig[:len(sig)-1] + string(alphabet[last^1]) // the lowest bit is padding
	if got, err := base64.RawURLEncoding.DecodeString(altered); err != nil || string(got) != string(raw) {
		t.Fatalf("the altered signature does not decode leniently to the same bytes: %v", err)
	}
	return tok[:dot+1] + altered
}

func TestAttacks(t *testing.T) {
	up, rec := lenientUpstream(t)
	tp := startProxy(t, attackConfig(t, up))
	tok := mint(t, "alice", auth.Permissions{Subscribe: []string{"*"}})
	sse := "Accept: text/event-stream"
	bearer := "Authorization: Bearer " + tok

	for _, tc := range []struct {
		name     string
		path     string
		hdr      []string
		status   int
		code     string // problem code; "" for a success
		upstream string // the request target the upstream must get; "" when it must see nothing
		// lenient marks paths that the lenient upstream itself serves
		// the secret stream for: the attack is real, not hypothetical.
		lenient bool
	}{
		// H2: unclean paths are refused before routing.
		{"dot segments", "/x/../events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"encoded dots", "/x/%2e%2e/events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"encoded dots, upper case", "/x/%2E%2E/events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"half-encoded dots", "/.%2e/events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"single dot segment", "/./events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"trailing dot segment", "/events/.", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"encoded slashes", "/x%2f..%2fevents", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"encoded slash in a segment", "/events%2Fsub", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"encoded backslashes", "/x%5c..%5cevents", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"backslashes", `/x\..\events`, []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"double-encoded dots", "/x/%252e%252e/events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"empty segment", "//events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"NUL", "/events%00", []string{sse}, 400, policy.CodeBadRequest, "", false},
		{"CR LF", "/x%0d%0aX-Injected:%201", []string{sse}, 400, policy.CodeBadRequest, "", false},
		{"tab", "/ev%09ents", []string{sse}, 400, policy.CodeBadRequest, "", false},
		{"path parameter", "/events;jsessionid=1", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"dot segment with a parameter", "/x/..;/events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		// H2: letter case, and what lenient upstreams trim, never escape a route.
		{"upper case", "/EVENTS", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"title case", "/Events", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"mixed case, deeper", "/eVeNtS/sub", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"long s folds to s", "/eventſ", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"trailing dot", "/events.", []string{sse}, 400, policy.CodeBadRequest, "", true},
		{"trailing space", "/events%20", []string{sse}, 400, policy.CodeBadRequest, "", true},
		// H2: an escape that decodes to the protected path is that path.
		{"encoded letter, no token", "/ev%65nts", []string{sse}, 401, policy.CodeTokenMissing, "", true},
		{"encoded letter, token", "/ev%65nts/sub", []string{sse, bearer}, 200, "", "/events/sub", true},
		{"no token", "/events", []string{sse}, 401, policy.CodeTokenMissing, "", true},
		{"token", "/events", []string{sse, bearer}, 200, "", "/events", true},
		{"public", "/public", []string{"Accept: text/plain"}, 200, "", "/public", false},
		{"public, escaped space", "/a%20b", []string{"Accept: text/plain"}, 200, "", "/a%20b", false},
		{"public, escaped comma", "/a%2Cb", []string{"Accept: text/plain"}, 200, "", "/a,b", false},
		// L9: a signature altered in its padding bits is another token.
		// The proxy verifies through package auth, whose strict decoding
		// (jwt.WithStrictDecoding) refuses it; without that this row
		// fails: the lenient decoder reads the same signature.
		{"signature padding bits altered", "/events", []string{sse, "Authorization: Bearer " + paddingBitsAltered(t, tok)},
			401, policy.CodeTokenInvalid, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lenient {
				// The upstream alone hands the stream to this path.
				d := rawGet(t, strings.TrimPrefix(up, "http://"), tc.path, tc.hdr...)
				if body := d.readAll(5 * time.Second); d.code() != 200 || body != secretBody {
					t.Fatalf("the upstream alone answers %q with %q %q; the row's premise is wrong", tc.path, d.status, body)
				}
			}
			before := len(rec.snapshot())
			r := rawGet(t, tp.addr, tc.path, tc.hdr...)
			if tc.code != "" {
				body := checkProblem(t, r, tc.status, tc.code, "", "")
				if strings.Contains(body, "secret") {
					t.Errorf("the stream leaked into the refusal: %q", body)
				}
			} else {
				body := r.readAll(5 * time.Second)
				if r.code() != tc.status {
					t.Fatalf("status %q, want %d; body %q", r.status, tc.status, body)
				}
			}
			got := rec.snapshot()[before:]
			switch {
			case tc.upstream == "" && len(got) > 0:
				t.Errorf("the upstream saw %q; the edge must refuse first", got)
			case tc.upstream != "" && !slices.Equal(got, []string{tc.upstream}):
				t.Errorf("the upstream saw %q, want exactly [%q]: the path routed is the path forwarded", got, tc.upstream)
			}
		})
	}
	tp.logs.mustFind(t, "refused", map[string]any{"path": "/x/../events", "status": 400, "code": policy.CodeBadRequest})
}

// TestAttacksNodeUpstream runs the path attacks against a real Node
// backend that normalises paths with the WHATWG URL parser and routes
// case-insensitively.
func TestAttacksNodeUpstream(t *testing.T) {
	up, lines := startNode(t)
	tp := startProxy(t, attackConfig(t, up))
	attacks := []string{"/x/../events", "/x/%2e%2e/events", "/.%2e/events", "/x/%2E%2E/events", `/x\..\events`, "/EVENTS", "/Events"}

	// Node alone serves the secret stream for each: the attacks are real.
	for _, p := range attacks {
		d := rawGet(t, strings.TrimPrefix(up, "http://"), p, "Accept: text/event-stream")
		if body := d.readAll(5 * time.Second); d.code() != 200 || body != secretBody {
			t.Fatalf("node answers %q with %q %q; want the secret stream", p, d.status, body)
		}
	}
	waitLines(t, lines, len(attacks))

	for _, p := range attacks {
		r := rawGet(t, tp.addr, p, "Accept: text/event-stream")
		checkProblem(t, r, 400, policy.CodeBadRequest, "", "")
	}
	// A request the proxy forwards marks the end: node saw it, and nothing
	// of the attacks before it.
	r := rawGet(t, tp.addr, "/sentinel", "Accept: text/plain")
	if body := r.readAll(5 * time.Second); r.code() != 200 || body != "public" {
		t.Fatalf("sentinel: %q %q", r.status, body)
	}
	got := waitLines(t, lines, len(attacks)+1)
	if extra := got[len(attacks):]; !slices.Equal(extra, []string{"/sentinel"}) {
		t.Errorf("node saw %q through the proxy, want only [/sentinel]", extra)
	}
}

// startNode starts testdata/normalising_upstream.js on a free loopback
// port and returns its URL and the request targets it prints.
func startNode(t *testing.T) (string, *recorder) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is required under CI=true: %v", err)
		}
		t.Skipf("node not found (%v): the Go upstream of TestAttacks covers the same paths", err)
	}
	cmd := exec.Command(node, "testdata/normalising_upstream.js")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close() // the script exits when its stdin ends
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	port := make(chan string, 1)
	rec := &recorder{}
	go func() {
		defer close(done)
		defer func() { _ = cmd.Wait() }()
		first := true
		for sc.Scan() {
			if first {
				first = false
				port <- sc.Text()
				continue
			}
			var target string
			if err := json.Unmarshal(sc.Bytes(), &target); err == nil {
				rec.add(target)
			}
		}
		if first {
			close(port)
		}
	}()
	select {
	case p, ok := <-port:
		if _, err := strconv.Atoi(p); !ok || err != nil {
			t.Fatalf("node did not print its port (got %q)", p)
		}
		return "http://127.0.0.1:" + p, rec
	case <-time.After(10 * time.Second):
		t.Fatal("node did not start within 10 s")
	}
	return "", nil
}

// waitLines waits until rec holds at least n targets, and returns them.
func waitLines(t *testing.T, rec *recorder, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := rec.snapshot()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("node printed %d request targets, want %d: %q", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowBody sends the header of a request and then trickles its body:
// the edge checks answer without waiting for the body, and a body that
// does not arrive within read_body_timeout gets a 408 problem.
func TestSlowBody(t *testing.T) {
	var rec recorder
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		rec.add(r.RequestURI)
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"1"}`)
	})
	const timeout = 300 * time.Millisecond
	cfg := baseConfig(up.URL)
	cfg.ReadBodyTimeout = config.Duration(timeout)
	cfg.Routes = []proxy.Route{
		{Prefix: "/private", Kind: proxy.KindJSON, Auth: proxy.AuthJWT},
		{Prefix: "/api", Kind: proxy.KindJSON},
	}
	cfg.Auth.Keys = []config.Key{{Algorithm: "HS256", SecretFile: secretFile(t)}}
	tp := startProxy(t, cfg)
	head := func(path string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: " + tp.addr + "\r\nAccept: application/json\r\n" +
			"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
	}

	t.Run("refused at the edge without reading the body", func(t *testing.T) {
		// Not one byte of the body is sent: the 401 cannot have waited for it.
		start := time.Now()
		r := rawSend(t, tp.addr, "POST", head("/private/publish"), 5*time.Second)
		checkProblem(t, r, 401, policy.CodeTokenMissing, "", "")
		if d := time.Since(start); d >= timeout {
			t.Errorf("the refusal took %v, as long as the body timeout: the edge waited for the body", d)
		}
	})
	t.Run("one byte then silence", func(t *testing.T) {
		start := time.Now()
		r := rawSend(t, tp.addr, "POST", head("/api/publish")+"{", 5*time.Second)
		checkProblem(t, r, 408, policy.CodeRequestTimeout, "", "")
		if d := time.Since(start); d < timeout {
			t.Errorf("408 after %v, before the %v timeout", d, timeout)
		}
	})
	t.Run("a body in time", func(t *testing.T) {
		r := rawRequest(t, tp.addr, "POST", "/api/publish", `{"data":"hi"}`, "Accept: application/json", "Content-Type: application/json")
		if body := r.readAll(5 * time.Second); r.code() != 200 || body != `{"id":"1"}` {
			t.Fatalf("%q %q", r.status, body)
		}
	})
	if got := rec.snapshot(); slices.Contains(got, "/private/publish") {
		t.Errorf("the upstream saw the refused request: %q", got)
	}
}

// TestScriptCapableTypes checks that every type a browser may run script
// in gets the page policy (CSP, X-Frame-Options) and keeps its own type.
func TestScriptCapableTypes(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if ct := r.URL.Query().Get("type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil // none at all
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.WriteString(w, `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>`)
	})
	tp := startProxy(t, &proxy.Config{Upstream: up.URL})
	for _, tc := range []struct {
		ctype string   // what the upstream sends; "" for no Content-Type
		want  []string // the Content-Type the client gets
		page  bool     // the page policy applies
	}{
		{"text/html", []string{"text/html; charset=utf-8"}, true},
		{"image/svg+xml", []string{"image/svg+xml"}, true},
		{"application/xhtml+xml; charset=utf-8", []string{"application/xhtml+xml; charset=utf-8"}, true},
		{"text/xml", []string{"text/xml"}, true},
		{"application/xml", []string{"application/xml"}, true},
		{"application/rss+xml", []string{"application/rss+xml"}, true},
		{"text/xsl", []string{"text/xsl"}, true},
		{"IMAGE/SVG+XML", []string{"IMAGE/SVG+XML"}, true},
		{"", nil, true}, // not sniffed into text/html by the proxy either
		{"text/plain", []string{"text/plain"}, false},
		{"image/png", []string{"image/png"}, false},
	} {
		t.Run(tc.ctype, func(t *testing.T) {
			r := rawGet(t, tp.addr, "/doc?type="+url.QueryEscape(tc.ctype), "Accept: */*")
			r.readAll(5 * time.Second)
			if r.code() != 200 {
				t.Fatalf("status %q", r.status)
			}
			if got := r.values("Content-Type"); !slices.Equal(got, tc.want) {
				t.Errorf("Content-Type = %q, want %q", got, tc.want)
			}
			if got := r.values("X-Content-Type-Options"); !slices.Equal(got, []string{"nosniff"}) {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if !tc.page {
				if got := r.values("X-Frame-Options"); len(got) > 0 {
					t.Errorf("X-Frame-Options = %q on a type that runs no script", got)
				}
				return
			}
			for _, h := range policy.Strict.Headers(policy.KindPage, 1, 1) {
				if h.Name == "Content-Type" {
					continue
				}
				if got := r.values(h.Name); !slices.Equal(got, []string{h.Value}) {
					t.Errorf("%s = %q, want [%q]", h.Name, got, h.Value)
				}
			}
		})
	}
}

// TestRefusalLogIsBounded checks that a client-chosen path reaches the log
// cut to a bounded length.
func TestRefusalLogIsBounded(t *testing.T) {
	var hits atomic.Int32
	tp := startProxy(t, baseConfig(countingUpstream(t, &hits)))
	long := "/events/" + strings.Repeat("a", 8000)
	r := rawGet(t, tp.addr, long, "Accept: */*")
	checkProblem(t, r, 406, policy.CodeAcceptNotAcceptable, "30", "/api/poll")
	line := tp.logs.mustFind(t, "refused", map[string]any{"code": policy.CodeAcceptNotAcceptable})
	p, _ := line["path"].(string)
	if len(p) > 210 || !strings.HasPrefix(long, strings.TrimSuffix(p, "…")) {
		t.Errorf("logged path of %d bytes: %.80q...", len(p), p)
	}
}

// TestStreamEndsAtTokenExpiry holds a stream open with a token that
// expires: the proxy ends it at exp plus the leeway, with "retry: 0", as
// the hub ends its own streams.
func TestStreamEndsAtTokenExpiry(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // an idle stream that never ends by itself
	})
	const leeway = 200 * time.Millisecond
	cfg := baseConfig(up.URL)
	cfg.Routes[0].Auth = proxy.AuthJWT
	cfg.Auth.Keys = []config.Key{{Algorithm: "HS256", SecretFile: secretFile(t)}}
	cfg.Auth.Leeway = config.Duration(leeway)
	tp := startProxy(t, cfg)
	tok, err := auth.Mint(testSecret, "alice", auth.Permissions{Subscribe: []string{"*"}}, 2*time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	exp := tokenExp(t, tok)

	r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream", "Authorization: Bearer "+tok)
	checkStreamHead(t, r, policy.Strict)
	body := r.readAll(time.Until(exp.Add(leeway + 5*time.Second)))
	ended := time.Now()
	if body != "data: one\n\nretry: 0\n\n" || !r.clean {
		t.Fatalf("body %q (clean %v), want the event, then retry: 0 and a clean end", body, r.clean)
	}
	if ended.Before(exp.Add(leeway)) {
		t.Errorf("the stream ended at %v, before exp %v plus the leeway", ended, exp)
	}
	tp.logs.mustFind(t, "token expired: ending the stream at the next event boundary", map[string]any{"route": "/events"})
}

// tokenExp returns the exp claim of a JWT.
func tokenExp(t testing.TB, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Exp == 0 {
		t.Fatalf("claims %s: %v", payload, err)
	}
	return time.Unix(c.Exp, 0)
}
