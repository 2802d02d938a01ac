package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
	"github.com/sseguard/sseguard/web"
)

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func doReq(t *testing.T, method, url string, hdr http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// loginForm is the header of a form post from the dashboard's own page.
var loginForm = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"same-origin"}}

func dashboardCookieOf(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name != DashboardCookie {
			t.Errorf("the dashboard set cookie %q (%s); want only %s", c.Name, c.Raw, DashboardCookie)
			continue
		}
		found = c
	}
	if found == nil {
		t.Fatalf("no %s cookie in %q", DashboardCookie, res.Header.Values("Set-Cookie"))
	}
	return found
}

// TestDashboardCookie: the login sets a cookie of the dashboard's own,
// scoped to /dashboard, Secure unless dashboard.insecure_cookie, HttpOnly,
// SameSite=Strict, on a no-store answer; it opens the dashboard and nothing
// else, and the dashboard reads no other credential.
func TestDashboardCookie(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure_cookie=%v", insecure), func(t *testing.T) {
			ts := start(t, func(c *config.Config) { c.Dashboard.InsecureCookie = insecure }, nil)
			// A token that could read and publish "news" as well.
			tok := token(t, auth.Permissions{Subscribe: []string{DashboardTopic, "news"}, Publish: []string{"news"}}, time.Hour)

			res := doReq(t, "POST", ts.base+"/dashboard/login", loginForm, url.Values{"token": {tok}}.Encode())
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard" {
				t.Fatalf("login: %d to %q, want 303 to /dashboard", res.StatusCode, res.Header.Get("Location"))
			}
			if got := res.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
				t.Errorf("login answer Cache-Control %q, want exactly no-store", got)
			}
			c := dashboardCookieOf(t, res)
			if c.Path != "/dashboard" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure == insecure {
				t.Errorf("cookie %s: want Path=/dashboard, HttpOnly, SameSite=Strict, Secure=%v", c.Raw, !insecure)
			}
			if c.Value != tok || c.Expires.IsZero() {
				t.Errorf("cookie %s: want the token, expiring with it", strings.Replace(c.Raw, tok, "<token>", 1))
			}

			dash := http.Header{"Cookie": {DashboardCookie + "=" + tok}}
			api := http.Header{"Cookie": {"sseguard_token=" + tok}}
			sse := func(h http.Header) http.Header {
				h = h.Clone()
				h.Set("Accept", "text/event-stream")
				return h
			}
			if res := doReq(t, "GET", ts.base+"/dashboard", dash, ""); res.StatusCode != 200 {
				t.Errorf("GET /dashboard with the cookie: %d, want 200", res.StatusCode)
			}
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/dashboard/stream", nil)
			req.Header = sse(dash)
			if res, err := http.DefaultClient.Do(req); err != nil {
				t.Errorf("dashboard stream with the cookie: %v", err)
			} else {
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("dashboard stream with the cookie: %d, want 200", res.StatusCode)
				}
			}
			cancel()

			// The dashboard's cookie is no API credential...
			res = doReq(t, "GET", ts.base+"/events?topic=news", sse(dash), "")
			checkProblem(t, res, http.StatusUnauthorized, policy.CodeTokenMissing)
			res = doReq(t, "POST", ts.base+"/api/publish", http.Header{"Cookie": dash["Cookie"], "Content-Type": {"application/json"}},
				`{"topic":"news","data":"x"}`)
			checkProblem(t, res, http.StatusUnauthorized, policy.CodeTokenMissing)
			// ...and the API's credentials do not open the dashboard.
			for name, h := range map[string]http.Header{
				"API cookie": api,
				"bearer":     {"Authorization": {"Bearer " + tok}},
			} {
				if res := doReq(t, "GET", ts.base+"/dashboard", h, ""); res.StatusCode != http.StatusSeeOther {
					t.Errorf("GET /dashboard with the %s: %d, want 303 to the login", name, res.StatusCode)
				}
				res := doReq(t, "GET", ts.base+"/dashboard/stream", sse(h), "")
				checkProblem(t, res, http.StatusUnauthorized, policy.CodeTokenMissing)
			}

			res = doReq(t, "POST", ts.base+"/dashboard/logout", http.Header{"Cookie": dash["Cookie"], "Sec-Fetch-Site": {"same-origin"}}, "")
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/login" {
				t.Fatalf("logout: %d to %q, want 303 to /dashboard/login", res.StatusCode, res.Header.Get("Location"))
			}
			if c := dashboardCookieOf(t, res); c.Value != "" || c.MaxAge >= 0 || c.Path != "/dashboard" {
				t.Errorf("logout cookie %s: want it emptied and expired at Path=/dashboard", c.Raw)
			}
			res = doReq(t, "POST", ts.base+"/dashboard/logout", http.Header{"Cookie": dash["Cookie"], "Sec-Fetch-Site": {"cross-site"}}, "")
			checkProblem(t, res, http.StatusForbidden, policy.CodeOriginForbidden)
		})
	}
}

// rawResponse sends a request over a new connection and returns the status
// line and every header line as sent, repeated ones kept apart.
func rawResponse(t *testing.T, base, method, target string, hdr http.Header, body string) (string, map[string][]string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, strings.TrimPrefix(base, "http://"))
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		k = http.CanonicalHeaderKey(k)
		got[k] = append(got[k], strings.TrimSpace(v))
	}
	return strings.TrimSpace(status), got
}

// TestPolicyHeadersOnEveryResponse: every embedded file and every route,
// with GET and with HEAD, and every redirect of the dashboard, carries the
// policy's headers for what it is, each exactly once.
func TestPolicyHeadersOnEveryResponse(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	dashTok := token(t, auth.Permissions{Subscribe: []string{DashboardTopic}}, time.Hour)
	page := policy.Strict.Headers(policy.KindPage, 1, 1)
	// withOut is page's headers with name replaced by value, or dropped
	// when value is empty.
	withOut := func(hs []policy.Header, name, value string) []policy.Header {
		var out []policy.Header
		for _, h := range hs {
			if h.Name == name {
				if value == "" {
					continue
				}
				h.Value = value
			}
			out = append(out, h)
		}
		return out
	}
	redirect := withOut(withOut(page, "Content-Type", ""), "Cache-Control", "no-store")

	type tcase struct {
		name, method, target string
		hdr                  http.Header
		body                 string
		status               int
		want                 []policy.Header
		location             string
	}
	var cases []tcase
	err := fs.WalkDir(web.Static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want := page
		if path.Ext(name) != ".html" {
			ctype := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}[path.Ext(name)]
			want = withOut(page, "Content-Type", ctype)
		}
		for _, m := range []string{"GET", "HEAD"} {
			cases = append(cases, tcase{name: m + " /" + name, method: m, target: "/" + name, status: 200, want: want})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bearer := http.Header{"Authorization": {"Bearer " + tok}}
	stream := http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"text/event-stream"}}
	dashCookie := http.Header{"Cookie": {DashboardCookie + "=" + dashTok}}
	dashStream := http.Header{"Cookie": {DashboardCookie + "=" + dashTok}, "Accept": {"text/event-stream"}}
	for _, m := range []string{"GET", "HEAD"} {
		for _, r := range []struct {
			target string
			hdr    http.Header
			kind   policy.Kind
		}{
			{"/", nil, policy.KindPage},
			{"/healthz", nil, policy.KindJSON},
			{"/readyz", nil, policy.KindJSON},
			{"/metrics", nil, -1},
			{"/api/poll?topic=demo", bearer, policy.KindJSON},
			{"/events?topic=demo", stream, policy.KindStream},
			{"/dashboard", dashCookie, policy.KindPage},
			{"/dashboard/login", nil, policy.KindPage},
			{"/dashboard/stream", dashStream, policy.KindStream},
			{"/missing", nil, policy.KindProblem},
		} {
			want := policy.Strict.Headers(r.kind, 1, 1)
			status := 200
			switch {
			case r.kind == policy.KindProblem:
				status = 404
			case r.target == "/metrics" && m == "HEAD":
				status, want = 405, policy.Strict.Headers(policy.KindProblem, 1, 1)
			case r.target == "/metrics": // Prometheus text: nosniff at least
				want = []policy.Header{{Name: "X-Content-Type-Options", Value: "nosniff"}}
			}
			cases = append(cases, tcase{name: m + " " + r.target, method: m, target: r.target, hdr: r.hdr, status: status, want: want})
		}
	}
	form := func(h http.Header) http.Header {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		for k, v := range loginForm {
			h[k] = v
		}
		return h
	}
	cases = append(cases,
		tcase{name: "redirect GET /dashboard without a login", method: "GET", target: "/dashboard",
			status: 303, want: redirect, location: "/dashboard/login"},
		tcase{name: "redirect HEAD /dashboard without a login", method: "HEAD", target: "/dashboard",
			status: 303, want: redirect, location: "/dashboard/login"},
		tcase{name: "redirect login refused", method: "POST", target: "/dashboard/login", hdr: form(nil),
			body: "token=nope", status: 303, want: redirect, location: "/dashboard/login#refused"},
		tcase{name: "redirect login", method: "POST", target: "/dashboard/login", hdr: form(nil),
			body: "token=" + dashTok, status: 303, want: redirect, location: "/dashboard"},
		tcase{name: "redirect logout", method: "POST", target: "/dashboard/logout", hdr: form(dashCookie),
			status: 303, want: redirect, location: "/dashboard/login"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, got := rawResponse(t, ts.base, tc.method, tc.target, tc.hdr, tc.body)
			if want := fmt.Sprintf("HTTP/1.1 %d ", tc.status); !strings.HasPrefix(status, want) {
				t.Fatalf("status %q, want %q", status, want)
			}
			for _, h := range tc.want {
				if v := got[http.CanonicalHeaderKey(h.Name)]; len(v) != 1 || v[0] != h.Value {
					t.Errorf("%s = %q, want exactly %q", h.Name, v, h.Value)
				}
			}
			for k, v := range got {
				if len(v) > 1 && k != "Set-Cookie" && k != "Vary" {
					t.Errorf("%s repeated: %q", k, v)
				}
			}
			if tc.location != "" && (len(got["Location"]) != 1 || got["Location"][0] != tc.location) {
				t.Errorf("Location %q, want %q", got["Location"], tc.location)
			}
		})
	}
}

// slowBody sends the request line, headers announcing a body of 100
// bytes, and first of it, then stops. It returns the response read within
// 10 s, whether the server closed the connection after it, and the time
// the answer took.
func slowBody(t *testing.T, base, method, target string, hdr http.Header, first string) (*http.Response, string, bool, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n", method, target)
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n" + first)
	began := time.Now()
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body (10 s): %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	took := time.Since(began)
	_, err = br.ReadByte()
	closed := errors.Is(err, io.EOF)
	if !closed {
		t.Logf("after the answer: %v", err)
	}
	return res, string(body), closed, took
}

// TestSlowBodyTimesOut: a body that stalls gets a 408 request_timeout
// problem and a closed connection after limits.read_body_timeout, on every
// route that reads one; a route that reads none still closes the connection
// rather than wait for the body forever.
func TestSlowBodyTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := start(t, func(c *config.Config) { c.Limits.ReadBodyTimeout = config.Duration(timeout) }, nil)
	tok := token(t, allPerms, time.Hour)
	tests := []struct {
		name, method, target string
		hdr                  http.Header
		status               int
		code                 string
	}{
		{"dashboard login", "POST", "/dashboard/login", loginForm, 408, policy.CodeRequestTimeout},
		{"publish JSON", "POST", "/api/publish",
			http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}, 408, policy.CodeRequestTimeout},
		{"publish form", "POST", "/api/publish",
			http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/x-www-form-urlencoded"}}, 408, policy.CodeRequestTimeout},
		{"health check with a body it does not read", "GET", "/healthz", nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body, closed, took := slowBody(t, ts.base, tt.method, tt.target, tt.hdr, "{")
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if took < timeout {
				t.Errorf("answered after %v, before the %v deadline", took, timeout)
			}
			if !closed {
				t.Error("the connection stayed open: the rest of the body would be read as a request")
			}
			if tt.code == "" {
				return
			}
			res.Body = io.NopCloser(strings.NewReader(body))
			checkProblem(t, res, tt.status, tt.code)
		})
	}

	t.Run("a body sent in time keeps the connection", func(t *testing.T) {
		// Two publishes on one connection, the first after the deadline
		// would have passed had it not been lifted at the end of the body.
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		for i := range 2 {
			body := fmt.Sprintf(`{"topic":"t","data":"%d"}`, i)
			fmt.Fprintf(conn, "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				tok, len(body), body)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 201 {
				t.Fatalf("publish %d: %d %s", i, res.StatusCode, b)
			}
		}
	})
}

// peerListener reports every connection as coming from peer: a real TCP
// connection on loopback, seen as a client elsewhere would be.
type peerListener struct {
	net.Listener
	peer net.Addr
}

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return peerConn{c, l.peer}, nil
}

type peerConn struct {
	net.Conn
	peer net.Addr
}

func (c peerConn) RemoteAddr() net.Addr { return c.peer }

// TestMetricsLoopbackOnly: on the main listener /metrics answers loopback
// peers only, whatever X-Forwarded-For says, unless telemetry.metrics_public;
// others get the 404 of a path that does not exist.
func TestMetricsLoopbackOnly(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	trust := func(public bool) func(*config.Config) {
		return func(c *config.Config) {
			c.Telemetry.MetricsPublic = public
			c.Limits.TrustedProxies = []string{"192.0.2.0/24"}
		}
	}
	asRemote := func(ln net.Listener) net.Listener { return peerListener{ln, remote} }
	xff := http.Header{"X-Forwarded-For": {"127.0.0.1"}}
	tests := []struct {
		name   string
		public bool
		wrap   func(net.Listener) net.Listener
		status int
	}{
		{"loopback peer", false, nil, 200},
		{"remote peer claiming loopback", false, asRemote, 404},
		{"remote peer, metrics_public", true, asRemote, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startWrapped(t, trust(tt.public), nil, tt.wrap)
			res := doReq(t, "GET", ts.base+"/metrics", xff, "")
			if res.StatusCode != tt.status {
				t.Fatalf("GET /metrics: %d, want %d", res.StatusCode, tt.status)
			}
			if tt.status == 404 {
				checkProblem(t, res, 404, policy.CodeNotFound)
				// The same answer as a path that does not exist, for every
				// method: no 405 that would reveal the route.
				res = doReq(t, "POST", ts.base+"/metrics", xff, "")
				checkProblem(t, res, 404, policy.CodeNotFound)
				return
			}
			b, _ := io.ReadAll(res.Body)
			if !bytes.Contains(b, []byte("sseguard_open_streams")) {
				t.Errorf("GET /metrics: no sseguard metrics in %.200s", b)
			}
		})
	}
}

// pingPanics is a memory store whose Ping panics once armed, when a
// request's handler calls it: the one way to make a real handler of the
// hub panic. (The hub's own periodic ping, which has no request, is
// answered: its recovered panic would make /readyz answer 503 first.)
type pingPanics struct {
	store.Store
	armed atomic.Bool
}

func (s *pingPanics) Ping(ctx context.Context) error {
	if s.armed.Load() && ctx.Value(http.ServerContextKey) != nil {
		panic("store exploded")
	}
	return s.Store.Ping(ctx)
}

// TestPanicLogIsJSON: a handler's panic is one JSON record in the server's
// own log, with the stack as a field, and the client gets a 500 problem.
func TestPanicLogIsJSON(t *testing.T) {
	st := &pingPanics{Store: memory.New(store.Retention{MaxEventsPerTopic: 10})}
	ts := start(t, nil, st)
	st.armed.Store(true)
	res := doReq(t, "GET", ts.base+"/readyz", nil, "")
	checkProblem(t, res, 500, policy.CodeInternal)
	st.armed.Store(false)

	var found map[string]any
	for line := range strings.Lines(ts.logs()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %v: %q", err, line)
		}
		if rec["msg"] == "handler panic" {
			found = rec
		}
	}
	if found == nil {
		t.Fatalf("no handler panic record in the server's log:\n%s", ts.logs())
	}
	stack, _ := found["stack"].(string)
	if found["level"] != "ERROR" || found["path"] != "/readyz" || found["panic"] != "store exploded" ||
		!strings.Contains(stack, "goroutine") || !strings.Contains(stack, "hardening_test.go") {
		t.Errorf("panic record %v: want level ERROR, path, panic and a stack through the handler", found)
	}
}

// appendFails is a memory store whose commits fail, as on a full disk,
// while armed; reads and Ping go on working.
type appendFails struct {
	store.Store
	armed atomic.Bool
}

func (s *appendFails) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	if s.armed.Load() {
		return nil, fmt.Errorf("append: write events.db: %w", syscall.ENOSPC)
	}
	return s.Store.Append(ctx, recs)
}

// TestReadyReflectsFailedCommits: /readyz answers 503 unavailable after a
// publish failed to commit, although the store still answers Ping, and
// 200 again once a commit succeeds.
func TestReadyReflectsFailedCommits(t *testing.T) {
	st := &appendFails{Store: memory.New(store.Retention{MaxEventsPerTopic: 10})}
	ts := start(t, nil, st)
	tok := token(t, allPerms, time.Hour)
	publish := func(want int) {
		t.Helper()
		res := doReq(t, "POST", ts.base+"/api/publish", http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}},
			`{"topic":"t","data":"x"}`)
		if res.StatusCode != want {
			t.Fatalf("publish: %d, want %d", res.StatusCode, want)
		}
	}
	ready := func() *http.Response { return doReq(t, "GET", ts.base+"/readyz", nil, "") }
	if res := ready(); res.StatusCode != 200 {
		t.Fatalf("/readyz before any failure: %d", res.StatusCode)
	}
	st.armed.Store(true)
	publish(http.StatusServiceUnavailable)
	if err := st.Ping(context.Background()); err != nil {
		t.Fatalf("Ping = %v; the test needs a store that still reads", err)
	}
	checkProblem(t, ready(), http.StatusServiceUnavailable, policy.CodeUnavailable)
	st.armed.Store(false)
	publish(http.StatusCreated)
	if res := ready(); res.StatusCode != 200 {
		t.Errorf("/readyz after a good commit: %d, want 200", res.StatusCode)
	}
}
