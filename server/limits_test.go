package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/policy"
)

func intp(n int) *int { return &n }

func TestStreamsPerPrincipalAndIP(t *testing.T) {
	ts := start(t, func(c *config.Config) {
		c.Limits.StreamsPerPrincipal = intp(2)
		c.Limits.StreamsPerIP = intp(3)
	}, nil)
	alice := token(t, auth.Permissions{Subscribe: []string{"*"}}, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(hdr http.Header) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/events?topic=demo", nil)
		req.Header.Set("Accept", "text/event-stream")
		for k, v := range hdr {
			req.Header[k] = v
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	withTok := http.Header{"Authorization": {"Bearer " + alice}}
	for i := 0; i < 2; i++ {
		if res := open(withTok); res.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, res.StatusCode)
		}
	}
	res := open(withTok)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream of one principal: %d", res.StatusCode)
	}
	checkProblem(t, res, 429, policy.CodeTooManyStreams)
	if res := open(nil); res.StatusCode != 200 { // anonymous: counts against the address only
		t.Fatalf("anonymous stream: %d", res.StatusCode)
	}
	res = open(nil)
	if res.StatusCode != 429 {
		t.Fatalf("fourth stream from one address: %d", res.StatusCode)
	}
	checkProblem(t, res, 429, policy.CodeTooManyStreams)
}

func TestStreamSlotFreedWhenClientLeaves(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Limits.StreamsPerIP = intp(1) }, nil)
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/events?topic=demo", nil)
		req.Header.Set("Accept", "text/event-stream")
		// The server notices a close asynchronously.
		eventually.True(t, 0, func() bool {
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode == 200
		}, "round %d: the slot of the stream before was freed", i)
		cancel()
	}
}

func TestClientIPBehindTrustedProxies(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.TrustedProxies = []string{"10.0.0.0/8", "127.0.0.1/32"}
	g := newGuard(cfg)
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct client, header ignored", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"one trusted proxy", "127.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"spoofed left-most hop ignored", "127.0.0.1:5000", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", "10.1.1.1:5000", []string{"198.51.100.7, 10.2.2.2", "10.3.3.3"}, "198.51.100.7"},
		{"malformed chain stops at the proxy", "127.0.0.1:5000", []string{"not-an-ip"}, "127.0.0.1"},
		{"all trusted", "127.0.0.1:5000", []string{"10.9.9.9"}, "10.9.9.9"},
		{"IPv6 peer", "[2001:db8::1]:5000", nil, "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := g.clientIP(r); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("clientIP = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestPublishRateLimit(t *testing.T) {
	rate := 1.0
	ts := start(t, func(c *config.Config) {
		c.Limits.PublishRate = &rate
		c.Limits.PublishBurst = 3
	}, nil)
	tok := token(t, allPerms, time.Hour)
	for i := 0; i < 3; i++ {
		ts.mustPublish(t, tok, "t", strconv.Itoa(i))
	}
	res, m := ts.publish(t, tok, "t", "over")
	if res.StatusCode != 429 || m["error"] != policy.CodeRateLimited {
		t.Fatalf("fourth publish in a burst of 3: %d %v", res.StatusCode, m)
	}
	if ra, _ := strconv.Atoi(res.Header.Get("Retry-After")); ra < 1 {
		t.Fatalf("Retry-After %q", res.Header.Get("Retry-After"))
	}
	other := token(t, allPerms, time.Hour) // same subject: same bucket
	if res, _ := ts.publish(t, other, "t", "x"); res.StatusCode != 429 {
		t.Fatalf("a second token of the same subject escaped the limit: %d", res.StatusCode)
	}
}

func TestSingleUseTokens(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Auth.JTIOnce = true }, nil)
	mint := func(jti string) string {
		c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "pub", ID: jti,
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Sseguard: allPerms}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	once := mint("j-1")
	if res, m := ts.publish(t, once, "t", "first"); res.StatusCode != 201 {
		t.Fatalf("first use: %d %v", res.StatusCode, m)
	}
	res, m := ts.publish(t, once, "t", "again")
	if res.StatusCode != 401 || m["error"] != policy.CodeTokenInvalid {
		t.Fatalf("second use: %d %v", res.StatusCode, m)
	}
	if res, m := ts.publish(t, mint(""), "t", "no jti"); res.StatusCode != 401 {
		t.Fatalf("token without jti: %d %v", res.StatusCode, m)
	}
	page, _ := ts.store.Read(context.Background(), []string{"t"}, "", 10)
	if len(page.Events) != 1 {
		b, _ := json.Marshal(page.Events)
		t.Fatalf("stored %s, want only the first", b)
	}
}

func TestRefusalsAreCounted(t *testing.T) {
	ts := start(t, nil, nil)
	req, _ := http.NewRequest("GET", ts.base+"/events?topic=demo", nil)
	req.Header.Set("Accept", "*/*")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get(ts.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	want := `sseguard_http_responses_total{code="accept_not_acceptable",status="406"} 1`
	if !containsLine(string(body), want) {
		t.Fatalf("metrics lack %s", want)
	}
}

func containsLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if strings.TrimRight(l, "\n") == line {
			return true
		}
	}
	return false
}

func TestLongPollsCountAsStreams(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Limits.StreamsPerIP = intp(2) }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/api/poll?topic=demo&after=0&wait=20", nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
	}
	waitSubscribers(t, ts.hub, 2)
	res, err := http.Get(ts.base + "/api/poll?topic=demo&after=0&wait=20")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 429 {
		t.Fatalf("third long poll from one address: %d, want 429", res.StatusCode)
	}
	checkProblem(t, res, 429, policy.CodeTooManyStreams)
}

func TestUncleanPathIsAProblem(t *testing.T) {
	ts := start(t, nil, nil)
	for _, p := range []string{"/api/../api/publish", "/./api/poll", "//events", "/x/%2e%2e/events", "/.%2E/events", "/events%2fx", "/a\\..\\events", "/api/..;/events"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", p, res.StatusCode)
		}
		checkProblem(t, res, 400, policy.CodeBadRequest)
		res.Body.Close()
		conn.Close()
	}
}
