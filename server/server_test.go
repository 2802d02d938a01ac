package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type testServer struct {
	base string
	srv  *Server
	// logs returns what the server logged so far (JSON lines).
	logs  func() string
	hub   *hub.Hub
	store store.Store
	stop  func() error
}

// start serves a hub on loopback with the default configuration changed
// by mutate, on st (a memory store when nil); each setup function sees the
// server before it serves.
func start(t *testing.T, mutate func(*config.Config), st store.Store, setup ...func(*Server)) *testServer {
	t.Helper()
	return startWrapped(t, mutate, st, nil, setup...)
}

// startWrapped is start with the listener passed through wrap when wrap is
// not nil, for a test that changes what the server sees of a connection.
func startWrapped(t *testing.T, mutate func(*config.Config), st store.Store, wrap func(net.Listener) net.Listener, setup ...func(*Server)) *testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Stream.Heartbeat = config.Duration(time.Hour)
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if st == nil {
		st = memory.New(store.Retention{MaxEventsPerTopic: *cfg.Store.MaxEventsPerTopic})
	}
	// Every test's server logs are checked for token material once it
	// stopped: no JWT (they all start "eyJ") may ever reach a log line.
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(logs.String(), "eyJ") {
			t.Errorf("token material in the server's log:\n%s", logs.String())
		}
	})
	v, stopKeys, err := NewVerifier(context.Background(), cfg, testKey, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopKeys)
	h := hub.New(hub.Options{Store: st, QueueBytes: cfg.Stream.QueueBytes, Logger: log})
	srv := New(cfg, h, v, log)
	for _, f := range setup {
		f(srv)
	}
	addr, stop := runWrapped(t, srv, wrap)
	logText := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	return &testServer{base: "http://" + addr, srv: srv, logs: logText, hub: h, store: st, stop: stop}
}

// runLoopback runs srv on a loopback port until stop is called or the test
// ends, and returns the address. stop returns Run's error, and may be
// called more than once.
func runLoopback(t *testing.T, srv *Server) (addr string, stop func() error) {
	t.Helper()
	return runWrapped(t, srv, nil)
}

// runWrapped is runLoopback with the listener passed through wrap when
// wrap is not nil.
func runWrapped(t *testing.T, srv *Server, wrap func(net.Listener) net.Listener) (addr string, stop func() error) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := raw
	if wrap != nil {
		ln = wrap(raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx, ln) }()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-errc:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("server did not stop within 30 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return raw.Addr().String(), stop
}

func token(t *testing.T, perms auth.Permissions, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testKey, "tester", perms, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var (
	allPerms = auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}
)

func (ts *testServer) publish(t *testing.T, tok, topic, data string, hdr ...string) (*http.Response, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	req, _ := http.NewRequest("POST", ts.base+"/api/publish", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res, m
}

func (ts *testServer) mustPublish(t *testing.T, tok, topic, data string) string {
	t.Helper()
	res, m := ts.publish(t, tok, topic, data)
	if res.StatusCode != 201 {
		t.Fatalf("publish: %d %v", res.StatusCode, m)
	}
	return m["id"].(string)
}

// openStream connects and returns a parser over the body, after the
// initial retry field.
func (ts *testServer) openStream(t *testing.T, ctx context.Context, query string, hdr http.Header) (*http.Response, *sse.Parser) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/events?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res, sse.NewParser(res.Body)
}

func nextEvent(t *testing.T, p *sse.Parser) sse.Event {
	t.Helper()
	e, err := p.Next()
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return e
}

func TestPublishReachesSubscriber(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, p := ts.openStream(t, ctx, "topic=news&topic=sport", http.Header{"Authorization": {"Bearer " + tok}})
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	waitSubscribers(t, ts.hub, 1)
	id1 := ts.mustPublish(t, tok, "news", "first")
	ts.mustPublish(t, tok, "weather", "not subscribed")
	id3 := ts.mustPublish(t, tok, "sport", "line1\nline2")
	if e := nextEvent(t, p); e.ID != id1 || e.Data != "first" {
		t.Fatalf("got %+v", e)
	}
	if e := nextEvent(t, p); e.ID != id3 || e.Data != "line1\nline2" {
		t.Fatalf("got %+v", e)
	}
}

func waitSubscribers(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if h.Stats().Subscribers >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("subscribers never reached %d", n)
}

func TestReplayThenLive(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, ts.mustPublish(t, tok, "t", fmt.Sprint("e", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, how := range []string{"header", "query"} {
		t.Run(how, func(t *testing.T) {
			q, h := "topic=t", http.Header{"Authorization": {"Bearer " + tok}}
			if how == "header" {
				h.Set("Last-Event-ID", ids[1])
			} else {
				q += "&lastEventId=" + url.QueryEscape(ids[1])
			}
			_, p := ts.openStream(t, ctx, q, h)
			for _, want := range ids[2:] {
				if e := nextEvent(t, p); e.ID != want {
					t.Fatalf("replay gave %s, want %s", e.ID, want)
				}
			}
		})
	}
	_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {ids[4]}})
	waitSubscribers(t, ts.hub, 1)
	live := ts.mustPublish(t, tok, "t", "live")
	if e := nextEvent(t, p); e.ID != live {
		t.Fatalf("after replay got %s, want live %s", e.ID, live)
	}
}

func TestResetOnUnknownAndTruncatedCursor(t *testing.T) {
	ts := start(t, func(c *config.Config) { n := 3; c.Store.MaxEventsPerTopic = &n }, nil)
	tok := token(t, allPerms, time.Hour)
	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, ts.mustPublish(t, tok, "t", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {ids[0]}})
	e := nextEvent(t, p)
	if e.Type != "reset" || !strings.Contains(e.Data, `"reason":"truncated"`) {
		t.Fatalf("want a truncated reset first, got %+v", e)
	}
	for _, want := range ids[3:] {
		if e := nextEvent(t, p); e.ID != want {
			t.Fatalf("after reset got %s, want %s", e.ID, want)
		}
	}

	_, p = ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {"999999"}})
	e = nextEvent(t, p)
	if e.Type != "reset" || !strings.Contains(e.Data, `"reason":"unknown_cursor"`) {
		t.Fatalf("want an unknown_cursor reset, got %+v", e)
	}
	waitSubscribers(t, ts.hub, 1)
	live := ts.mustPublish(t, tok, "t", "live")
	if e := nextEvent(t, p); e.ID != live {
		t.Fatalf("after reset got %+v, want live %s", e, live)
	}
}

// TestReplayRaceNoGapNoDuplicate hammers reconnects while publishes race
// them: every client must see every event exactly once, in order.
func TestReplayRaceNoGapNoDuplicate(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	const total = 600
	first := ts.mustPublish(t, tok, "race", "start")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pubDone := make(chan []string, 1)
	go func() {
		var ids []string
		for i := 0; i < total; i++ {
			body := fmt.Sprintf(`{"topic":"race","data":"%d"}`, i)
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.base+"/api/publish", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				break
			}
			var m map[string]string
			_ = json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			ids = append(ids, m["id"])
		}
		pubDone <- ids
	}()

	const clients = 4
	results := make([][]string, clients)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			last := first
			for reconnect := 0; ctx.Err() == nil && reconnect < 5000; reconnect++ {
				req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/events?topic=race", nil)
				req.Header.Set("Accept", "text/event-stream")
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Last-Event-ID", last)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				p := sse.NewParser(res.Body)
				for k := 0; k < 1+(reconnect*7+c)%23; k++ { // read a few, then drop the connection
					e, err := p.Next()
					if err != nil {
						break
					}
					results[c] = append(results[c], e.ID)
					last = e.ID
					if n, _ := strconv.Atoi(last); n >= total+1 {
						break
					}
				}
				res.Body.Close()
				if n, _ := strconv.Atoi(last); n >= total+1 {
					return
				}
			}
		}(c)
	}
	published := <-pubDone
	wg.Wait()
	if len(published) != total {
		t.Fatalf("published %d of %d", len(published), total)
	}
	for c, got := range results {
		if len(got) != total {
			t.Errorf("client %d saw %d events, want %d", c, len(got), total)
		}
		for i := range min(len(got), total) {
			if got[i] != published[i] {
				t.Fatalf("client %d: event %d is %s, want %s (gap or duplicate)", c, i, got[i], published[i])
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	ts := start(t, nil, nil)
	all := token(t, allPerms, time.Hour)
	subOnly := token(t, auth.Permissions{Subscribe: []string{"news"}}, time.Hour)
	expired, _ := auth.Mint(testKey, "x", allPerms, time.Minute, time.Now().Add(-time.Hour))
	forged, _ := auth.Mint([]byte("another key that is 32 bytes lo"), "x", allPerms, time.Hour, time.Now())

	tests := []struct {
		name, method, path, accept, token, ctype, body string
		status                                         int
		code                                           string
	}{
		{"stream wildcard accept", "GET", "/events?topic=demo", "*/*", "", "", "", 406, policy.CodeAcceptNotAcceptable},
		{"stream no topic", "GET", "/events", "text/event-stream", all, "", "", 400, policy.CodeBadRequest},
		{"stream star inside a topic", "GET", "/events?topic=a*b", "text/event-stream", all, "", "", 400, policy.CodeBadRequest},
		{"stream no token", "GET", "/events?topic=secret", "text/event-stream", "", "", "", 401, policy.CodeTokenMissing},
		{"stream wrong topic", "GET", "/events?topic=secret", "text/event-stream", subOnly, "", "", 403, policy.CodeTopicForbidden},
		{"stream expired", "GET", "/events?topic=news", "text/event-stream", expired, "", "", 401, policy.CodeTokenExpired},
		{"stream forged", "GET", "/events?topic=news", "text/event-stream", forged, "", "", 401, policy.CodeTokenInvalid},
		{"stream POST", "POST", "/events?topic=news", "text/event-stream", all, "", "", 405, policy.CodeMethodNotAllowed},
		{"poll wants json", "GET", "/api/poll?topic=demo", "text/event-stream", "", "", "", 406, policy.CodeAcceptNotAcceptable},
		{"poll bad wait", "GET", "/api/poll?topic=demo&after=0&wait=x", "", "", "", "", 400, policy.CodeBadRequest},
		{"publish no token", "POST", "/api/publish", "", "", "application/json", `{"topic":"a","data":"x"}`, 401, policy.CodeTokenMissing},
		{"publish sub-only token", "POST", "/api/publish", "", subOnly, "application/json", `{"topic":"news","data":"x"}`, 403, policy.CodeTopicForbidden},
		{"publish text/plain", "POST", "/api/publish", "", all, "text/plain", `x`, 415, policy.CodeUnsupportedMedia},
		{"publish unknown field", "POST", "/api/publish", "", all, "application/json", `{"topic":"a","data":"x","id":"9"}`, 400, policy.CodeBadRequest},
		{"publish two values", "POST", "/api/publish", "", all, "application/json", `{"topic":"a","data":"x"}{}`, 400, policy.CodeBadRequest},
		{"publish type injection", "POST", "/api/publish", "", all, "application/json", `{"topic":"a","data":"x","type":"a\nevent: b"}`, 400, policy.CodeInvalidEvent},
		{"publish huge data", "POST", "/api/publish", "", all, "application/json", `{"topic":"a","data":"` + strings.Repeat("x", 70000) + `"}`, 413, policy.CodeBodyTooLarge},
		{"publish huge body", "POST", "/api/publish", "", all, "application/json", `{"topic":"a","data":"` + strings.Repeat("x", 2<<20) + `"}`, 413, policy.CodeBodyTooLarge},
		{"publish GET", "GET", "/api/publish", "", all, "", "", 405, policy.CodeMethodNotAllowed},
		{"not found", "GET", "/nope", "", "", "", "", 404, policy.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, ts.base+tt.path, strings.NewReader(tt.body))
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.status {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, b)
			}
			checkProblem(t, res, tt.status, tt.code)
		})
	}
}

// checkProblem asserts the one error shape and its headers.
func checkProblem(t *testing.T, res *http.Response, status int, code string) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Type":           "application/problem+json",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := res.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly %q", name, got, want)
		}
	}
	if status == 406 || status == 429 || status == 503 {
		if res.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
	}
	var p struct {
		Type, Title, Detail, Error, Fallback string
		Status                               int
	}
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if p.Status != status || p.Error != code || p.Type == "" || p.Title == "" {
		t.Errorf("problem %+v, want status %d code %s", p, status, code)
	}
	if status == 406 && strings.HasPrefix(res.Request.URL.Path, "/events") && p.Fallback != "/api/poll" {
		t.Errorf("stream refusal fallback %q, want /api/poll", p.Fallback)
	}
}

func TestIdempotentPublish(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	res1, m1 := ts.publish(t, tok, "t", "once", "Idempotency-Key", "k-1")
	res2, m2 := ts.publish(t, tok, "t", "once", "Idempotency-Key", "k-1")
	if res1.StatusCode != 201 || res2.StatusCode != 201 || m1["id"] != m2["id"] || m2["duplicate"] != true {
		t.Fatalf("first %d %v, second %d %v", res1.StatusCode, m1, res2.StatusCode, m2)
	}
	page, err := ts.store.Read(context.Background(), []string{"t"}, "", 10)
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("stored %d events (%v), want 1", len(page.Events), err)
	}
}

func TestPoll(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	get := func(q string) (pollAnswer, *http.Response) {
		t.Helper()
		res, err := http.Get(ts.base + "/api/poll?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var a pollAnswer
		if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return a, res
	}
	a, res := get("topic=demo")
	if res.StatusCode != 200 || a.Next != "" || len(a.Events) != 0 {
		t.Fatalf("first poll %d %+v", res.StatusCode, a)
	}
	for _, h := range []string{"Cache-Control", "X-Content-Type-Options", "Content-Type"} {
		if got := res.Header.Values(h); len(got) != 1 {
			t.Errorf("%s = %q", h, got)
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", res.Header.Get("Cache-Control"))
	}
	id := ts.mustPublish(t, tok, "demo", "hello")
	a, _ = get("topic=demo&after=")
	if len(a.Events) != 1 || a.Events[0].ID != id || a.Next != id || a.Events[0].Type != "message" {
		t.Fatalf("poll after '' = %+v", a)
	}
	// A long poll is woken by a publish.
	done := make(chan pollAnswer, 1)
	go func() { a, _ := get("topic=demo&wait=20&after=" + id); done <- a }()
	waitSubscribers(t, ts.hub, 1)
	id2 := ts.mustPublish(t, tok, "demo", "woke")
	select {
	case a := <-done:
		if len(a.Events) != 1 || a.Events[0].ID != id2 {
			t.Fatalf("long poll = %+v", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll not woken")
	}
	a, _ = get("topic=demo&after=99999")
	if a.Reset == nil || a.Reset.Reason != "unknown_cursor" || a.Next != id2 {
		t.Fatalf("unknown cursor answer %+v", a)
	}
}

// TestHardenedHeadersEverywhere checks the profile's headers on every kind
// of response the hub writes, exactly once each.
func TestHardenedHeadersEverywhere(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	paths := []struct {
		method, path, accept string
		kind                 policy.Kind
	}{
		{"GET", "/", "", policy.KindPage},
		{"GET", "/healthz", "", policy.KindJSON},
		{"GET", "/readyz", "", policy.KindJSON},
		{"GET", "/api/poll?topic=demo", "", policy.KindJSON},
		{"GET", "/events?topic=demo", "text/event-stream", policy.KindStream},
		{"GET", "/events?topic=demo", "application/json", policy.KindProblem},
		{"DELETE", "/api/publish", "", policy.KindProblem},
		{"GET", "/missing", "", policy.KindProblem},
	}
	for _, p := range paths {
		t.Run(p.method+" "+p.path+" "+p.accept, func(t *testing.T) {
			hdr := http.Header{"Authorization": {"Bearer " + tok}}
			if p.accept != "" {
				hdr.Set("Accept", p.accept)
			}
			_, counts := rawResponse(t, ts.base, p.method, p.path, hdr, "")
			for _, h := range policy.Strict.Headers(p.kind, 1, 1) {
				if got := counts[http.CanonicalHeaderKey(h.Name)]; len(got) != 1 || got[0] != h.Value {
					t.Errorf("%s = %q, want exactly %q", h.Name, got, h.Value)
				}
			}
			for k, v := range counts {
				if len(v) > 1 {
					t.Errorf("%s repeated: %q", k, v)
				}
			}
		})
	}
}

func TestTokenExpiryEndsStream(t *testing.T) {
	ts := start(t, nil, nil)
	tok, _ := auth.Mint(testKey, "x", allPerms, 1500*time.Millisecond, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}})
	for {
		_, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream ended with %v, want a clean end at expiry", err)
		}
	}
	if d, ok := p.Retry(); !ok || d != 0 {
		t.Fatalf("final retry = %v, %v; want retry: 0 so the client reconnects with a fresh token", d, ok)
	}
}

func TestShutdownTellsStreamsToRetry(t *testing.T) {
	ts := start(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=demo", nil)
	waitSubscribers(t, ts.hub, 1)
	go func() { _ = ts.stop() }()
	for {
		if _, err := p.Next(); err != nil {
			break
		}
	}
	d, ok := p.Retry()
	if !ok || d < time.Second || d > 3*time.Second {
		t.Fatalf("retry at shutdown = %v, %v; want 1-3 s", d, ok)
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSlowConsumerCutAndCatchUp: a client that stops reading is cut off
// with a retry hint once its queue overflows, and its reconnect with
// Last-Event-ID replays everything it missed: nothing is skipped.
func TestSlowConsumerCutAndCatchUp(t *testing.T) {
	ts := start(t, func(c *config.Config) {
		c.Stream.QueueBytes = 64 << 10
		n := 0
		c.Store.MaxEventsPerTopic = &n
	}, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, p := ts.openStream(t, ctx, "topic=big", http.Header{"Authorization": {"Bearer " + tok}})
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	waitSubscribers(t, ts.hub, 1)
	big := strings.Repeat("z", 60<<10)
	// The first event is read before the client stalls: with a queue that
	// holds one event, a second publish that lands before the writer took
	// the first would cut the stream before anything was delivered.
	ids := []string{ts.mustPublish(t, tok, "big", fmt.Sprint(0, big))}
	seen := []string{nextEvent(t, p).ID}
	for i := 1; i < 400 && ts.hub.Stats().CutOff == 0; i++ { // ~24 MB at most: more than socket buffers hold
		ids = append(ids, ts.mustPublish(t, tok, "big", fmt.Sprint(i, big)))
	}
	if ts.hub.Stats().CutOff == 0 {
		t.Fatal("the stalled subscriber was never cut off")
	}
	for {
		e, err := p.Next()
		if err != nil {
			break // the server ended the stream
		}
		seen = append(seen, e.ID)
	}
	if d, ok := p.Retry(); !ok || d > 2*time.Second {
		t.Fatalf("cut stream's last retry = %v, %v; want a short retry hint", d, ok)
	}
	if len(seen) == 0 || len(seen) >= len(ids) {
		t.Fatalf("before the cut the client saw %d of %d events", len(seen), len(ids))
	}
	_, p = ts.openStream(t, ctx, "topic=big", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {seen[len(seen)-1]}})
	for len(seen) < len(ids) {
		seen = append(seen, nextEvent(t, p).ID)
	}
	for i := range ids {
		if seen[i] != ids[i] {
			t.Fatalf("event %d: saw %s, published %s", i, seen[i], ids[i])
		}
	}
}
