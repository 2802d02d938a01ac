package sseguardjs_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/browser"
)

// anonymousOrders lets anonymous readers subscribe to orders/*, so that
// the demo page, which sends no token, may read the pattern.
func anonymousOrders(c *config.Config) {
	c.Auth.AnonymousSubscribe = &[]string{"orders/*"}
	c.Stream.Retry = config.Duration(200 * time.Millisecond)
}

// TestBrowserDemoPattern: the hub's demo page subscribed to orders/* in
// Chromium, over each transport alone, lists the history and the live
// events of every topic under orders/ and nothing else, across a hub
// restart on the same bolt file, each once and in order; its presence
// line says presence is per topic name.
func TestBrowserDemoPattern(t *testing.T) {
	for _, transport := range []string{"sse", "ws", "poll"} {
		t.Run(transport, func(t *testing.T) {
			h := newHub(t, anonymousOrders)
			checkServed(t, h.URL)
			var want []string
			pub := func(topic, data string) {
				h.publishTo(t, topic, data)
				if strings.HasPrefix(topic, "orders/") {
					want = append(want, data)
				}
			}
			pub("orders/1", "h1")
			pub("other/1", "not mine")

			ctx := browser.New(t, 2*time.Minute)
			messages, _ := browser.Console(t, ctx)
			t.Cleanup(func() {
				if t.Failed() {
					browser.Screenshot(t, ctx)
				}
			})
			if err := chromedp.Do(ctx, chromedp.Navigate(h.URL+"/?topic=orders/*&transports="+transport)); err != nil {
				t.Fatal(err)
			}
			p := &page{t: t, ctx: ctx, messages: messages}
			p.waitFor("the history", 20*time.Second, func(s seen) bool { return strings.Contains(s.State, "open") && len(s.Rows) == 1 })
			pub("orders/2", "a1")
			pub("orders-x", "no")
			pub("orders/1", "a2")
			p.waitFor("the live events", 20*time.Second, func(s seen) bool { return len(s.Rows) == 3 })

			h.stop()
			h = startHub(t, h.addr, h.db, h.secret, anonymousOrders)
			pub("orders/eu/1", "b1")
			pub("other/2", "no")
			pub("orders/2", "b2")
			pub("orders/3", "end")
			s := p.waitFor("the last event", 30*time.Second, func(s seen) bool { return len(s.Rows) > 0 && s.Rows[len(s.Rows)-1] == "end" })
			if !slices.Equal(s.Rows, want) {
				t.Errorf("the page lists %q, want exactly %q", s.Rows, want)
			}
			if !slices.Equal(s.Transports, []string{transport}) {
				t.Errorf("transports %q, want only %s", s.Transports, transport)
			}
			text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('presence-text').textContent`))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, "not for a pattern") {
				t.Errorf("the presence line says %q", text)
			}
			browser.Settle(t, ctx, messages)
			for _, m := range messages() {
				if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
					t.Errorf("the page logged %s (at %s:%d)", m, m.URL, m.Line)
				}
			}
		})
	}
}
