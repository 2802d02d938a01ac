package sseguardjs_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	sseguardjs "github.com/sseguard/sseguard/clients/js"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/browser"
	"github.com/sseguard/sseguard/internal/eventually"
)

// appPage is a page of another origin that subscribes to the hub at hub
// with the transports named in its query, under a strict CSP that allows
// only the hub for connections. It serves its own copy of sseguard.js, as
// docs/client.md says to for a hub on another origin.
const appPage = `<!doctype html><meta charset="utf-8"><title>app</title><script type="module" src="/app.js"></script>`

const appJS = `import { subscribe } from '/sseguard.js';
const q = new URLSearchParams(location.search);
window.got = []; window.errors = []; window.switches = [];
const sub = subscribe('demo', { url: q.get('hub'), lastEventId: '0', transports: q.get('transports').split(',') });
sub.addEventListener('message', (e) => window.got.push(e.data));
sub.addEventListener('transport', (e) => window.switches.push(e.transport));
sub.addEventListener('error', (e) => window.errors.push({ error: e.error, fatal: e.fatal, transport: e.transport }));
window.sub = sub;
`

// appServer serves the app page on localhost (another origin, and
// another site, than the hub on 127.0.0.1). Its CSP names the hub, which
// starts after it: setHub says where.
type appServer struct {
	Origin string
	hub    atomic.Pointer[string]
}

func startApp(t *testing.T) *appServer {
	t.Helper()
	a := &appServer{}
	serve := func(ctype, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			hub := *a.hub.Load()
			w.Header().Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'self'; connect-src http://%[1]s ws://%[1]s", hub))
			w.Header().Set("Content-Type", ctype)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			_, _ = w.Write([]byte(body))
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/{$}", serve("text/html; charset=utf-8", appPage))
	mux.Handle("/app.js", serve("text/javascript; charset=utf-8", appJS))
	mux.Handle("/sseguard.js", serve("text/javascript; charset=utf-8", string(sseguardjs.Source)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	a.Origin = "http://localhost:" + port
	return a
}

func (a *appServer) setHub(addr string) { a.hub.Store(&addr) }

// appState is what the app page recorded.
type appState struct {
	Got      []string         `json:"got"`
	Errors   []map[string]any `json:"errors"`
	Switches []string         `json:"switches"`
	State    string           `json:"state"`
}

// TestBrowserHubOnAnotherOrigin: the set-up of docs/client.md for a hub on
// another origin (cors.allowed_origins and anonymous_origins naming the
// page's origin) works on each transport alone: the page gets every event
// once, in order, through CORS for SSE and polling and the Origin check of
// /ws.
func TestBrowserHubOnAnotherOrigin(t *testing.T) {
	a := startApp(t)
	app := a.Origin
	h := newHub(t, func(c *config.Config) {
		c.CORS.AllowedOrigins = []string{app}
		c.CORS.AnonymousOrigins = []string{app}
	})
	a.setHub(h.addr)
	for _, transports := range [][]string{{"sse"}, {"ws"}, {"poll"}} {
		t.Run(strings.Join(transports, ","), func(t *testing.T) {
			ctx := browser.New(t, 2*time.Minute)
			messages, _ := browser.Console(t, ctx)
			url := fmt.Sprintf("%s/?hub=%s&transports=%s", app, h.URL, strings.Join(transports, ","))
			if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
				t.Fatal(err)
			}
			read := func() appState {
				raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](
					`JSON.stringify({got: window.got || [], errors: window.errors || [], switches: window.switches || [], state: window.sub ? window.sub.readyState : ''})`))
				if err != nil {
					t.Fatal(err)
				}
				var s appState
				if err := json.Unmarshal([]byte(raw), &s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			var s appState
			if !eventually.Wait(20*time.Second, func() bool { s = read(); return s.State == "open" }) {
				t.Fatalf("not open: %+v", s)
			}
			tag := strings.Join(transports, "")
			var want []string
			for i := 1; i <= 5; i++ {
				d := fmt.Sprintf("%s-%d", tag, i)
				h.publish(t, d)
				want = append(want, d)
			}
			if !eventually.Wait(30*time.Second, func() bool { s = read(); return len(s.Got) > 0 && s.Got[len(s.Got)-1] == want[len(want)-1] }) {
				t.Fatalf("the last event did not arrive: %+v", s)
			}
			// Earlier subtests published too: the page replays all history.
			if got := s.Got[len(s.Got)-len(want):]; !slices.Equal(got, want) {
				t.Errorf("got %q, want it to end with %q", s.Got, want)
			}
			if seenTwice(s.Got) {
				t.Errorf("an event arrived twice: %q", s.Got)
			}
			if !slices.Equal(s.Switches, transports) || len(s.Errors) != 0 {
				t.Errorf("switches %q, errors %v: want %q and none", s.Switches, s.Errors, transports)
			}
			browser.Settle(t, ctx, messages)
			for _, m := range messages() {
				if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "CORS") {
					t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
				}
			}
		})
	}
}

func seenTwice(s []string) bool {
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			return true
		}
		seen[v] = true
	}
	return false
}

// TestBrowserRefusalOnAnotherOrigin: a refusal to an allowed origin is
// readable there (the hub's CORS allowlist may read refusals), so the
// client stops with the problem's code instead of taking it for a broken
// transport and stepping down: here an allowed origin that may not read
// anonymous topics gets 403 origin_forbidden.
func TestBrowserRefusalOnAnotherOrigin(t *testing.T) {
	a := startApp(t)
	h := newHub(t, func(c *config.Config) { c.CORS.AllowedOrigins = []string{a.Origin} })
	a.setHub(h.addr)
	ctx := browser.New(t, 2*time.Minute)
	url := fmt.Sprintf("%s/?hub=%s&transports=sse,ws,poll", a.Origin, h.URL)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	var s appState
	if !eventually.Wait(30*time.Second, func() bool {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`JSON.stringify({got: window.got || [], errors: window.errors || [], switches: window.switches || [], state: window.sub ? window.sub.readyState : ''})`))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatal(err)
		}
		return s.State == "closed"
	}) {
		t.Fatalf("the subscription did not stop: %+v", s)
	}
	if len(s.Errors) != 1 || s.Errors[0]["error"] != "origin_forbidden" || s.Errors[0]["fatal"] != true {
		t.Errorf("errors %v, want one fatal origin_forbidden", s.Errors)
	}
	if !slices.Equal(s.Switches, []string{"sse"}) || len(s.Got) != 0 {
		t.Errorf("switches %q, got %q: want it to stop on SSE with nothing", s.Switches, s.Got)
	}
}
