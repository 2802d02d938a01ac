package sseguardjs_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	sseguardjs "github.com/sseguard/sseguard/clients/js"
	"github.com/sseguard/sseguard/internal/browser"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/web"
)

// shownPresence is what the demo page's presence line shows.
type shownPresence struct {
	State    string   `json:"state"`
	Count    string   `json:"count"`
	Text     string   `json:"text"`
	Subjects []string `json:"subjects"`
	Rows     int      `json:"rows"`
}

const readPresence = `JSON.stringify({
  state: document.getElementById('presence')?.dataset.state || '',
  count: document.getElementById('presence')?.dataset.count || '',
  text: document.getElementById('presence-text')?.textContent || '',
  subjects: [...document.querySelectorAll('#presence-subjects li')].map((li) => li.textContent),
  rows: document.querySelectorAll('#events tr').length,
})`

// TestBrowserDemoPresence: the hub's demo page, signed in with a token
// that carries the presence claim, shows the topic's presence (count and
// subjects) and follows another subscriber's join and leave live.
func TestBrowserDemoPresence(t *testing.T) {
	h := withPresence(t)
	const topic = "chat/demo"
	h.publishTo(t, topic, "hello")
	checkServed(t, h.URL)
	ctx := browser.New(t, 2*time.Minute)
	messages, _ := browser.Console(t, ctx)
	t.Cleanup(func() {
		if t.Failed() {
			browser.Screenshot(t, ctx)
		}
	})
	// The cookie the hub reads tokens from (auth.cookie), as a sign-in
	// would set it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	httpOnly := true
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: "sseguard_token",
		Value: presenceToken(t, h.secret, "alice", true), URL: h.URL + "/", Path: "/", HTTPOnly: &httpOnly}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(h.URL+"/?topic="+topic)); err != nil {
		t.Fatal(err)
	}
	read := func() shownPresence {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPresence))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		var s shownPresence
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	wait := func(what string, cond func(shownPresence) bool) {
		t.Helper()
		var s shownPresence
		if !eventually.Wait(20*time.Second, func() bool { s = read(); return cond(s) }) {
			t.Fatalf("%s: not within 20 s; the page shows %+v", what, s)
		}
	}
	wait("the page itself, listed", func(s shownPresence) bool {
		return s.State == "on" && s.Count == "1" && slices.Equal(s.Subjects, []string{"alice"}) && s.Rows == 1
	})

	bob := startClient(t, clientOptions{URL: h.URL, Topics: []string{topic}, Transports: []string{"ws"},
		TokenParam: "access_token", Token: presenceToken(t, h.secret, "bob", false)})
	bob.waitFor("bob open", 20*time.Second, hasKind("open"))
	wait("bob's join", func(s shownPresence) bool {
		return s.Count == "2" && slices.Equal(s.Subjects, []string{"alice", "bob"})
	})
	bob.send(map[string]string{"cmd": "close"})
	wait("bob's leave", func(s shownPresence) bool {
		return s.Count == "1" && slices.Equal(s.Subjects, []string{"alice"})
	})
	browser.Settle(t, ctx, messages)
	for _, m := range messages() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}
}

// TestBrowserDemoPresenceOff: on a hub that does not track the page's
// topic (or does not serve presence at all), the demo page says so and
// still lists the topic's events: it does not ask for presence=1, which
// the hub would refuse.
func TestBrowserDemoPresenceOff(t *testing.T) {
	h := newHub(t)
	p := openPage(t, h.URL) // topic demo, which no presence.topics tracks by default
	p.waitFor("open", 20*time.Second, func(s seen) bool { return s.State == "state open" })
	raw, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](readPresence))
	if err != nil {
		t.Fatal(err)
	}
	var s shownPresence
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	if s.State != "off" || s.Count != "" {
		t.Errorf("presence shows %+v, want off", s)
	}
	h.publish(t, "n=1")
	p.finish(h, []string{"n=1"}, []string{"sse"})
}

// scriptedHub serves the demo page (the embedded web files and
// sseguard.js) with the hub's page CSP, and a scripted /api/presence and
// /events that speak the presence contract: the page's side of presence,
// tested without the server's.
type scriptedHub struct {
	URL      string
	mu       sync.Mutex
	presence string            // the /api/presence answer
	streams  []chan string     // one per open /events, fed by push
	queries  []map[string]bool // presence=1 of each /events request
}

func startScriptedHub(t *testing.T, answer string) *scriptedHub {
	t.Helper()
	sh := &scriptedHub{presence: answer}
	csp := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sseguard.js", func(w http.ResponseWriter, r *http.Request) {
		csp(w, r)
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(sseguardjs.Source)
	})
	mux.HandleFunc("GET /api/presence", func(w http.ResponseWriter, r *http.Request) {
		sh.mu.Lock()
		ans := sh.presence
		sh.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = fmt.Fprint(w, ans)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		ch := make(chan string, 16)
		sh.mu.Lock()
		sh.streams = append(sh.streams, ch)
		sh.queries = append(sh.queries, map[string]bool{"presence": r.URL.Query().Get("presence") == "1"})
		sh.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache, no-store, no-transform")
		_, _ = fmt.Fprint(w, "retry: 1000\n\nid: 1\ndata: hello\n\n")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case s := <-ch:
				_, _ = fmt.Fprint(w, s)
				w.(http.Flusher).Flush()
			}
		}
	})
	mux.Handle("/", web.Handler(http.NotFoundHandler(), csp))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sh.URL = srv.URL
	return sh
}

// push writes text to the newest stream.
func (sh *scriptedHub) push(t *testing.T, text string) {
	t.Helper()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.streams) == 0 {
		t.Fatal("no stream is open")
	}
	sh.streams[len(sh.streams)-1] <- text
}

// TestBrowserDemoPresenceScripted: the demo page against a scripted hub
// that speaks the presence contract: it shows the count and subjects
// presence() answered, asks /events for presence=1, and follows join and
// leave events (with and without a subject) live, while the events of the
// topic are listed as before.
func TestBrowserDemoPresenceScripted(t *testing.T) {
	sh := startScriptedHub(t, `{"topic":"chat/demo","count":1,"subjects":["alice"]}`)
	ctx := browser.New(t, 2*time.Minute)
	messages, _ := browser.Console(t, ctx)
	t.Cleanup(func() {
		if t.Failed() {
			browser.Screenshot(t, ctx)
		}
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(sh.URL+"/?topic=chat/demo")); err != nil {
		t.Fatal(err)
	}
	read := func() shownPresence {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](readPresence))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		var s shownPresence
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	wait := func(what string, cond func(shownPresence) bool) {
		t.Helper()
		var s shownPresence
		if !eventually.Wait(20*time.Second, func() bool { s = read(); return cond(s) }) {
			t.Fatalf("%s: not within 20 s; the page shows %+v", what, s)
		}
	}
	wait("presence() and the first event", func(s shownPresence) bool {
		return s.State == "on" && s.Count == "1" && slices.Equal(s.Subjects, []string{"alice"}) && s.Rows == 1
	})
	sh.mu.Lock()
	asked := sh.queries[0]["presence"]
	sh.mu.Unlock()
	if !asked {
		t.Error("the page did not ask /events for presence=1")
	}
	sh.push(t, "event: sseguard.join\ndata: {\"topic\":\"chat/demo\",\"count\":2,\"sub\":\"bob\"}\n\n")
	wait("bob's join", func(s shownPresence) bool {
		return s.Count == "2" && slices.Equal(s.Subjects, []string{"alice", "bob"})
	})
	sh.push(t, "event: sseguard.join\ndata: {\"topic\":\"chat/demo\",\"count\":3}\n\n")
	wait("an anonymous join", func(s shownPresence) bool {
		return s.Count == "3" && slices.Equal(s.Subjects, []string{"alice", "bob"})
	})
	sh.push(t, "event: sseguard.leave\ndata: {\"topic\":\"chat/demo\",\"count\":2,\"sub\":\"bob\"}\n\nid: 2\ndata: after\n\n")
	wait("bob's leave and the next event", func(s shownPresence) bool {
		return s.Count == "2" && slices.Equal(s.Subjects, []string{"alice"}) && s.Rows == 2
	})
	if s := read(); !strings.Contains(s.Text, "2 connections") {
		t.Errorf("the presence line says %q", s.Text)
	}
	browser.Settle(t, ctx, messages)
	for _, m := range messages() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}
}
