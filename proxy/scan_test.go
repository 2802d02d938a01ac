package proxy_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/proxy"
	"github.com/sseguard/sseguard/scan"
)

// guideBackend is the backend the guide's snippets describe, with what
// goes wrong around it: the guide's headers (keep-alive on every protocol,
// no-cache without no-transform), a duplicate Cache-Control, framework
// headers with versions, a cookie on the stream, CORS answered with * and
// credentials, a gzip-compressed stream, no Accept check and no heartbeat.
func guideBackend(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h["Cache-Control"] = []string{"no-cache", "no-cache"}
	h.Set("Connection", "keep-alive")
	h.Set("X-Powered-By", "Express")
	h.Set("Server", "Express/4.18.2")
	h.Set("Set-Cookie", "sid=1; Path=/")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Content-Encoding", "gzip")
	zw := gzip.NewWriter(w)
	defer zw.Close()
	flush := func() { _ = zw.Flush(); w.(http.Flusher).Flush() }
	flush()
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
			fmt.Fprintf(zw, "id: %d\ndata: {\"n\":%d}\n\n", i, i)
			flush()
		}
	}
}

// TestScanCleanThroughProxy runs sseguard scan against the guide's backend,
// then through the proxy in front of it: the backend alone fails, and
// through the proxy nothing at medium or above is found.
func TestScanCleanThroughProxy(t *testing.T) {
	up := upstream(t, guideBackend)
	cfg := &proxy.Config{
		Upstream:  up.URL,
		Fallback:  "/api/poll",
		Heartbeat: config.Duration(200 * time.Millisecond),
		Routes:    []proxy.Route{{Prefix: "/events", Kind: proxy.KindStream}},
	}
	tp := startProxy(t, cfg)

	var wg sync.WaitGroup
	reports := map[string]*scan.Report{}
	var mu sync.Mutex
	for name, url := range map[string]string{"direct": up.URL + "/events", "proxied": "http://" + tp.addr + "/events"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := scan.Run(context.Background(), scan.Config{
				URL: url, Duration: 1500 * time.Millisecond, HeartbeatMax: time.Second, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Errorf("%s scan: %v", name, err)
				return
			}
			mu.Lock()
			reports[name] = rep
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := reports["direct"].Count(scan.Medium); n == 0 {
		t.Fatalf("the guide backend scans clean by itself; the fixture is not bad enough")
	}
	if rep := reports["proxied"]; rep.Count(scan.Medium) > 0 {
		var b strings.Builder
		_ = rep.WriteText(&b, scan.TextOptions{})
		t.Fatalf("findings at medium or above through the proxy:\n%s", b.String())
	}
	t.Logf("direct: %d findings at medium or above; proxied: 0", reports["direct"].Count(scan.Medium))
}
