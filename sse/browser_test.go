package sse_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/internal/browser"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
)

// seen is one event as a receiver dispatched it.
type seen struct {
	Type string `json:"type"`
	Data string `json:"data"`
	ID   string `json:"id"`
}

// trickyEvents exercise every line-splitting and field rule a browser and
// the Go parser must agree on.
var trickyEvents = []sse.Event{
	{ID: "1", Data: "plain"},
	{ID: "2", Data: "line one\nline two\nline three"},
	{ID: "3", Data: "carriage\rreturn"},
	{ID: "4", Data: "crlf\r\ninside"},
	{ID: "5", Data: "unicode: héllo, 日本語, 🌍, \u2028, \ufeff"},
	{ID: "6", Data: ""},
	{ID: "7", Type: "tricky", Data: "custom type"},
	{ID: "id with spaces", Data: "spaced id"},
	{Data: "no id: the last one persists"},
	{ID: "9", Data: " leading space and trailing newline\n"},
	{ID: "10", Data: "x\n\nevent: admin\ndata: injected?\nid: 666\nretry: 1"},
	{ID: "11", Data: "nul\x00byte and \\n escapes", Comment: "a comment\nover two lines"},
	{ID: "ünïcode-id", Type: "tricky", Data: "\n\n"},
	{ID: "13", Data: "last"},
}

func TestBrowserSeesWhatTheParserSees(t *testing.T) {
	var wire bytes.Buffer
	wire.Write(sse.AppendRetry(nil, 3*time.Second))
	for _, e := range trickyEvents {
		if _, err := e.WriteTo(&wire); err != nil {
			t.Fatalf("encoding %+v: %v", e, err)
		}
	}
	var want []seen
	p := sse.NewParser(bytes.NewReader(wire.Bytes()))
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, seen{e.Type, e.Data, e.ID})
	}
	if len(want) != len(trickyEvents) {
		t.Fatalf("Go parser saw %d events, want %d", len(want), len(trickyEvents))
	}

	ctx := browser.New(t, 60*time.Second)

	page, _ := os.ReadFile("testdata/browser/index.html")
	script, _ := os.ReadFile("testdata/browser/app.js")
	stop := make(chan struct{})
	mux := http.NewServeMux()
	harden := policy.Harden(policy.Strict)
	mux.Handle("GET /{$}", harden(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})))
	mux.Handle("GET /app.js", harden(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(script)
	})))
	mux.Handle("GET /events", policy.Middleware(policy.Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := sse.NewStream(w, r, &sse.StreamOptions{Heartbeat: -1})
		if err != nil {
			return
		}
		for _, e := range trickyEvents {
			if st.Send(e) != nil {
				return
			}
		}
		select { // hold the stream open: no reconnect, no repeats
		case <-r.Context().Done():
		case <-stop:
		}
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(stop)

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("window.__got && window.__got.length > 0 && window.__got[window.__got.length-1].data === 'last'", chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]seen]("window.__got || []"))
		t.Fatalf("browser did not receive every event: %v; got %d: %+v", err, len(got), got)
	}
	// The stream is ordered, so an injected event would have arrived before
	// the last one: the comparison below sees it.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]seen]("window.__got"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for i := 0; i < max(len(got), len(want)); i++ {
			var g, w seen
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("event %d: browser %+q, Go parser %+q", i, g, w)
			}
		}
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string]("window.__violations"))
	if err != nil {
		t.Fatal(err)
	}
	if len(violations) > 0 {
		t.Errorf("CSP violations on the page: %q", violations)
	}
	errs, _ := chromedp.Run(ctx, chromedp.Evaluate[int]("window.__errors"))
	if errs != 0 {
		t.Errorf("EventSource reported %d errors", errs)
	}
}
