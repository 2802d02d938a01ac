package scan_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// ruleCase is one scan of a server made for it, and the rules that must
// fire and stay quiet on it.
type ruleCase struct {
	name  string
	setup func(t testing.TB) scan.Config
	fires []string
	quiet []string
}

// serve starts h on loopback for the test and returns a config for it.
func serve(h http.Handler) func(testing.TB) scan.Config {
	return func(t testing.TB) scan.Config {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return scan.Config{URL: srv.URL + "/events?topic=t", HeartbeatMax: 600 * time.Millisecond}
	}
}

func with(setup func(testing.TB) scan.Config, mutate func(*scan.Config)) func(testing.TB) scan.Config {
	return func(t testing.TB) scan.Config {
		c := setup(t)
		mutate(&c)
		return c
	}
}

func healthy() *fault {
	return &fault{heartbeat: 50 * time.Millisecond, eventEvery: 100 * time.Millisecond}
}

func modified(mod func(h http.Header)) *fault {
	f := healthy()
	f.mod = mod
	return f
}

var allStreamRules = []string{
	scan.RuleStatus, scan.RuleCType, scan.RuleCTypeDup, scan.RuleCharset, scan.RuleH1Framing,
	scan.RuleNoCompress, scan.RuleCache, scan.RuleFlush, scan.RuleHeartbeat, scan.RuleCut, scan.RuleKeepAlive,
	scan.RuleAccept, scan.RuleErrorShape, scan.RuleResume, scan.RuleXCTO, scan.RuleCSP, scan.RuleCORS,
	scan.RuleDup, scan.RuleLeak, scan.RulePolicy,
}

var ruleCases = []ruleCase{
	{
		name: "healthy strict server",
		setup: with(serve(healthy()), func(c *scan.Config) {
			c.ExpectOrder = []string{"Cache-Control", "Content-Type", "X-Content-Type-Options"}
		}),
		quiet: append(slices.Clone(allStreamRules), scan.RuleOrder),
	},
	{
		name:  "healthy server over HTTP/1.0",
		setup: with(serve(healthy()), func(c *scan.Config) { c.Proto = rawhttp.HTTP10 }),
		quiet: []string{scan.RuleH1Framing, scan.RuleStatus, scan.RuleCType, scan.RulePolicy, scan.RuleCut},
	},
	{
		name: "healthy server over HTTP/2",
		setup: func(t testing.TB) scan.Config {
			srv := h2Server(t, healthy())
			return scan.Config{URL: srv.URL + "/events", Proto: rawhttp.HTTP2, Insecure: true, HeartbeatMax: 600 * time.Millisecond}
		},
		quiet: []string{scan.RuleH2ConnHdr, scan.RuleStatus, scan.RuleCType, scan.RuleFlush, scan.RulePolicy, scan.RuleCut, scan.RuleAccept, scan.RuleErrorShape},
	},
	{
		name:  "HTTPS with HSTS",
		setup: tlsServer(modified(func(h http.Header) { h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains") })),
		quiet: []string{scan.RuleHSTS},
	},
	{
		name:  "HTTPS without HSTS",
		setup: tlsServer(healthy()),
		fires: []string{scan.RuleHSTS},
	},
	{
		name: "status 503",
		setup: serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			policy.WriteProblem(w, r, policy.NewProblem(503, policy.CodeUnavailable, "down"))
		})),
		fires: []string{scan.RuleStatus},
		quiet: []string{scan.RuleErrorShape},
	},
	{
		name:  "text/plain stream",
		setup: serve(modified(func(h http.Header) { h.Set("Content-Type", "text/plain") })),
		fires: []string{scan.RuleCType},
		quiet: []string{scan.RuleCTypeDup},
	},
	{
		name: "two Content-Type lines",
		setup: serve(modified(func(h http.Header) {
			h["Content-Type"] = []string{"text/event-stream; charset=utf-8", "text/event-stream"}
		})),
		fires: []string{scan.RuleCTypeDup},
		quiet: []string{scan.RuleCType},
	},
	{
		name:  "charset=latin1",
		setup: serve(modified(func(h http.Header) { h.Set("Content-Type", "text/event-stream; charset=latin1") })),
		fires: []string{scan.RuleCharset},
	},
	{
		name:  "Content-Length on the stream",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, contentLength: true}),
		fires: []string{scan.RuleH1Framing},
	},
	{
		name: "chunked answer to HTTP/1.0",
		setup: func(t testing.TB) scan.Config {
			url := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"d\r\nretry: 1000\n\n\r\n")
			return scan.Config{URL: url + "/events", Proto: rawhttp.HTTP10}
		},
		fires: []string{scan.RuleH1Framing},
	},
	{
		name:  "Via with protocol versions only",
		setup: serve(modified(func(h http.Header) { h.Set("Via", "1.1 caddy, HTTP/1.0 10.0.0.1:3128") })),
		quiet: []string{scan.RuleLeak},
	},
	{
		name:  "Via naming a product version",
		setup: serve(modified(func(h http.Header) { h.Set("Via", "1.1 varnish (Varnish/7.1)") })),
		fires: []string{scan.RuleLeak},
	},
	{
		name:  "Age: 0 (a cache that just fetched it)",
		setup: serve(modified(func(h http.Header) { h.Set("Age", "0") })),
		quiet: []string{scan.RuleCache},
	},
	{
		name:  "Age: 7 (served from a cache's storage)",
		setup: serve(modified(func(h http.Header) { h.Set("Age", "7") })),
		fires: []string{scan.RuleCache},
	},
	{
		name:  "gzip on the stream",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, eventEvery: 100 * time.Millisecond, gzip: true}),
		fires: []string{scan.RuleNoCompress},
		quiet: []string{scan.RuleFlush},
	},
	{
		name:  "baseline server, strict scan",
		setup: serve(&fault{profile: policy.Baseline, heartbeat: 50 * time.Millisecond}),
		fires: []string{scan.RuleNoCompress, scan.RulePolicy, scan.RuleAccept},
	},
	{
		name:  "baseline server, baseline scan",
		setup: with(serve(&fault{profile: policy.Baseline, heartbeat: 50 * time.Millisecond}), func(c *scan.Config) { c.Profile = policy.Baseline }),
		quiet: []string{scan.RuleNoCompress, scan.RulePolicy, scan.RuleAccept, scan.RuleErrorShape, scan.RuleCSP},
	},
	{
		name:  "cacheable stream",
		setup: serve(modified(func(h http.Header) { h.Set("Cache-Control", "public, max-age=60, no-transform") })),
		fires: []string{scan.RuleCache},
		quiet: []string{scan.RuleNoCompress},
	},
	{
		// The proxy's drift log agrees (proxy.TestDriftByMeaning).
		name:  "Cache-Control directives reordered",
		setup: serve(modified(func(h http.Header) { h.Set("Cache-Control", "no-store, No-Cache, no-transform") })),
		quiet: []string{scan.RulePolicy, scan.RuleNoCompress, scan.RuleCache},
	},
	{
		name:  "Cache-Control without no-transform",
		setup: serve(modified(func(h http.Header) { h.Set("Cache-Control", "no-store, no-cache") })),
		fires: []string{scan.RuleNoCompress},
		quiet: []string{scan.RulePolicy, scan.RuleCache}, // reported once, by SSE-NO-COMPRESS
	},
	{
		name:  "Cache-Control loosened on the stream",
		setup: serve(modified(func(h http.Header) { h.Set("Cache-Control", "no-store, no-cache, no-transform, stale-if-error=60") })),
		fires: []string{scan.RulePolicy},
		quiet: []string{scan.RuleNoCompress, scan.RuleCache},
	},
	{
		name:  "buffered stream",
		setup: with(serve(&fault{heartbeat: 30 * time.Millisecond, flushEvery: 400 * time.Millisecond}), func(c *scan.Config) { c.Duration = 1200 * time.Millisecond }),
		fires: []string{scan.RuleFlush},
	},
	{
		name:  "events late by their ts",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, eventEvery: 100 * time.Millisecond, tsLag: 3 * time.Second}),
		fires: []string{scan.RuleFlush},
	},
	{
		// The silence outlasts the limit by far more than a loaded machine
		// stalls the scanner, which the rule does not count against the
		// server.
		name: "no heartbeat",
		setup: with(serve(&fault{}), func(c *scan.Config) {
			c.HeartbeatMax, c.Duration = 300*time.Millisecond, 2*time.Second
		}),
		fires: []string{scan.RuleHeartbeat},
	},
	{
		// The stream ends long before the window does, even when the
		// server and the scanner (one process here) are stalled.
		name: "stream ends early",
		setup: with(serve(&fault{heartbeat: 50 * time.Millisecond, closeAfter: 50 * time.Millisecond}), func(c *scan.Config) {
			c.Duration = 1500 * time.Millisecond
		}),
		fires: []string{scan.RuleCut},
	},
	{
		name:  "Connection: close on HTTP/1.1",
		setup: serve(modified(func(h http.Header) { h.Set("Connection", "close") })),
		fires: []string{scan.RuleKeepAlive},
	},
	{
		name:  "no Accept check",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, ignoreAccept: true}),
		fires: []string{scan.RuleAccept},
	},
	{
		name:  "text/plain refusals",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, textErrors: true}),
		fires: []string{scan.RuleErrorShape},
		quiet: []string{scan.RuleAccept},
	},
	{
		name:  "500 on Last-Event-ID",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, eventEvery: 100 * time.Millisecond, resume500: true}),
		fires: []string{scan.RuleResume},
	},
	{
		name:  "Last-Event-ID event sent again",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, eventEvery: 100 * time.Millisecond, replayDup: true}),
		fires: []string{scan.RuleResume},
	},
	{
		name:  "no nosniff",
		setup: serve(modified(func(h http.Header) { h.Del("X-Content-Type-Options") })),
		fires: []string{scan.RuleXCTO},
	},
	{
		name:  "nosniff twice",
		setup: serve(modified(func(h http.Header) { h.Add("X-Content-Type-Options", "nosniff") })),
		fires: []string{scan.RuleXCTO},
		quiet: []string{scan.RuleDup},
	},
	{
		name: "permissive CSP on the stream",
		setup: serve(modified(func(h http.Header) {
			h.Set("Content-Security-Policy", "default-src *; script-src 'self' 'unsafe-inline'")
		})),
		fires: []string{scan.RuleCSP},
	},
	{
		name: "CSP stricter than the profile's",
		setup: serve(modified(func(h http.Header) {
			h.Set("Content-Security-Policy", "frame-ancestors 'none'; default-src 'none'; base-uri 'none'")
		})),
		quiet: []string{scan.RuleCSP},
	},
	{
		// Lint finds nothing wrong with 'self'; the strict profile wants
		// 'none' on streams.
		name:  "CSP less strict than the profile's",
		setup: serve(modified(func(h http.Header) { h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'") })),
		fires: []string{scan.RuleCSP},
	},
	{
		name: "permissive CSP on the page",
		setup: func(t testing.TB) scan.Config {
			mux := http.NewServeMux()
			mux.Handle("/events", healthy())
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				policy.Strict.ApplyTo(w, r, policy.KindPage)
				w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-eval'; connect-src *")
				_, _ = w.Write([]byte("<!doctype html><title>x</title>"))
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			return scan.Config{URL: srv.URL + "/events", PageURL: "/", HeartbeatMax: 600 * time.Millisecond}
		},
		fires: []string{scan.RuleCSP},
	},
	{
		name: "strict CSP on the page",
		setup: func(t testing.TB) scan.Config {
			mux := http.NewServeMux()
			mux.Handle("/events", healthy())
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				policy.Strict.ApplyTo(w, r, policy.KindPage)
				_, _ = w.Write([]byte("<!doctype html><title>x</title>"))
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			return scan.Config{URL: srv.URL + "/events", PageURL: "/", HeartbeatMax: 600 * time.Millisecond}
		},
		quiet: []string{scan.RuleCSP, scan.RulePolicy},
	},
	{
		name:  "reflected Origin with credentials",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, cors: "reflect"}),
		fires: []string{scan.RuleCORS},
	},
	{
		name:  "wildcard CORS with credentials",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, cors: "star-credentials"}),
		fires: []string{scan.RuleCORS},
	},
	{
		name:  "Origin null allowed",
		setup: serve(&fault{heartbeat: 50 * time.Millisecond, cors: "null"}),
		fires: []string{scan.RuleCORS},
	},
	{
		name:  "Cache-Control twice",
		setup: serve(modified(func(h http.Header) { h.Add("Cache-Control", "no-cache") })),
		fires: []string{scan.RuleDup},
		quiet: []string{scan.RuleCache},
	},
	{
		name: "versions in Server and X-Powered-By",
		setup: serve(modified(func(h http.Header) {
			h.Set("Server", "nginx/1.22.1")
			h.Set("X-Powered-By", "Express 4.18")
		})),
		fires: []string{scan.RuleLeak},
	},
	{
		name:  "header order differs from the pin",
		setup: with(serve(healthy()), func(c *scan.Config) { c.ExpectOrder = []string{"X-Content-Type-Options", "Content-Type"} }),
		fires: []string{scan.RuleOrder},
	},
	{
		name: "Connection on HTTP/2",
		setup: func(t testing.TB) scan.Config {
			url := rawH2Server(t, [][2]string{
				{"content-type", "text/event-stream; charset=utf-8"},
				{"cache-control", "no-cache, no-store, no-transform"},
				{"connection", "keep-alive"},
				{"x-content-type-options", "nosniff"},
			})
			return scan.Config{URL: url + "/events", Proto: rawhttp.HTTP2, Insecure: true}
		},
		fires: []string{scan.RuleH2ConnHdr},
		quiet: []string{scan.RuleCType, scan.RuleXCTO},
	},
}

func tlsServer(h http.Handler) func(testing.TB) scan.Config {
	return func(t testing.TB) scan.Config {
		srv := httptest.NewTLSServer(h)
		t.Cleanup(srv.Close)
		pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		return scan.Config{URL: srv.URL + "/events", TLSConfig: &tls.Config{RootCAs: pool}, HeartbeatMax: 600 * time.Millisecond}
	}
}

// TestRules scans one server per case, all at once (each scan mostly
// waits), then checks each case.
func TestRules(t *testing.T) {
	reps := make([]*scan.Report, len(ruleCases))
	errs := make([]error, len(ruleCases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, tc := range ruleCases {
		cfg := tc.setup(t)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			reps[i], errs[i] = runScanErr(cfg)
		})
	}
	wg.Wait()
	for i, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			assertFires(t, reps[i], tc.fires...)
			assertQuiet(t, reps[i], tc.quiet...)
		})
	}
}
