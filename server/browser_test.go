package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/browser"
)

// rowShown is a JavaScript expression true once the demo page lists the
// event id with data.
func rowShown(id, data string) string {
	q, _ := json.Marshal(fmt.Sprintf("#events tr[data-id=%q] td.data", id))
	d, _ := json.Marshal(data)
	return fmt.Sprintf("(() => { const td = document.querySelector(%s); return td !== null && td.textContent === %s; })()", q, d)
}

func TestDemoPageInBrowser(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx := browser.New(t, 60*time.Second)

	// Console messages are collected from before the page loads, so that a
	// CSP report or an exception at load time is seen too.
	messages, stopConsole := browser.Console(t, ctx)
	t.Cleanup(func() { browser.Screenshot(t, ctx) })

	if err := chromedp.Do(ctx, chromedp.Navigate(ts.base+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		"document.getElementById('state').classList.contains('open')",
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('state').className"))
		t.Fatalf("the EventSource did not open: %v; #state has class %q", err, state)
	}

	t.Run("event published over HTTP", func(t *testing.T) {
		const data = "from Go over HTTP <b>not bold</b>"
		id := ts.mustPublish(t, tok, "demo", data)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](rowShown(id, data), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			rows, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('events').innerHTML"))
			t.Fatalf("row %s with %q not shown: %v; table: %s", id, data, err, rows)
		}
	})

	t.Run("event published with the page form", func(t *testing.T) {
		// The token the form needs is one like the printed dev publisher's.
		pubTok := token(t, auth.Permissions{Publish: []string{"demo"}}, time.Hour)
		const data = "typed in the demo page"
		if err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.ID("token"), pubTok),
			// Clear, not SetValue(sel, ""): chromedp v0.23 sends an empty
			// string argument as undefined, so the field would read "undefined".
			chromedp.Clear(chromedp.ID("data")),
			chromedp.SendKeys(chromedp.ID("data"), data),
			chromedp.Click(chromedp.CSS(`#publish button[type="submit"]`)),
		); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
			"document.getElementById('result').textContent.startsWith('published id ')",
			chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			result, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('result').textContent"))
			t.Fatalf("#result says %q, want \"published id …\": %v", result, err)
		}
		result, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('result').textContent"))
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimPrefix(result, "published id ")
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](rowShown(id, data), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			rows, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('events').innerHTML"))
			t.Fatalf("row %s with %q not shown: %v; table: %s", id, data, err, rows)
		}
	})

	// Messages arrive as events after the actions that caused them: wait
	// until everything logged so far is in, then stop collecting.
	browser.Settle(t, ctx, messages)
	stopConsole()
	for _, m := range messages() {
		t.Logf("console: %s", m)
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
		}
	}
}

// publishTyped publishes data with an event type and returns its ID.
func (ts *testServer) publishTyped(t *testing.T, tok, topic, typ, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "type": typ, "data": data})
	res := doReq(t, "POST", ts.base+"/api/publish", http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + tok}}, string(body))
	var m struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil || res.StatusCode != 201 {
		t.Fatalf("publish: %d %v", res.StatusCode, err)
	}
	return m.ID
}

// typedRowShown is rowShown that also wants the type column to read typ.
func typedRowShown(id, typ, data string) string {
	q, _ := json.Marshal(fmt.Sprintf("#events tr[data-id=%q]", id))
	d, _ := json.Marshal(data)
	ty, _ := json.Marshal(typ)
	return fmt.Sprintf("(() => { const tr = document.querySelector(%s); return tr !== null && tr.querySelector('td.data').textContent === %s && tr.querySelector('td.type').textContent === %s; })()", q, d, ty)
}

// TestDemoPageHistoryAndTypes: the demo page lists the topic's history on
// load, and events with a type (which EventSource would deliver only to a
// listener for that type) as they arrive, type shown.
func TestDemoPageHistoryAndTypes(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	plain := ts.mustPublish(t, tok, "demo", "before the page, untyped")
	typed := ts.publishTyped(t, tok, "demo", "update", "before the page, typed")
	ctx := browser.New(t, 60*time.Second)
	t.Cleanup(func() { browser.Screenshot(t, ctx) })
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.base+"/")); err != nil {
		t.Fatal(err)
	}
	wait := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			rows, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('events').innerHTML"))
			t.Fatalf("%s not shown: %v; table: %s", what, err, rows)
		}
	}
	wait("history, untyped", typedRowShown(plain, "message", "before the page, untyped"))
	wait("history, typed", typedRowShown(typed, "update", "before the page, typed"))
	wait("open state", "document.getElementById('state').classList.contains('open')")
	live := ts.publishTyped(t, tok, "demo", "alert", "live, typed\nsecond line")
	wait("a live typed event", typedRowShown(live, "alert", "live, typed\nsecond line"))
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.querySelectorAll('#events tr').length"))
	if err != nil || n != 3 {
		t.Errorf("%d rows (%v), want 3: each event once", n, err)
	}
}

// TestDemoPageSaysWhyRefused: with anonymous subscribe off, the demo page
// says why it is closed (the hub's token_missing and where to allow
// anonymous readers), not just "closed".
func TestDemoPageSaysWhyRefused(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Auth.AnonymousSubscribe = &[]string{} }, nil)
	ctx := browser.New(t, 60*time.Second)
	t.Cleanup(func() { browser.Screenshot(t, ctx) })
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.base+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		"document.getElementById('state').classList.contains('closed') && document.getElementById('why').textContent !== ''",
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the page did not close with a reason: %v", err)
	}
	why, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('why').textContent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"token_missing", `topic "demo" needs a token`, "auth.anonymous_subscribe"} {
		if !strings.Contains(why, want) {
			t.Errorf("#why = %q, lacks %q", why, want)
		}
	}
}
