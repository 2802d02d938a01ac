package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sseguard/sseguard/auth"
	sseguardjs "github.com/sseguard/sseguard/clients/js"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
)

// wsURL is ts's /ws address with query.
func (ts *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(ts.base, "http") + "/ws?" + query
}

// dialWS opens /ws with hdr and fails the test when it is not upgraded.
func (ts *testServer) dialWS(t *testing.T, ctx context.Context, query string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, res, err := websocket.Dial(ctx, ts.wsURL(query), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		status := 0
		var body []byte
		if res != nil {
			status = res.StatusCode
			body, _ = io.ReadAll(res.Body)
		}
		t.Fatalf("dial /ws?%s: %v (status %d %s)", query, err, status, body)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func bearerHeader(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// wsRead reads one message.
func wsRead(t *testing.T, ctx context.Context, c *websocket.Conn) wsTestMessage {
	t.Helper()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("a %v message; want text", typ)
	}
	var m wsTestMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
	return m
}

// wsTestMessage is a message as a client decodes it.
type wsTestMessage struct {
	ID    string          `json:"id"`
	Topic string          `json:"topic"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// str is the message's data as a string (events carry strings).
func (m wsTestMessage) str(t *testing.T) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatalf("data %s is not a string: %v", m.Data, err)
	}
	return s
}

// closeOf reads until the connection ends and returns its close status
// and reason.
func closeOf(t *testing.T, ctx context.Context, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !asCloseError(err, &ce) {
			t.Fatalf("the connection ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

func asCloseError(err error, ce *websocket.CloseError) bool {
	code := websocket.CloseStatus(err)
	if code == -1 {
		return false
	}
	ce.Code = code
	if s := err.Error(); strings.Contains(s, "reason = ") {
		ce.Reason = strings.TrimSpace(s[strings.Index(s, "reason = ")+len("reason = "):])
	}
	return true
}

// retryOf reads a close reason's retry hint in milliseconds.
func retryOf(t *testing.T, reason string) int {
	t.Helper()
	m := regexp.MustCompile(`retry=(\d+)`).FindStringSubmatch(reason)
	if m == nil {
		t.Fatalf("close reason %q has no retry=MS", reason)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestWSLiveEvents: a WebSocket gets each published event of its topics
// once, as a JSON text message with id, topic, type and data.
func TestWSLiveEvents(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := ts.dialWS(t, ctx, "topic=news&topic=sport", bearerHeader(tok))
	waitSubscribers(t, ts.hub, 1)
	id1 := ts.mustPublish(t, tok, "news", "first")
	ts.mustPublish(t, tok, "weather", "not subscribed")
	id3 := ts.publishTyped(t, tok, "sport", "score", "line1\nline2")
	if m := wsRead(t, ctx, c); m.ID != id1 || m.Topic != "news" || m.Type != "message" || m.str(t) != "first" {
		t.Fatalf("got %+v", m)
	}
	if m := wsRead(t, ctx, c); m.ID != id3 || m.Topic != "sport" || m.Type != "score" || m.str(t) != "line1\nline2" {
		t.Fatalf("got %+v", m)
	}
}

// TestWSCursorAcrossTransports: a cursor read on SSE resumes on /ws with
// no gap and no repeat, while events keep being published, and the ID
// last seen on /ws resumes on SSE the same way: one cursor across
// transports.
func TestWSCursorAcrossTransports(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var want []string // every ID published, in order
	pub := func(n int) {
		for range n {
			want = append(want, ts.mustPublish(t, tok, "t", fmt.Sprint(len(want))))
		}
	}
	var got []string

	// SSE: read the first 5 of 10.
	sctx, scancel := context.WithCancel(ctx)
	_, p := ts.openStream(t, sctx, "topic=t", bearerHeader(tok))
	waitSubscribers(t, ts.hub, 1)
	pub(10)
	for range 5 {
		got = append(got, nextEvent(t, p).ID)
	}
	scancel()
	waitSubscribers(t, ts.hub, 0)
	pub(5) // published while no transport is connected

	// WebSocket from the SSE cursor: the 10 left, then live ones.
	c := ts.dialWS(t, ctx, "topic=t&lastEventId="+got[len(got)-1], bearerHeader(tok))
	for range 10 {
		m := wsRead(t, ctx, c)
		if m.Type == "reset" {
			t.Fatalf("reset: %s", m.Data)
		}
		got = append(got, m.ID)
	}
	pub(3)
	for range 3 {
		got = append(got, wsRead(t, ctx, c).ID)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	waitSubscribers(t, ts.hub, 0)
	pub(2)

	// Back to SSE from the WebSocket's cursor, by Last-Event-ID.
	_, p = ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-Id": {got[len(got)-1]}})
	for range 2 {
		got = append(got, nextEvent(t, p).ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("received\n%v\nwant\n%v", got, want)
	}
}

// TestWSReplayParameters: after= resumes as lastEventId= does; both with
// different values is a 400, never an upgrade.
func TestWSReplayParameters(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id1 := ts.mustPublish(t, tok, "t", "1")
	id2 := ts.mustPublish(t, tok, "t", "2")
	c := ts.dialWS(t, ctx, "topic=t&after="+id1, bearerHeader(tok))
	if m := wsRead(t, ctx, c); m.ID != id2 {
		t.Fatalf("after=%s: got %+v, want %s", id1, m, id2)
	}
	_, res, err := websocket.Dial(ctx, ts.wsURL("topic=t&after="+id1+"&lastEventId="+id2), &websocket.DialOptions{HTTPHeader: bearerHeader(tok)})
	if err == nil {
		t.Fatal("two cursors were upgraded")
	}
	defer res.Body.Close()
	assertProblem(t, res, 400, policy.CodeBadRequest)
}

// TestWSResetUnknownCursor: a cursor this hub never issued gets a reset
// message (no id), then live events, as on /events.
func TestWSResetUnknownCursor(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := ts.dialWS(t, ctx, "topic=t&lastEventId=not-an-id", bearerHeader(tok))
	m := wsRead(t, ctx, c)
	var reset wsReset
	if err := json.Unmarshal(m.Data, &reset); err != nil || m.Type != "reset" || m.ID != "" || reset.Reason != "unknown_cursor" || reset.After != "not-an-id" {
		t.Fatalf("got %+v (%v), want a reset for unknown_cursor", m, err)
	}
	id := ts.mustPublish(t, tok, "t", "live")
	if m := wsRead(t, ctx, c); m.ID != id {
		t.Fatalf("got %+v, want %s", m, id)
	}
}

// TestWSResetTruncated: a cursor older than retention gets reset
// "truncated", then the oldest retained events, as on /events.
func TestWSResetTruncated(t *testing.T) {
	ts := start(t, func(c *config.Config) { n := 3; c.Store.MaxEventsPerTopic = &n }, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	for i := range 6 {
		ids = append(ids, ts.mustPublish(t, tok, "t", fmt.Sprint(i)))
	}
	c := ts.dialWS(t, ctx, "topic=t&lastEventId="+ids[0], bearerHeader(tok))
	m := wsRead(t, ctx, c)
	var reset wsReset
	if err := json.Unmarshal(m.Data, &reset); err != nil || m.Type != "reset" || reset.Reason != "truncated" {
		t.Fatalf("got %+v, want a reset for truncated", m)
	}
	for _, want := range ids[3:] {
		if m := wsRead(t, ctx, c); m.ID != want {
			t.Fatalf("got %+v, want %s", m, want)
		}
	}
}

func assertProblem(t *testing.T, res *http.Response, status int, code string) {
	t.Helper()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var p policy.Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Code != code {
		t.Fatalf("problem %s (%v), want code %s", body, err, code)
	}
}

// TestWSStreamLimits: WebSocket and SSE streams count against the same
// limits; one more gets 429 too_many_streams before any upgrade.
func TestWSStreamLimits(t *testing.T) {
	ts := start(t, func(c *config.Config) { n := 2; c.Limits.StreamsPerPrincipal = &n }, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ts.dialWS(t, ctx, "topic=t", bearerHeader(tok))
	res, _ := ts.openStream(t, ctx, "topic=t", bearerHeader(tok))
	if res.StatusCode != 200 {
		t.Fatalf("the SSE stream: %d", res.StatusCode)
	}
	_, res, err := websocket.Dial(ctx, ts.wsURL("topic=t"), &websocket.DialOptions{HTTPHeader: bearerHeader(tok)})
	if err == nil {
		t.Fatal("a third stream was upgraded")
	}
	defer res.Body.Close()
	assertProblem(t, res, 429, policy.CodeTooManyStreams)
}

// TestWSQueryTokenWhenEnabled: with auth.query_param set, a socket may
// carry its token in the query, as a stream may.
func TestWSQueryTokenWhenEnabled(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Auth.QueryParam = "access_token" }, nil)
	tok := token(t, auth.Permissions{Subscribe: []string{"secret"}}, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := ts.dialWS(t, ctx, "topic=secret&access_token="+tok, nil)
	waitSubscribers(t, ts.hub, 1)
	id := ts.mustPublish(t, token(t, allPerms, time.Hour), "secret", "x")
	if m := wsRead(t, ctx, c); m.ID != id {
		t.Fatalf("got %+v", m)
	}
	if strings.Contains(ts.logs(), tok) {
		t.Fatal("the query token reached the log")
	}
}

// TestWSStreamsPerIP: sockets count against limits.streams_per_ip with
// streams, whatever their principals.
func TestWSStreamsPerIP(t *testing.T) {
	ts := start(t, func(c *config.Config) { n := 1; c.Limits.StreamsPerIP = &n }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ts.dialWS(t, ctx, "topic=t", bearerHeader(token(t, allPerms, time.Hour)))
	other, err := auth.Mint(testKey, "someone-else", allPerms, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := websocket.Dial(ctx, ts.wsURL("topic=t"), &websocket.DialOptions{HTTPHeader: bearerHeader(other)})
	if err == nil {
		t.Fatal("a second socket from the address was upgraded")
	}
	defer res.Body.Close()
	assertProblem(t, res, 429, policy.CodeTooManyStreams)
}

// TestWSCutOff: a client that stops reading is closed with 4001 and a
// jittered retry hint once it falls behind by more than
// stream.queue_bytes, and its cursor resumes with nothing lost.
func TestWSCutOff(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Stream.QueueBytes = 64 << 10 }, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := ts.dialWS(t, ctx, "topic=big", bearerHeader(tok))
	c.SetReadLimit(-1)
	waitSubscribers(t, ts.hub, 1)
	big := strings.Repeat("z", 60<<10)
	// The first is read before the client stalls, as in
	// TestSlowConsumerCutAndCatchUp.
	ids := []string{ts.mustPublish(t, tok, "big", fmt.Sprint(0, big))}
	seen := []string{wsRead(t, ctx, c).ID}
	for i := 1; i < 400 && ts.hub.Stats().CutOff == 0; i++ { // ~24 MB at most: more than socket buffers hold
		ids = append(ids, ts.mustPublish(t, tok, "big", fmt.Sprint(i, big)))
	}
	if ts.hub.Stats().CutOff == 0 {
		t.Fatal("the stalled subscriber was never cut off")
	}
	var code websocket.StatusCode
	var reason string
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !asCloseError(err, &ce) {
				t.Fatalf("the connection ended without a close frame: %v", err)
			}
			code, reason = ce.Code, ce.Reason
			break
		}
		var m wsTestMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, m.ID)
	}
	if code != CloseCutOff {
		t.Fatalf("close %d %q, want %d", code, reason, CloseCutOff)
	}
	if ms := retryOf(t, reason); ms < 500 || ms > 1500 {
		t.Fatalf("retry %d ms, want 500 to 1500", ms)
	}
	if len(seen) >= len(ids) {
		t.Fatalf("before the cut the client saw %d of %d events", len(seen), len(ids))
	}
	c2 := ts.dialWS(t, ctx, "topic=big&lastEventId="+seen[len(seen)-1], bearerHeader(tok))
	c2.SetReadLimit(-1)
	for len(seen) < len(ids) {
		seen = append(seen, wsRead(t, ctx, c2).ID)
	}
	for i := range ids {
		if seen[i] != ids[i] {
			t.Fatalf("event %d: saw %s, published %s", i, seen[i], ids[i])
		}
	}
}

// TestWSTokenExpiry: the socket closes with 4000 when its token expires.
func TestWSTokenExpiry(t *testing.T) {
	ts := start(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := ts.dialWS(t, ctx, "topic=t", bearerHeader(token(t, allPerms, 1500*time.Millisecond)))
	if code, reason := closeOf(t, ctx, c); code != CloseTokenExpired {
		t.Fatalf("close %d %q, want %d", code, reason, CloseTokenExpired)
	}
}

// TestWSShutdown: a stopping hub closes every socket with 4002 and a
// retry hint of 1 to 3 s, drawn per socket.
func TestWSShutdown(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for range 4 {
		conns = append(conns, ts.dialWS(t, ctx, "topic=t", bearerHeader(tok)))
	}
	waitSubscribers(t, ts.hub, 4)
	done := make(chan error, 1)
	go func() { done <- ts.stop() }()
	hints := map[int]bool{}
	for _, c := range conns {
		code, reason := closeOf(t, ctx, c)
		if code != CloseShutdown {
			t.Fatalf("close %d %q, want %d", code, reason, CloseShutdown)
		}
		ms := retryOf(t, reason)
		if ms < 1000 || ms > 3000 {
			t.Fatalf("retry %d ms, want 1000 to 3000", ms)
		}
		hints[ms] = true
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(hints) < 2 {
		t.Fatalf("4 sockets got the same retry hint %v: not jittered", hints)
	}
}

// TestWSHeartbeatPings: an idle socket gets WebSocket pings every
// stream.heartbeat, and a client message {"type":"ping"} gets a pong.
func TestWSHeartbeatPings(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Stream.Heartbeat = config.Duration(50 * time.Millisecond) }, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var pings atomic.Int32
	got3 := make(chan struct{})
	c, _, err := websocket.Dial(ctx, ts.wsURL("topic=t"), &websocket.DialOptions{HTTPHeader: bearerHeader(tok),
		OnPingReceived: func(context.Context, []byte) bool {
			if pings.Add(1) == 3 {
				close(got3)
			}
			return true
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if m := wsRead(t, ctx, c); m.Type != "pong" || m.ID != "" {
		t.Fatalf("got %+v, want a pong", m)
	}
	readCtx := c.CloseRead(ctx) // keep reading so pings are answered
	select {
	case <-got3:
	case <-readCtx.Done():
		t.Fatalf("the socket ended after %d pings", pings.Load())
	}
}

// TestWSOriginBeforeUpgrade: cross-site WebSocket hijacking with a
// victim's cookie gets 403 origin_forbidden and no upgrade; the page's own
// origin, and an allowed origin the token lists, are upgraded.
func TestWSOriginBeforeUpgrade(t *testing.T) {
	const app = "https://app.test"
	ts := start(t, func(c *config.Config) { c.CORS.AllowedOrigins = []string{app} }, nil)
	victim := token(t, auth.Permissions{Subscribe: []string{"*"}, Origins: []string{app}}, time.Hour)
	cookie := func(origin string) http.Header {
		h := http.Header{"Cookie": {auth.DefaultCookie + "=" + victim}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name   string
		hdr    http.Header
		status int
	}{
		{"evil origin with the victim's cookie", cookie("https://evil.test"), 403},
		{"null origin with the cookie", cookie("null"), 403},
		{"no origin with the cookie", cookie(""), 403},
		{"the hub's own origin with the cookie", cookie(ts.base), 101},
		{"an allowed origin the token lists", cookie(app), 101},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.hub.Stats().Subscribers
			c, res, err := websocket.Dial(ctx, ts.wsURL("topic=secret"), &websocket.DialOptions{HTTPHeader: tt.hdr})
			if tt.status == 101 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatal("upgraded")
			}
			defer res.Body.Close()
			assertProblem(t, res, tt.status, policy.CodeOriginForbidden)
			if res.Header.Get("Upgrade") != "" || res.Header.Get("Sec-WebSocket-Accept") != "" {
				t.Fatalf("a refusal carries upgrade headers: %v", res.Header)
			}
			if n := ts.hub.Stats().Subscribers; n != before {
				t.Fatalf("a refused socket subscribed: %d -> %d", before, n)
			}
		})
	}
}

// TestWSNotAnUpgrade: a plain GET /ws gets a 400 problem pointing to the
// poll fallback, not the library's text/plain.
func TestWSNotAnUpgrade(t *testing.T) {
	ts := start(t, nil, nil)
	res, err := http.Get(ts.base + "/ws?topic=demo")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	assertProblem(t, res, 400, policy.CodeBadRequest)
}

// TestWSMetrics: an open socket is counted under transport "ws", and its
// end by reason.
func TestWSMetrics(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := ts.dialWS(t, ctx, "topic=t", bearerHeader(tok))
	waitSubscribers(t, ts.hub, 1)
	if m := scrape(t, ts); !strings.Contains(m, `sseguard_open_streams{transport="ws"} 1`) {
		t.Fatalf("no open ws stream in the metrics:\n%s", grepLines(m, "open_streams"))
	}
	_ = c.Write(ctx, websocket.MessageBinary, []byte{1})
	if code, _ := closeOf(t, ctx, c); code != websocket.StatusUnsupportedData {
		t.Fatalf("close %d", code)
	}
	want := `sseguard_disconnects_total{reason="policy_violation",transport="ws"} 1`
	deadline := time.Now().Add(10 * time.Second)
	for m := scrape(t, ts); !strings.Contains(m, want); m = scrape(t, ts) {
		if time.Now().After(deadline) {
			t.Fatalf("want %s in:\n%s", want, grepLines(m, "disconnects"))
		}
	}
}

func scrape(t *testing.T, ts *testServer) string {
	t.Helper()
	res, err := http.Get(ts.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestClientJSServed: /sseguard.js is the embedded client, served with
// the headers of the pages' own scripts (the page policy).
func TestClientJSServed(t *testing.T) {
	ts := start(t, nil, nil)
	get := func(path string) (*http.Response, []byte) {
		res, err := http.Get(ts.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	res, body := get("/sseguard.js")
	if res.StatusCode != 200 || string(body) != string(sseguardjs.Source) || len(body) == 0 {
		t.Fatalf("status %d, %d bytes; want 200 and the %d bytes of clients/js/sseguard.js", res.StatusCode, len(body), len(sseguardjs.Source))
	}
	ref, _ := get("/app.js")
	for _, h := range []string{"Content-Type", "Content-Security-Policy", "X-Content-Type-Options", "Cache-Control",
		"Referrer-Policy", "Cross-Origin-Resource-Policy", "X-Frame-Options"} {
		if got, want := res.Header.Values(h), ref.Header.Values(h); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: %q, want %q as on /app.js", h, got, want)
		}
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("no page policy: %v", res.Header)
	}
}

// TestWSOverTLS: wss:// works (HTTP/1.1 over TLS, as browsers open
// WebSockets), replay included, and a WebSocket handshake over HTTP/2 is
// a 400 problem naming the fallback, not an upgrade.
func TestWSOverTLS(t *testing.T) {
	ts, h2 := startTLS(t, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	app, err := ts.hub.Publish(ctx, store.Record{Topic: "t", Data: "1"}, store.Record{Topic: "t", Data: "2"})
	if err != nil {
		t.Fatal(err)
	}
	tr := h2.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	defer tr.CloseIdleConnections()
	url := "wss" + strings.TrimPrefix(ts.base, "https") + "/ws?topic=t&lastEventId=" + app[0].Event.ID
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTPHeader: bearerHeader(tok)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if m := wsRead(t, ctx, c); m.ID != app[1].Event.ID {
		t.Fatalf("got %+v, want %s", m, app[1].Event.ID)
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/ws?topic=t", nil)
	// HTTP/2 has no Connection header (Go's client would fall back to
	// HTTP/1.1 for one): the version alone must refuse it.
	req.Header = http.Header{"Authorization": {"Bearer " + tok}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	res, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("the client spoke %s, not HTTP/2", res.Proto)
	}
	var p policy.Problem
	body, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(body, &p); err != nil || res.StatusCode != 400 || p.Code != policy.CodeBadRequest ||
		!strings.Contains(p.Detail, "HTTP/1.1") || p.Fallback == "" {
		t.Fatalf("%d %s, want 400 bad_request naming HTTP/1.1 and a fallback", res.StatusCode, body)
	}
}

// TestWSUnansweredPingCloses: a client that does not answer the hub's
// pings (a dead path that keeps the TCP connection) is closed after the
// write timeout, and counted as a write error.
func TestWSUnansweredPingCloses(t *testing.T) {
	ts := start(t, func(c *config.Config) {
		c.Stream.Heartbeat = config.Duration(50 * time.Millisecond)
		c.Stream.WriteTimeout = config.Duration(300 * time.Millisecond)
	}, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c, "GET /ws?topic=demo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", res, err)
	}
	// Read (pings included) and never answer, until the hub closes.
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the hub did not close the connection: %v", err)
	}
	want := `sseguard_disconnects_total{reason="write_error",transport="ws"} 1`
	deadline := time.Now().Add(10 * time.Second)
	for m := scrape(t, ts); !strings.Contains(m, want); m = scrape(t, ts) {
		if time.Now().After(deadline) {
			t.Fatalf("want %s in:\n%s", want, grepLines(m, "disconnects"))
		}
	}
}

// TestWSSameOriginBehindTLSProxy: behind a proxy that ends TLS, the page's
// origin is https while the hub's connection is plain: the hub takes the
// scheme from X-Forwarded-Proto only when the peer is a trusted proxy, so
// the same-origin page's socket is upgraded there, and a client that is
// no proxy cannot claim https for itself.
func TestWSSameOriginBehindTLSProxy(t *testing.T) {
	victim := token(t, auth.Permissions{Subscribe: []string{"*"}}, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name    string
		trusted []string
		status  int
	}{
		{"from a trusted proxy", []string{"127.0.0.1/32"}, 101},
		{"from a peer that is no trusted proxy", nil, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, func(c *config.Config) { c.Limits.TrustedProxies = tt.trusted }, nil)
			origin := "https://" + strings.TrimPrefix(ts.base, "http://")
			hdr := http.Header{"Cookie": {auth.DefaultCookie + "=" + victim}, "Origin": {origin}, "X-Forwarded-Proto": {"https"}}
			c, res, err := websocket.Dial(ctx, ts.wsURL("topic=secret"), &websocket.DialOptions{HTTPHeader: hdr})
			if tt.status == 101 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatal("upgraded")
			}
			defer res.Body.Close()
			assertProblem(t, res, tt.status, policy.CodeOriginForbidden)
		})
	}
}
