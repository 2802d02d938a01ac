package nginx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/server/servertest"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address src, as a distinct client host would.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// openStream opens a stream through base from src and returns its status
// and problem code; a 200 stream stays open until the test ends.
func openStream(t *testing.T, base, src string, hdr http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/events?topic=demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := clientFrom(src).Do(req)
	if err != nil {
		t.Fatalf("stream from %s: %v", src, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode == 200 {
		return 200, ""
	}
	var prob struct{ Error string }
	body, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(body, &prob)
	return res.StatusCode, prob.Error
}

// TestNginxClientsCountedByAddress: behind sseguard.conf, the hub run
// with sseguard.yaml (limits.trusted_proxies) counts streams_per_ip per
// client address, not per nginx: with a limit of 2, four loopback client
// addresses hold two streams each, and a third from one of them is
// refused even when that client forges X-Forwarded-For. Without
// trusted_proxies, the same clients share nginx's address: the third
// stream of all is refused, and the hub warns about the X-Forwarded-For it
// ignores.
func TestNginxClientsCountedByAddress(t *testing.T) {
	const perIP = 2
	sources := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	shipped, err := config.Load("sseguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted []string
	}{
		{"trusted_proxies as shipped", shipped.Limits.TrustedProxies},
		{"without trusted_proxies", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := *shipped
			cfg.Limits.TrustedProxies = tc.trusted
			n := perIP
			cfg.Limits.StreamsPerIP = &n
			hub := servertest.Start(t, &cfg)
			base := startNginx(t, "sseguard.conf", hub.Addr)

			res, err := http.Get(base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			var ready struct {
				ClientAddress string `json:"client_address"`
			}
			err = json.NewDecoder(res.Body).Decode(&ready)
			res.Body.Close()
			wantMode := "peer"
			if len(tc.trusted) > 0 {
				wantMode = "x-forwarded-for"
			}
			if err != nil || ready.ClientAddress != wantMode {
				t.Fatalf("/readyz client_address = %q (%v), want %q", ready.ClientAddress, err, wantMode)
			}

			accepted := 0
			for _, src := range sources {
				for i := range perIP {
					status, code := openStream(t, base, src, nil)
					if status == 200 {
						accepted++
						continue
					}
					if len(tc.trusted) > 0 || status != 429 || code != "too_many_streams" {
						t.Fatalf("stream %d from %s: %d %s", i+1, src, status, code)
					}
				}
			}
			if len(tc.trusted) == 0 {
				if accepted != perIP {
					t.Errorf("%d streams accepted from %d addresses, want %d: all are nginx's address", accepted, len(sources), perIP)
				}
				if !strings.Contains(hub.Log(), "X-Forwarded-For from a peer not in limits.trusted_proxies") {
					t.Errorf("no warning about the ignored X-Forwarded-For in the hub's log:\n%s", hub.Log())
				}
				return
			}
			if accepted != perIP*len(sources) {
				t.Fatalf("%d streams accepted, want %d", accepted, perIP*len(sources))
			}
			// A forged X-Forwarded-For is on the left of what nginx adds:
			// the client is still the address nginx saw.
			forged := http.Header{"X-Forwarded-For": {fmt.Sprintf("127.0.0.%d", 200)}}
			if status, code := openStream(t, base, sources[0], forged); status != 429 || code != "too_many_streams" {
				t.Errorf("stream %d from %s with a forged X-Forwarded-For: %d %s, want 429 too_many_streams", perIP+1, sources[0], status, code)
			}
			if strings.Contains(hub.Log(), "X-Forwarded-For from a peer not in") {
				t.Errorf("a warning about X-Forwarded-For from the trusted nginx:\n%s", hub.Log())
			}
		})
	}
}
