package scan_test

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// dropAuth is a reverse proxy that forwards without Authorization and
// says so in Via, as Squid does towards a cache_peer without
// login=PASSTHRU.
func dropAuth(t testing.TB, origin string) string {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{FlushInterval: -1, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Header.Del("Authorization")
	}}
	rp.ModifyResponse = func(res *http.Response) error {
		res.Header.Add("Via", "1.1 proxy (squid/5.7)")
		return nil
	}
	return serveT(t, rp)
}

// TestCausesFromEvidence: a 401 through an intermediary that drops
// Authorization is blamed on it, from the origin's own token_missing and
// Via without --origin, and from the origin's 200 with it; Via naming a
// product version is HDR-LEAK; a cached stream the origin refuses
// without credentials names the origin's answer.
func TestCausesFromEvidence(t *testing.T) {
	t.Parallel()
	origin := serveT(t, &sharedStream{})
	through := dropAuth(t, origin)
	creds := []rawhttp.Field{{Name: "Authorization", Value: "Bearer good"}}
	cases := []struct {
		name, origin, want string
	}{
		{"header evidence", "", "no token reached it (token_missing)"},
		{"--origin", origin, "answers 200 to the same request: the intermediary drops or rewrites the credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := runScan(t, scan.Config{URL: through + "/events?topic=t", Header: creds, Origin: tc.origin, Duration: 500 * time.Millisecond})
			assertFires(t, rep, scan.RuleStatus, scan.RuleLeak)
			for _, f := range rep.Findings {
				if f.Rule == scan.RuleStatus && !strings.Contains(f.Evidence, tc.want) {
					t.Errorf("SSE-STATUS evidence %q lacks %q", f.Evidence, tc.want)
				}
				if f.Rule == scan.RuleStatus && !strings.Contains(f.Remediation, "login=PASSTHRU") {
					t.Errorf("SSE-STATUS remediation %q lacks Squid's fix", f.Remediation)
				}
				if f.Rule == scan.RuleLeak && !strings.Contains(f.Evidence, "squid/5.7") {
					t.Errorf("HDR-LEAK evidence %q does not name Via", f.Evidence)
				}
			}
		})
	}
	t.Run("cached stream, --origin", func(t *testing.T) {
		t.Parallel()
		shared := &sharedStream{shared: true, stop: make(chan struct{})}
		t.Cleanup(func() { close(shared.stop) })
		rep := runScan(t, scan.Config{URL: serveT(t, shared) + "/events?topic=t", Header: creds, Origin: origin, Duration: time.Second})
		assertFires(t, rep, scan.RuleAuthLeak)
		for _, f := range rep.Findings {
			if f.Rule == scan.RuleAuthLeak && slices.Contains(f.Probes, scan.ProbeNoCredentials) && !strings.Contains(f.Evidence, "the origin (--origin) answers 401 without them") {
				t.Errorf("SSE-AUTH-LEAK evidence %q does not compare with the origin", f.Evidence)
			}
		}
	})
	t.Run("--origin, no fault", func(t *testing.T) {
		t.Parallel()
		rep := runScan(t, scan.Config{URL: origin + "/events?topic=t", Header: creds, Origin: origin, Duration: 500 * time.Millisecond})
		assertQuiet(t, rep, scan.RuleStatus, scan.RuleAuthLeak, scan.RuleLeak)
	})
}

// TestCausesFromHeaders: an Accept bypass served from a cache blames the
// cache, not the origin; a silence on a compressed stream names the
// compressor, which holds heartbeats as it holds events.
func TestCausesFromHeaders(t *testing.T) {
	t.Parallel()
	t.Run("cached Accept bypass", func(t *testing.T) {
		t.Parallel()
		f := healthy()
		f.ignoreAccept = true
		f.mod = func(h http.Header) { h.Set("Age", "12") }
		rep := runScan(t, scan.Config{URL: serveT(t, f) + "/events?topic=t", HeartbeatMax: time.Second})
		assertFires(t, rep, scan.RuleAccept)
		for _, fd := range rep.Findings {
			if fd.Rule == scan.RuleAccept && !strings.Contains(fd.Evidence, "a cache answered (Age: 12), not the origin") {
				t.Errorf("SSE-ACCEPT evidence %q does not blame the cache", fd.Evidence)
			}
		}
	})
	t.Run("silence on a compressed stream", func(t *testing.T) {
		t.Parallel()
		f := &fault{heartbeat: 50 * time.Millisecond, gzip: true, flushEvery: time.Hour}
		rep := runScan(t, scan.Config{URL: serveT(t, f) + "/events?topic=t", Duration: 900 * time.Millisecond, HeartbeatMax: 300 * time.Millisecond})
		assertFires(t, rep, scan.RuleHeartbeat)
		for _, fd := range rep.Findings {
			if fd.Rule == scan.RuleHeartbeat && !strings.Contains(fd.Evidence, "compressor holds the heartbeats") {
				t.Errorf("SSE-HEARTBEAT evidence %q does not name the compressor", fd.Evidence)
			}
		}
	})
}
