package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/browser"
)

// spikeLearning is how long the spike detector only learns its baseline
// after the server starts (telemetry.spike_learn, set short here);
// refusals sent earlier would become the baseline.
const spikeLearning = 4 * time.Second

// TestDashboardInBrowser logs in to the dashboard with a token, makes
// traffic and then a burst of refusals, checks what the page shows, and
// signs out. The hub runs on plain http://127.0.0.1 with the default
// configuration, so its login cookie is Secure: the login working shows
// that Chromium keeps a Secure cookie from a loopback origin over HTTP, as
// the quick start needs.
func TestDashboardInBrowser(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Telemetry.SpikeLearn = config.Duration(3 * time.Second) }, nil)
	started := time.Now()
	tok := token(t, allPerms, time.Hour)
	dashTok := token(t, auth.Permissions{Subscribe: []string{DashboardTopic}}, time.Hour)

	t.Run("stream refuses without a token", func(t *testing.T) {
		req, _ := http.NewRequest("GET", ts.base+"/dashboard/stream", nil)
		req.Header.Set("Accept", "text/event-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", res.StatusCode)
		}
	})

	ctx := browser.New(t, 3*time.Minute)
	// Console messages are collected from before the page loads, so that a
	// CSP report or an exception at load time is seen too.
	messages, stopConsole := browser.Console(t, ctx)
	t.Cleanup(func() { browser.Screenshot(t, ctx) })

	js := func(t *testing.T, expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	points := func(t *testing.T) string {
		return js(t, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('svg.chart')].map(s => [s.id, Number(s.getAttribute('data-points'))])))`)
	}

	// A subscriber, so that events are delivered and streams are open.
	subCtx, stopSub := context.WithCancel(context.Background())
	defer stopSub()
	res, p := ts.openStream(t, subCtx, "topic=demo", http.Header{"Authorization": {"Bearer " + tok}})
	if res.StatusCode != 200 {
		t.Fatalf("subscriber: status %d", res.StatusCode)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			if _, err := p.Next(); err != nil {
				return
			}
		}
	}()
	defer func() { stopSub(); <-drained }()
	publishes := 0
	traffic := func(t *testing.T) {
		for range 5 {
			publishes++
			ts.mustPublish(t, tok, "demo", fmt.Sprintf("event %d", publishes))
		}
	}

	// until makes traffic with more until cond (a JavaScript expression) is
	// true in the page, or fails the test after timeout with what describe
	// shows.
	until := func(t *testing.T, timeout time.Duration, cond string, more func(*testing.T), describe func(*testing.T) string) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			more(t)
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
			if err != nil {
				t.Fatalf("evaluating %s: %v", cond, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v, still not %s; the page shows %s", timeout, cond, describe(t))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("login", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(ts.base+"/dashboard")); err != nil {
			t.Fatal(err)
		}
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/dashboard/login") {
			t.Fatalf("without a cookie /dashboard went to %q (%v), want /dashboard/login", loc, err)
		}
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), dashTok)); err != nil {
			t.Fatal(err)
		}
		res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 200 || !strings.HasSuffix(res.URL, "/dashboard") {
			t.Fatalf("after the login form: %d %s, want 200 /dashboard; the page says %s", res.Status, res.URL, js(t, "document.body.textContent"))
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
			"document.getElementById('state').classList.contains('open')",
			chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("the stats stream did not open: %v; #state is %q", err, js(t, "document.getElementById('state').className"))
		}
		if cookie := js(t, "document.cookie"); strings.Contains(cookie, DashboardCookie) {
			t.Errorf("the token cookie is readable by scripts: %q", cookie)
		}
	})

	t.Run("charts update", func(t *testing.T) {
		until(t, 20*time.Second, "document.getElementById('chart-events').getAttribute('data-points') >= 2", traffic, points)
		first := js(t, "document.getElementById('chart-events').getAttribute('data-points')")
		until(t, 20*time.Second, fmt.Sprintf(
			"[...document.querySelectorAll('svg.chart')].every(s => Number(s.getAttribute('data-points')) >= %s + 3)", first),
			traffic, points)
		// The subscriber above is open, and the publishes reached it.
		until(t, 20*time.Second, "document.querySelector('#legend-streams li b').textContent !== '0'", traffic,
			func(t *testing.T) string { return js(t, "document.getElementById('legend-streams').textContent") })
		until(t, 20*time.Second, "document.querySelector('#legend-events li b').textContent !== '0/s'", traffic,
			func(t *testing.T) string { return js(t, "document.getElementById('legend-events').textContent") })
	})

	t.Run("spike indicator turns on", func(t *testing.T) {
		// Traffic while the detector learns; then refusals every round until
		// the page shows the spike.
		refuse := func(t *testing.T) {
			traffic(t)
			if time.Since(started) < spikeLearning {
				return
			}
			// Two a round, some twenty a second: over the detector's floor
			// of 30 a minute within two seconds, and few enough that the
			// stats' log lines for a second keep room for the warning.
			expectRefusal(t, ts.base+"/events?topic=demo", http.Header{
				"Accept": {"*/*"}, "Authorization": {"Bearer " + tok}}, http.StatusNotAcceptable)
			expectRefusal(t, ts.base+"/events?topic=demo", http.Header{
				"Accept": {"text/event-stream"}, "Authorization": {"Bearer " + tok}, "Origin": {"https://evil.test"}},
				http.StatusForbidden)
		}
		until(t, time.Until(started.Add(spikeLearning+40*time.Second)),
			"document.getElementById('spike').classList.contains('on')", refuse,
			func(t *testing.T) string { return js(t, "document.getElementById('spike').outerHTML") })
		if text := js(t, "document.getElementById('spike').textContent"); !strings.HasPrefix(text, "refusal spike: ") ||
			!strings.Contains(text, "403") && !strings.Contains(text, "406") {
			t.Errorf("#spike says %q", text)
		}
		// Let a few stats with the spike arrive, for the band and the log.
		until(t, 10*time.Second, "document.querySelectorAll('#chart-refusals rect.band').length > 0 && document.querySelector('#chart-refusals rect.band').getAttribute('width') > 4",
			traffic, func(t *testing.T) string { return js(t, "document.getElementById('chart-refusals').innerHTML") })
		legend := js(t, "document.getElementById('legend-refusals').textContent")
		for _, code := range []string{"accept_not_acceptable", "origin_forbidden"} {
			if !strings.Contains(legend, code) {
				t.Errorf("the refusals legend lacks %s: %q", code, legend)
			}
		}
		log := js(t, "document.getElementById('log').textContent")
		for _, want := range []string{"refused", "origin_forbidden", "accept_not_acceptable", "refusal spike"} {
			if !strings.Contains(log, want) {
				t.Errorf("the log lacks %q: %q", want, log)
			}
		}
		t.Logf("data points: %s", points(t))
	})

	t.Run("sign out", func(t *testing.T) {
		res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("signout")))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 200 || !strings.HasSuffix(res.URL, "/dashboard/login") {
			t.Fatalf("after signing out: %d %s, want 200 /dashboard/login", res.Status, res.URL)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.base+"/dashboard")); err != nil {
			t.Fatal(err)
		}
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loc, "/dashboard/login") {
			t.Fatalf("after signing out /dashboard went to %q (%v), want /dashboard/login", loc, err)
		}
	})

	stopConsole()
	for _, m := range messages() {
		t.Logf("console: %s", m)
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}
}

// expectRefusal makes a GET that the server must refuse with status.
func expectRefusal(t *testing.T, url string, hdr http.Header, status int) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header = hdr
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != status {
		t.Fatalf("GET %s (Accept %q, Origin %q): status %d, want %d", url, hdr.Get("Accept"), hdr.Get("Origin"), res.StatusCode, status)
	}
}

// TestDashboardHistoryInBrowser: a dashboard opened after ten minutes of
// traffic (replayed into the hub's metrics before it serves, one tick a
// second) shows those minutes at once: a row per minute with refusals by
// code, the minute of the burst marked as a spike, the spike pinned with
// its code, the top refused route and origin, and charts that do not start
// empty.
func TestDashboardHistoryInBrowser(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	ts := start(t, nil, nil, func(s *Server) {
		for i := range 600 {
			if i/60 == 5 {
				for range 10 {
					r := httptest.NewRequest("GET", "/events?topic=x", nil)
					r.Header.Set("Origin", "https://evil.example")
					s.metrics.ObserveResponse(r, 403, "origin_forbidden")
				}
			} else if i%10 == 0 {
				s.metrics.ObserveResponse(httptest.NewRequest("GET", "/api/poll?topic=x", nil), 401, "token_missing")
			}
			s.metrics.Tick(t0.Add(time.Duration(i) * time.Second))
		}
	})
	dashTok := token(t, auth.Permissions{Subscribe: []string{DashboardTopic}}, time.Hour)
	ctx := browser.New(t, 60*time.Second)
	messages, stopConsole := browser.Console(t, ctx)
	// docs/dashboard.png is this page: SSEGUARD_UPDATE_SCREENSHOT=1
	// replaces it when the test passed.
	t.Cleanup(func() {
		png := browser.Screenshot(t, ctx)
		if png != nil && os.Getenv("SSEGUARD_UPDATE_SCREENSHOT") == "1" && !t.Failed() {
			const doc = "../docs/dashboard.png"
			if err := os.WriteFile(doc, png, 0o644); err != nil {
				t.Errorf("updating %s: %v", doc, err)
				return
			}
			t.Logf("updated %s", doc)
		}
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1400), chromedp.Navigate(ts.base+"/dashboard/login"),
		chromedp.SendKeys(chromedp.ID("token"), dashTok)); err != nil {
		t.Fatal(err)
	}
	if res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`))); err != nil || res.Status != 200 || !strings.HasSuffix(res.URL, "/dashboard") {
		t.Fatalf("login: %v %v, want 200 /dashboard", res, err)
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("document.querySelectorAll('#minutes tr[data-minute]').length >= 10",
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("no history shown: %v; #minutes: %s", err, eval("document.getElementById('minutes').textContent"))
	}
	burst := t0.Add(5 * time.Minute).Format("2006-01-02T15:04:05Z")
	row := eval(fmt.Sprintf("(() => { const tr = document.querySelector('#minutes tr[data-minute=%q]'); return tr ? tr.className + '|' + tr.querySelector('td.refusals').textContent : ''; })()", burst))
	if row != "spike-minute|origin_forbidden 600" {
		t.Errorf("the burst's minute %s shows %q, want \"spike-minute|origin_forbidden 600\"", burst, row)
	}
	quiet := t0.Add(2 * time.Minute).Format("2006-01-02T15:04:05Z")
	if row := eval(fmt.Sprintf("document.querySelector('#minutes tr[data-minute=%q] td.refusals')?.textContent ?? ''", quiet)); row != "token_missing 6" {
		t.Errorf("a quiet minute %s shows %q, want \"token_missing 6\"", quiet, row)
	}
	if n := eval("String(document.querySelectorAll('#spikes li.spike-row').length)"); n != "1" {
		t.Errorf("%s pinned spikes, want 1: %s", n, eval("document.getElementById('spikes').textContent"))
	}
	if sp := eval("document.getElementById('spikes').textContent"); !strings.HasPrefix(sp, "refusal spike ") || !strings.Contains(sp, "origin_forbidden") || !strings.Contains(sp, "/events") {
		t.Errorf("the pinned spike says %q", sp)
	}
	for id, want := range map[string]string{"top-routes": "/events ×600", "top-origins": "https://evil.example ×600"} {
		if got := eval(fmt.Sprintf("document.querySelector('#%s li')?.textContent ?? ''", id)); got != want {
			t.Errorf("#%s first: %q, want %q", id, got, want)
		}
	}
	// The charts start from the recorded seconds, not from one point.
	if n := eval("document.getElementById('chart-refusals').getAttribute('data-points')"); n == "0" || n == "1" {
		t.Errorf("the refusals chart has %s points after the history", n)
	}
	browser.Settle(t, ctx, messages)
	stopConsole()
	for _, m := range messages() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}
}
