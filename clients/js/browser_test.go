package sseguardjs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/auth"
	sseguardjs "github.com/sseguard/sseguard/clients/js"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/browser"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/nginxtest"
	"github.com/sseguard/sseguard/server"
	"github.com/sseguard/sseguard/store/bolt"
)

// These tests load the demo page (strict CSP, no inline script), which
// imports the client from the hub's /sseguard.js, publish a numbered
// sequence while it runs, and check the exact sequence the page lists
// and the transports it went through. The topic is the demo topic that
// anonymous readers may read by default.

// hubProc is a real hub on loopback with a bolt store in a file, so that
// it can be stopped and started again on the same address and file.
type hubProc struct {
	URL    string
	addr   string
	db     string
	secret []byte
	stop   func()
}

// startHub starts a hub on addr ("127.0.0.1:0" for a new port) with its
// events in the bolt file db, verifying tokens with secret. It stops when
// the test ends, if not before.
func startHub(t *testing.T, addr, db string, secret []byte, configure ...func(*config.Config)) *hubProc {
	t.Helper()
	c := config.Default()
	for _, f := range configure {
		f(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st, err := bolt.Open(db, c.Store.Retention(), &bolt.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	v, stopKeys, err := server.NewVerifier(context.Background(), c, secret, log)
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Options{Store: st, QueueBytes: c.Stream.QueueBytes, Logger: log})
	api := server.New(c, h, v, log)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		stopKeys()
		_ = st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- api.Run(ctx, ln) }()
	var once sync.Once
	p := &hubProc{URL: "http://" + ln.Addr().String(), addr: ln.Addr().String(), db: db, secret: secret}
	p.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("hub: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the hub did not stop within 30 s")
			}
			stopKeys()
			if err := st.Close(); err != nil {
				t.Errorf("closing the store: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("hub log (%s):\n%s", p.addr, logs.String())
		}
	})
	return p
}

// lockedBuffer is a log destination written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newHub starts a hub on a new port with a new store and secret.
func newHub(t *testing.T, configure ...func(*config.Config)) *hubProc {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return startHub(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "events.db"), secret, configure...)
}

// publish publishes data to the demo topic and returns its ID.
func (p *hubProc) publish(t *testing.T, data string) string {
	t.Helper()
	tok, err := auth.Mint(p.secret, "publisher", auth.Permissions{Publish: []string{"demo"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"topic": "demo", "data": data})
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("publish %q: %d %v", data, res.StatusCode, err)
	}
	return ans.ID
}

// page is the demo page open in Chromium.
type page struct {
	t        *testing.T
	ctx      context.Context
	messages func() []chromedp.ConsoleMessage
}

func openPage(t *testing.T, url string) *page {
	t.Helper()
	checkServed(t, url)
	ctx := browser.New(t, 2*time.Minute)
	messages, _ := browser.Console(t, ctx)
	t.Cleanup(func() {
		if t.Failed() {
			browser.Screenshot(t, ctx)
		}
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/?topic=demo")); err != nil {
		t.Fatal(err)
	}
	return &page{t: t, ctx: ctx, messages: messages}
}

// checkServed checks, through whatever is in front of the hub, that the
// demo page has the strict page policy and that /sseguard.js is the
// embedded client, byte for byte.
func checkServed(t *testing.T, url string) {
	t.Helper()
	res, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("the demo page's CSP is %q, want a strict one", csp)
	}
	res, err = http.Get(url + "/sseguard.js")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") || !bytes.Equal(b, sseguardjs.Source) {
		t.Fatalf("/sseguard.js: %s %q, %d bytes; want 200 text/javascript with the %d bytes of Source", res.Status, res.Header.Get("Content-Type"), len(b), len(sseguardjs.Source))
	}
}

// seen is what the page shows: the data of each row, oldest first, the
// transport in use and the transports it switched through.
type seen struct {
	Rows       []string `json:"rows"`
	Transport  string   `json:"transport"`
	Transports []string `json:"transports"`
	Switches   []string `json:"switches"`
	State      string   `json:"state"`
	Why        string   `json:"why"`
}

const readPage = `JSON.stringify({
  rows: [...document.querySelectorAll('#events tr')].reverse().map((tr) => tr.querySelector('td.data').textContent),
  transport: document.getElementById('transport').textContent,
  transports: [...document.querySelectorAll('#switches li')].map((li) => li.dataset.transport),
  switches: [...document.querySelectorAll('#switches li')].map((li) => li.textContent),
  state: document.getElementById('state').className,
  why: document.getElementById('why').textContent,
})`

func (p *page) read() seen {
	p.t.Helper()
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](readPage))
	if err != nil {
		p.t.Fatalf("reading the page: %v", err)
	}
	var s seen
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// waitFor polls the page until cond holds, failing with what it shows.
func (p *page) waitFor(what string, within time.Duration, cond func(seen) bool) seen {
	p.t.Helper()
	var last seen
	if !eventually.Wait(within, func() bool { last = p.read(); return cond(last) }) {
		p.t.Fatalf("%s: not within %v; the page shows %+v", what, within, last)
	}
	return last
}

// numbered returns the data of events from to to.
func numbered(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, "n="+strconv.Itoa(i))
	}
	return s
}

// finish publishes the sentinel after everything else, waits until the
// page lists it, and checks the exact sequence (each event once, in order,
// none missing), the transports the page went through, and the console.
func (p *page) finish(h *hubProc, published []string, transports []string) {
	p.t.Helper()
	const sentinel = "end"
	h.publish(p.t, sentinel)
	want := append(slices.Clone(published), sentinel)
	s := p.waitFor("the sentinel listed", 45*time.Second, func(s seen) bool {
		return len(s.Rows) > 0 && s.Rows[len(s.Rows)-1] == sentinel
	})
	if !slices.Equal(s.Rows, want) {
		p.t.Errorf("the page lists %d events %q, want exactly %q", len(s.Rows), s.Rows, want)
	}
	if !slices.Equal(s.Transports, transports) || s.Transport != transports[len(transports)-1] {
		p.t.Errorf("transports %q (now %q), want %q; switches: %q", s.Transports, s.Transport, transports, s.Switches)
	}
	if !strings.Contains(s.State, "open") {
		p.t.Errorf("state %q (%s), want open", s.State, s.Why)
	}
	p.t.Logf("switches: %q", s.Switches)
	browser.Settle(p.t, p.ctx, p.messages)
	for _, m := range p.messages() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			p.t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}
}

func publishAll(t *testing.T, h *hubProc, data []string) {
	t.Helper()
	for _, d := range data {
		h.publish(t, d)
	}
}

// TestBrowserStraightToHub (a): nothing in the way: the client stays on
// Server-Sent Events.
func TestBrowserStraightToHub(t *testing.T) {
	h := newHub(t)
	p := openPage(t, h.URL)
	p.waitFor("open", 20*time.Second, func(s seen) bool { return strings.Contains(s.State, "open") })
	first, second := numbered(1, 10), numbered(11, 20)
	publishAll(t, h, first)
	p.waitFor("the first ten", 20*time.Second, func(s seen) bool { return len(s.Rows) >= 10 })
	publishAll(t, h, second)
	p.finish(h, append(first, second...), []string{"sse"})
}

// TestBrowserHubRestarted (d): the hub stops mid-run and starts again on
// the same address and store file; the client resumes after the last
// event it had: no gap, no repeat, still on SSE.
func TestBrowserHubRestarted(t *testing.T) {
	h := newHub(t)
	p := openPage(t, h.URL)
	p.waitFor("open", 20*time.Second, func(s seen) bool { return strings.Contains(s.State, "open") })
	first := numbered(1, 10)
	publishAll(t, h, first)
	p.waitFor("the first ten", 20*time.Second, func(s seen) bool { return len(s.Rows) >= 10 })

	h.stop()
	h = startHub(t, h.addr, h.db, h.secret)
	// Published while the page is still waiting out the hub's retry hint.
	second := numbered(11, 20)
	publishAll(t, h, second)
	p.finish(h, append(first, second...), []string{"sse"})
}

// bufferingProxy is nginx as the hardening guide warns against: it
// buffers and gzips the stream, ignoring X-Accel-Buffering. upgrades says
// whether it passes WebSocket upgrades (its own location, as nginx needs);
// without, /ws reaches the hub as a plain GET, as a default nginx sends it.
const bufferingProxy = `
server {
    listen %[1]s;
    gzip on;
    gzip_types text/event-stream application/json;
    gzip_min_length 0;
    gzip_proxied any;
    location / {
        proxy_pass http://%[2]s;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        proxy_buffering on;
        proxy_ignore_headers X-Accel-Buffering;
        proxy_hide_header X-Accel-Buffering;
        proxy_read_timeout 1h;
    }
%[3]s}
`

const upgrades = `    location /ws {
        proxy_pass http://%[1]s;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_read_timeout 1h;
    }
`

// startNginx runs nginx with site (its listen address and upstream filled
// in) in front of upstream and returns its URL.
func startNginx(t *testing.T, upstream string, passUpgrades bool) string {
	t.Helper()
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("nginx")
		if lerr != nil {
			browser.RequireOrSkip(t, "nginx (Debian's nginx package)", errors.Join(err, lerr))
		}
		bin = p
	}
	extra := ""
	if passUpgrades {
		extra = fmt.Sprintf(upgrades, upstream)
	}
	return "http://" + nginxtest.Start(t, bin, func(addr string) string {
		return fmt.Sprintf(bufferingProxy, addr, upstream, extra)
	}, 256)
}

// TestBrowserBehindBufferingProxy (b): nginx buffers and compresses the
// stream but passes WebSocket upgrades: no byte within the first-byte
// timeout, so the client switches to WebSocket, with no gap.
func TestBrowserBehindBufferingProxy(t *testing.T) {
	h := newHub(t)
	proxy := startNginx(t, h.addr, true)
	p := openPage(t, proxy)
	// Published while the stream is held in nginx's buffers.
	first := numbered(1, 5)
	publishAll(t, h, first)
	p.waitFor("on WebSocket", 30*time.Second, func(s seen) bool { return s.Transport == "ws" && strings.Contains(s.State, "open") })
	second := numbered(6, 15)
	publishAll(t, h, second)
	p.finish(h, append(first, second...), []string{"sse", "ws"})
}

// TestBrowserBehindProxyRefusingWebSocket (c): nginx buffers the stream
// and does not pass WebSocket upgrades: the client ends on polling.
func TestBrowserBehindProxyRefusingWebSocket(t *testing.T) {
	h := newHub(t)
	proxy := startNginx(t, h.addr, false)
	p := openPage(t, proxy)
	first := numbered(1, 5)
	publishAll(t, h, first)
	p.waitFor("on polling", 45*time.Second, func(s seen) bool { return s.Transport == "poll" && strings.Contains(s.State, "open") })
	second := numbered(6, 15)
	publishAll(t, h, second)
	p.finish(h, append(first, second...), []string{"sse", "ws", "poll"})
}
