package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"github.com/sseguard/sseguard/internal/browser"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/web"
)

// stats is the JSON the hub sends as a "stats" event on /dashboard/stream,
// once a second. Every field may be zero or absent.
type stats struct {
	Time                    time.Time          `json:"time"`
	OpenStreams             map[string]int     `json:"open_streams,omitempty"`
	EventsPerSecond         float64            `json:"events_per_second,omitempty"`
	DeliveredPerSecond      float64            `json:"delivered_per_second,omitempty"`
	DeliveredBytesPerSecond float64            `json:"delivered_bytes_per_second,omitempty"`
	RefusalsPerSecond       map[string]float64 `json:"refusals_per_second,omitempty"`
	Spike                   *spike             `json:"spike,omitempty"`
	P99DeliveryMS           float64            `json:"p99_delivery_ms,omitempty"`
	Log                     []map[string]any   `json:"log,omitempty"`
}

type spike struct {
	Active   bool      `json:"active"`
	Since    time.Time `json:"since,omitzero"`
	Statuses []int     `json:"statuses,omitempty"`
	TopCodes []string  `json:"top_codes,omitempty"`
}

// fakeSamples is the length of the synthetic run: exactly the two minutes
// the dashboard keeps.
const fakeSamples = 120

var fakeStart = time.Date(2026, 11, 25, 23, 58, 0, 0, time.UTC)

// Two refusal spikes: one that recovers, one still on at the end. The
// detector lags the refusals and recovers with hysteresis, as the hub's does.
const (
	spike1Refusals, spike1On, spike1Off = 28, 30, 46
	spike2Refusals, spike2On            = 92, 95
)

// fakeStats is sample i of a deterministic two-minute run: sample 0 is
// empty, to check that the page copes with absent fields.
func fakeStats(i int) stats {
	now := fakeStart.Add(time.Duration(i) * time.Second)
	s := stats{Time: now}
	if i == 0 {
		return s
	}
	f := float64(i)
	s.OpenStreams = map[string]int{"sse": 12 + int(math.Round(4*math.Sin(f/9))), "poll": 1 + (i/20)%3}
	s.EventsPerSecond = math.Round(40 + 12*math.Sin(f/7) + 5*math.Sin(f/2.3))
	s.DeliveredPerSecond = s.EventsPerSecond * float64(s.OpenStreams["sse"])
	s.DeliveredBytesPerSecond = s.DeliveredPerSecond * 106
	s.P99DeliveryMS = math.Round((9+3*math.Sin(f/5))*10) / 10
	s.RefusalsPerSecond = map[string]float64{}
	if i%7 == 0 {
		s.RefusalsPerSecond["origin_forbidden"] = 0.2
	}
	if i%11 == 0 {
		s.RefusalsPerSecond["token_expired"] = 0.1
	}
	s.Spike = &spike{}
	switch {
	case i >= spike1Refusals && i < spike1Off-2:
		s.RefusalsPerSecond["origin_forbidden"] = math.Round(9 + 3*math.Sin(f))
		s.RefusalsPerSecond["accept_not_acceptable"] = 2.5
		s.P99DeliveryMS += 6
	case i >= spike2Refusals:
		s.RefusalsPerSecond["accept_not_acceptable"] = math.Round(14 + 4*math.Sin(f/2))
		s.RefusalsPerSecond["origin_forbidden"] = 1
	}
	switch {
	case i >= spike1On && i < spike1Off:
		s.Spike = &spike{Active: true, Since: fakeStart.Add(spike1On * time.Second),
			Statuses: []int{403, 406}, TopCodes: []string{"origin_forbidden", "accept_not_acceptable"}}
	case i >= spike2On:
		s.Spike = &spike{Active: true, Since: fakeStart.Add(spike2On * time.Second),
			Statuses: []int{406}, TopCodes: []string{"accept_not_acceptable"}}
	}
	line := func(level, msg string, kv ...any) {
		m := map[string]any{"time": now.Add(-300 * time.Millisecond), "level": level, "msg": msg}
		for k := 0; k+1 < len(kv); k += 2 {
			m[kv[k].(string)] = kv[k+1]
		}
		s.Log = append(s.Log, m)
	}
	switch i {
	case 12, spike1Refusals + 1:
		line("INFO", "refused", "status", 403, "code", "origin_forbidden", "route", "/events", "origin", "https://evil.test")
	case spike1On:
		line("WARN", "refusal spike", "status", 403, "code", "origin_forbidden", "route", "/events")
	case spike1Off:
		line("INFO", "refusal spike over", "status", 403)
	case 70:
		line("WARN", "header drift", "header", "Cache-Control", "kind", "changed", "route", "/events",
			"want", "no-cache, no-store, no-transform", "got", "max-age=60")
	case spike2Refusals + 1:
		// A burst: the page shows identical lines as one row with a count.
		for range 30 {
			line("INFO", "refused", "status", 406, "code", "accept_not_acceptable", "route", "/events", "accept", "*/*")
		}
	case spike2On:
		line("WARN", "refusal spike", "status", 406, "code", "accept_not_acceptable", "route", "/events")
	}
	return s
}

// fakeStream serves the synthetic run as the hub's /dashboard/stream would,
// but faster than real time: a sample every interval, each one second later
// in its time field. After the last sample it holds the stream open.
func fakeStream(t *testing.T, interval time.Duration, quit <-chan struct{}) http.Handler {
	return policy.Middleware(policy.Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := 0; i < fakeSamples; i++ {
			b, err := json.Marshal(fakeStats(i))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := (sse.Event{Type: "stats", Data: string(b)}).WriteTo(w); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-time.After(interval):
			case <-r.Context().Done():
				return
			case <-quit:
				return
			}
		}
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
}

// dashboardServer serves the embedded pages under the strict profile, as the
// hub does, with the fake stream.
func dashboardServer(t *testing.T, interval time.Duration) *httptest.Server {
	quit := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/dashboard/stream", fakeStream(t, interval, quit))
	mux.Handle("/", policy.Harden(policy.Strict)(web.Handler(http.NotFoundHandler(), nil)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(quit) }) // runs first: lets the stream handlers return
	return srv
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript predicate; on timeout it fails the test with
// what describe evaluates to.
func waitFor(t *testing.T, ctx context.Context, what, predicate, describe string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](describe))
		t.Fatalf("%s: %v; page shows %s", what, err, got)
	}
}

var chartIDs = []string{"chart-streams", "chart-events", "chart-refusals", "chart-latency"}

const pointsJS = `JSON.stringify(Object.fromEntries([...document.querySelectorAll('svg.chart')].map(s => [s.id, s.getAttribute('data-points')])))`

func allPointsAtLeast(n int) string {
	return fmt.Sprintf("[...document.querySelectorAll('svg.chart')].length === 4 && [...document.querySelectorAll('svg.chart')].every(s => Number(s.getAttribute('data-points')) >= %d)", n)
}

func TestDashboardWithFakeStream(t *testing.T) {
	srv := dashboardServer(t, 40*time.Millisecond)

	// The CSP check below means something only if the page carries the
	// strict policy.
	res, err := http.Get(srv.URL + "/dashboard.html")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Content-Security-Policy"); got != policy.PageCSP {
		t.Fatalf("dashboard.html has CSP %q, want %q", got, policy.PageCSP)
	}

	// The page shows times in the browser's zone and language: fix both,
	// so the screenshot in docs/ does not change with the machine.
	t.Setenv("TZ", "UTC")
	t.Setenv("LANG", "en_US.UTF-8")
	ctx := browser.New(t, 60*time.Second)
	messages, stopConsole := browser.Console(t, ctx)
	t.Cleanup(func() { browser.Screenshot(t, ctx) })

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(srv.URL+"/dashboard.html"),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the stream did not open", "document.getElementById('state').classList.contains('open')",
		"document.getElementById('state').className")

	t.Run("charts grow", func(t *testing.T) {
		waitFor(t, ctx, "no chart drew a sample", allPointsAtLeast(2), pointsJS)
		first := eval[int](t, ctx, "Number(document.getElementById('chart-events').getAttribute('data-points'))")
		waitFor(t, ctx, "the charts did not grow", allPointsAtLeast(first+10), pointsJS)
	})

	t.Run("spike badge turns on", func(t *testing.T) {
		waitFor(t, ctx, "the spike badge did not turn on",
			"document.getElementById('spike').classList.contains('on')",
			"document.getElementById('spike').outerHTML")
		// A slow machine may first see the second spike.
		text := eval[string](t, ctx, "document.getElementById('spike').textContent")
		if !strings.HasPrefix(text, "refusal spike: 403/406 origin_forbidden, accept_not_acceptable · since ") &&
			!strings.HasPrefix(text, "refusal spike: 406 accept_not_acceptable · since ") {
			t.Errorf("#spike says %q", text)
		}
	})

	t.Run("two minutes drawn", func(t *testing.T) {
		waitFor(t, ctx, "the charts did not reach the full window", allPointsAtLeast(fakeSamples), pointsJS)
		got := eval[string](t, ctx, pointsJS)
		for _, id := range chartIDs {
			if !strings.Contains(got, fmt.Sprintf("%q:\"%d\"", id, fakeSamples)) {
				t.Errorf("%s: want data-points %d; all: %s", id, fakeSamples, got)
			}
		}
		for js, want := range map[string]int{
			"#chart-streams path.line":  2, // sse and poll
			"#chart-events path.line":   2, // published and delivered
			"#chart-latency path.line":  1,
			"#chart-refusals path.area": 3, // origin_forbidden, token_expired, accept_not_acceptable
			"#chart-refusals rect.band": 2, // the spike that recovered and the one still on
			"#legend-refusals li":       3,
		} {
			if n := eval[int](t, ctx, fmt.Sprintf("document.querySelectorAll(%q).length", js)); n < want {
				t.Errorf("%s: %d elements, want at least %d", js, n, want)
			}
		}
		text := eval[string](t, ctx, "document.getElementById('spike').textContent")
		if !strings.HasPrefix(text, "refusal spike: 406 accept_not_acceptable") {
			t.Errorf("#spike says %q at the end, want the second spike", text)
		}
		// Axis labels: the y maximum is a round number above the data.
		if max := eval[string](t, ctx, "document.querySelectorAll('#chart-events text.tick')[2].textContent"); max == "" || max == "0" {
			t.Errorf("events chart y maximum label is %q", max)
		}
	})

	t.Run("log lists refusals and drift", func(t *testing.T) {
		rows := eval[[]string](t, ctx, "[...document.querySelectorAll('#log tr[data-level]')].map(tr => tr.textContent)")
		// Seven lines, but the two origin_forbidden refusals of minute
		// 23:58 are one row: refusals count per code and minute.
		if len(rows) != 6 {
			t.Errorf("got %d log rows, want 6: %q", len(rows), rows)
		}
		if n := eval[string](t, ctx, "document.querySelector('#log tr[data-count=\"2\"] td.details')?.textContent ?? ''"); !strings.Contains(n, "origin_forbidden") {
			t.Errorf("the two origin_forbidden refusals of one minute show as %q, want one row with ×2", n)
		}
		for _, want := range []string{"refusal spike", "header drift", "header=Cache-Control", "origin=https://evil.test"} {
			if !strings.Contains(strings.Join(rows, "\n"), want) {
				t.Errorf("no log row mentions %q: %q", want, rows)
			}
		}
		if len(rows) > 0 && !strings.Contains(rows[0], "accept_not_acceptable") {
			t.Errorf("newest row first: got %q", rows[0])
		}
		if n := eval[string](t, ctx, "document.querySelector('#log tr[data-count=\"30\"] td.msg')?.textContent ?? ''"); n != "refused ×30" {
			t.Errorf("the burst of 30 identical lines shows as %q, want one row \"refused ×30\"", n)
		}
	})

	// Messages arrive as events after what caused them: wait until
	// everything logged so far is in.
	browser.Settle(t, ctx, messages)
	for _, m := range messages() {
		t.Logf("console: %s", m)
		if m.IsException() || m.Type == chromedp.ConsoleError || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}

	// A canary proves the console would have shown a violation: the page
	// CSP refuses an inline style.
	t.Run("a violation would be seen", func(t *testing.T) {
		eval[bool](t, ctx, "document.getElementById('log').setAttribute('style', 'color: red'), true")
		seen := eventually.Wait(0, func() bool {
			for _, m := range messages() {
				if strings.Contains(m.Text, "Content Security Policy") {
					t.Logf("canary: %s", m)
					return true
				}
			}
			return false
		})
		if !seen {
			t.Error("an inline style attribute raised no CSP message in the console: the check above proves nothing")
		}
	})
	stopConsole()
}

func TestFilesServed(t *testing.T) {
	h := policy.Harden(policy.Strict)(web.Handler(http.NotFoundHandler(), nil))
	for _, tc := range []struct {
		path, ctype string
		csp         string
	}{
		{"/", "text/html; charset=utf-8", policy.PageCSP},
		{"/dashboard.html", "text/html; charset=utf-8", policy.PageCSP},
		{"/login.html", "text/html; charset=utf-8", policy.PageCSP},
		{"/dashboard.js", "text/javascript; charset=utf-8", ""},
		{"/dashboard.css", "text/css; charset=utf-8", ""},
		{"/favicon.svg", "image/svg+xml", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if got := rec.Header().Get("Content-Security-Policy"); tc.csp != "" && got != tc.csp {
				t.Errorf("CSP %q, want %q", got, tc.csp)
			}
		})
	}
}

// TestPagesFollowTheCSP reads every page and script for what the strict page
// CSP would block, so a violation is caught without a browser too: inline
// script or style, event handler attributes, other origins, and scripts
// that parse strings as HTML or code.
func TestPagesFollowTheCSP(t *testing.T) {
	badJS := regexp.MustCompile(`\binnerHTML\b|\bouterHTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\b|setAttribute\(\s*['"]style['"]|\.style\.|\bsetTimeout\(\s*['"]`)
	err := fs.WalkDir(web.Static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Static, name)
		if err != nil {
			return err
		}
		switch path.Ext(name) {
		case ".js":
			for i, line := range strings.Split(string(b), "\n") {
				if loc := badJS.FindString(line); loc != "" {
					t.Errorf("%s:%d: %q: set text with textContent and SVG with DOM calls", name, i+1, loc)
				}
			}
		case ".html":
			checkPage(t, name, string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkPage(t *testing.T, name, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	inScript := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return
		case html.TextToken:
			if inScript && strings.TrimSpace(string(z.Text())) != "" {
				t.Errorf("%s: inline script", name)
			}
		case html.EndTagToken:
			inScript = false
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Key] = a.Val
				if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: <%s %s=…>: inline style or handler", name, tok.Data, a.Key)
				}
				if (a.Key == "src" || a.Key == "href" || a.Key == "action") && !sameOrigin(a.Val) {
					t.Errorf("%s: <%s %s=%q>: not this origin", name, tok.Data, a.Key, a.Val)
				}
			}
			switch tok.Data {
			case "style":
				t.Errorf("%s: <style> element", name)
			case "script":
				if attrs["src"] == "" {
					t.Errorf("%s: <script> without src", name)
				}
				inScript = true
			}
		}
	}
}

// sameOrigin reports whether a URL in a page stays on the page's origin and
// cannot be made relative to a path the page was served under.
func sameOrigin(u string) bool {
	return strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//")
}
