package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/config"
)

// TestForwardedFromUntrustedPeerWarnsOnce: X-Forwarded-For from a peer
// outside limits.trusted_proxies is ignored with one warning (rate
// limited: a second request adds no line), and none when the peer is
// trusted.
func TestForwardedFromUntrustedPeerWarnsOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		want    int
	}{
		{"untrusted", nil, 1},
		{"trusted", []string{"127.0.0.1/32"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, func(c *config.Config) { c.Limits.TrustedProxies = tc.trusted }, nil)
			for range 3 {
				res := doReq(t, "GET", ts.base+"/healthz", http.Header{"X-Forwarded-For": {"203.0.113.7"}}, "")
				if res.StatusCode != 200 {
					t.Fatalf("/healthz: %d", res.StatusCode)
				}
			}
			var lines []map[string]any
			for l := range strings.Lines(ts.logs()) {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(m["msg"].(string), "X-Forwarded-For from a peer not in limits.trusted_proxies") {
					lines = append(lines, m)
				}
			}
			if len(lines) != tc.want {
				t.Fatalf("%d warnings about X-Forwarded-For, want %d:\n%s", len(lines), tc.want, ts.logs())
			}
			if tc.want > 0 && (lines[0]["level"] != "WARN" || lines[0]["peer"] != "127.0.0.1") {
				t.Errorf("warning %v: want level WARN and peer 127.0.0.1", lines[0])
			}
		})
	}
}

// TestReadyShowsClientAddressMode: /readyz says whether per-address limits
// see the TCP peer or X-Forwarded-For, and from which proxies.
func TestReadyShowsClientAddressMode(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		trusted    []string
		want       []string
	}{
		{"unset", "peer", nil, []string{}},
		{"set", "x-forwarded-for", []string{"127.0.0.1/32", "10.1.2.3/8"}, []string{"127.0.0.1/32", "10.0.0.0/8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, func(c *config.Config) { c.Limits.TrustedProxies = tc.trusted }, nil)
			res := doReq(t, "GET", ts.base+"/readyz", nil, "")
			var got struct {
				Status         string
				ClientAddress  string   `json:"client_address"`
				TrustedProxies []string `json:"trusted_proxies"`
			}
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
				t.Fatalf("/readyz: %d %v", res.StatusCode, err)
			}
			if got.Status != "ready" || got.ClientAddress != tc.mode || strings.Join(got.TrustedProxies, ",") != strings.Join(tc.want, ",") || got.TrustedProxies == nil {
				t.Errorf("/readyz = %+v, want mode %q and proxies %q", got, tc.mode, tc.want)
			}
		})
	}
}

// TestRequestIDOnlyFromTrustedProxies: a stream echoes the X-Request-ID
// of a trusted proxy, and replaces any other client's with its own, so
// that a client cannot tie its log lines to another's.
func TestRequestIDOnlyFromTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		echoed  bool
	}{
		{"untrusted", nil, false},
		{"trusted", []string{"127.0.0.1/32"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, func(c *config.Config) { c.Limits.TrustedProxies = tc.trusted }, nil)
			res := doReq(t, "GET", ts.base+"/events?topic=demo",
				http.Header{"Accept": {"text/event-stream"}, "X-Request-ID": {"chosen-by-client"}}, "")
			if res.StatusCode != 200 {
				t.Fatalf("stream: %d", res.StatusCode)
			}
			got := res.Header.Get("X-Request-ID")
			if (got == "chosen-by-client") != tc.echoed || got == "" {
				t.Errorf("X-Request-ID = %q, echoed want %v", got, tc.echoed)
			}
		})
	}
}

// TestHeaderLimitAsDocumented pins what docs/configuration.md says of
// limits.max_header_bytes: Go's net/http reads 4096 bytes past it, so a
// header of 18 KiB passes the default 16 KiB limit and one of 20 KiB does
// not.
func TestHeaderLimitAsDocumented(t *testing.T) {
	ts := start(t, nil, nil)
	limit := config.Default().Limits.MaxHeaderBytes
	for _, tc := range []struct {
		pad  int
		want int
	}{
		{limit + 2048, 200},
		{limit + 4096, 431},
	} {
		res := doReq(t, "GET", ts.base+"/healthz", http.Header{"X-Pad": {strings.Repeat("a", tc.pad)}}, "")
		if res.StatusCode != tc.want {
			t.Errorf("a %d-byte header: %d, want %d", tc.pad, res.StatusCode, tc.want)
		}
	}
}
