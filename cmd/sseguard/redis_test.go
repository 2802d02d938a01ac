package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
)

// node is one `sseguard serve` run in this process.
type node struct {
	base     string
	sub, pub string // the banner's development tokens
	stderr   *syncBuffer
}

var (
	listeningRE = regexp.MustCompile(`sseguard is listening on (http://\S+)`)
	bearerRE    = regexp.MustCompile(`Bearer ([A-Za-z0-9._-]+)`)
)

// startNode runs serve with args until the test ends, and reads its URL
// and development tokens from its banner.
func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("serve exited %d:\n%s", code, stderr)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s")
		}
	})
	stdout.waitFor(t, exited, "banner", func(s string) bool { return strings.Contains(s, "Demo page:") })
	out := stdout.String()
	m := listeningRE.FindStringSubmatch(out)
	toks := bearerRE.FindAllStringSubmatch(out, -1)
	if m == nil || len(toks) < 2 {
		t.Fatalf("no URL and tokens in the banner:\n%s", out)
	}
	return &node{base: m[1], sub: toks[0][1], pub: toks[1][1], stderr: stderr}
}

func (n *node) publish(t *testing.T, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": "demo", "data": data})
	req, _ := http.NewRequest("POST", n.base+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.pub)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var ack struct{ ID string }
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &ack) != nil || ack.ID == "" {
		t.Fatalf("publish on %s: %s %s", n.base, res.Status, b)
	}
	return ack.ID
}

type polled struct {
	Events []struct{ ID, Data string }
	Next   string
	Reset  *struct{ Reason string }
}

func (n *node) poll(t *testing.T, after string) polled {
	t.Helper()
	req, _ := http.NewRequest("GET", n.base+"/api/poll?topic=demo&after="+url.QueryEscape(after), nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.sub)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p polled
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("poll on %s: %s, %v", n.base, res.Status, err)
	}
	return p
}

// TestServeOnRedis: two serve processes on one Redis, one configured by
// the environment and one by --set flags, share events: what one node
// acknowledged, the other returns, and a cursor from one resumes on the
// other with no gap and no duplicate.
func TestServeOnRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true, Fsync: "always"})
	data := t.TempDir() // one signing secret for both nodes
	t.Setenv("SSEGUARD_CONFIG", "")
	t.Setenv("SSEGUARD_STORE_DRIVER", "redis")
	t.Setenv("SSEGUARD_STORE_REDIS_URL", srv.URL())
	a := startNode(t, "--data", data)
	b := startNode(t, "--data", data, "--set", "store.redis.url="+srv.URL(), "--set", "store.redis.prefix=sseguard")
	if !strings.Contains(a.stderr.String(), `"store":"redis"`) {
		t.Errorf("node a does not log store redis:\n%s", a.stderr)
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, a.publish(t, fmt.Sprint("a", i)))
	}
	first := b.poll(t, "")
	if len(first.Events) != 3 || first.Events[2].ID != ids[2] || first.Reset != nil {
		t.Fatalf("poll on b = %+v, want a's 3 events %q", first, ids)
	}
	cursor := first.Next
	more := b.publish(t, "b0")
	next := a.poll(t, cursor)
	if len(next.Events) != 1 || next.Events[0].ID != more || next.Reset != nil {
		t.Errorf("poll on a after b's cursor = %+v, want only b's event %s", next, more)
	}

	// Live: a stream on b gets what a acknowledges, once; resumed on a
	// with b's last ID it goes on with no gap and no duplicate.
	onB := b.stream(t, "")
	sent := []string{a.publish(t, "live0"), a.publish(t, "live1")}
	got := onB.next(t, 2)
	if got[0].id != sent[0] || got[1].id != sent[1] || got[0].data != "live0" {
		t.Fatalf("stream on b got %+v, want a's events %q", got, sent)
	}
	onB.close()
	missed := b.publish(t, "while away")
	onA := a.stream(t, got[1].id)
	after := a.publish(t, "back")
	if resumed := onA.next(t, 2); resumed[0].id != missed || resumed[1].id != after {
		t.Errorf("stream resumed on a after %s got %+v, want %s then %s", got[1].id, resumed, missed, after)
	}
	onA.close()
}

// sseEvent is one event of a stream, as read from the wire.
type sseEvent struct{ id, typ, data string }

type sseStream struct {
	res    *http.Response
	events chan sseEvent
	beats  chan struct{} // a comment line (heartbeat), dropped when full
	cancel context.CancelFunc
}

// stream opens GET /events?topic=demo with Last-Event-ID lastID (none when
// empty) and reads its events in the background.
func (n *node) stream(t *testing.T, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", n.base+"/events?topic=demo", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+n.sub)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("stream on %s: %s", n.base, res.Status)
	}
	s := &sseStream{res: res, events: make(chan sseEvent, 100), beats: make(chan struct{}, 1), cancel: cancel}
	go func() {
		defer close(s.events)
		var ev sseEvent
		buf := make([]byte, 0, 4096)
		chunk := make([]byte, 4096)
		for {
			k, err := res.Body.Read(chunk)
			buf = append(buf, chunk[:k]...)
			for {
				line, rest, ok := strings.Cut(string(buf), "\n")
				if !ok {
					break
				}
				buf = []byte(rest)
				switch {
				case line == "":
					if ev.id != "" || ev.data != "" {
						s.events <- ev
					}
					ev = sseEvent{}
				case strings.HasPrefix(line, ":"):
					select {
					case s.beats <- struct{}{}:
					default:
					}
				case strings.HasPrefix(line, "event: "):
					ev.typ = line[7:]
				case strings.HasPrefix(line, "id: "):
					ev.id = line[4:]
				case strings.HasPrefix(line, "data: "):
					ev.data = line[6:]
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

// next returns the stream's next n events, failing after 20 s.
func (s *sseStream) next(t *testing.T, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	deadline := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended after %+v, want %d events", out, n)
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("after 20 s the stream has %+v, want %d events", out, n)
		}
	}
	return out
}

func (s *sseStream) close() {
	s.cancel()
	s.res.Body.Close()
	for range s.events {
	}
}

// TestServeRedisUnreachable: serve with a Redis that does not answer
// exits with an error that names the store and the address, not a hang.
func TestServeRedisUnreachable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Kill()
	t.Setenv("SSEGUARD_CONFIG", "")
	start := time.Now()
	code, _, stderr := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--quiet",
		"--set", "store.driver=redis", "--set", "store.redis.url="+srv.URL())
	if code == 0 || !strings.Contains(stderr, "store.redis (redis at "+srv.Addr+")") {
		t.Errorf("serve exited %d:\n%s\nwant an error naming store.redis and %s", code, stderr, srv.Addr)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("serve took %v to give up", d)
	}
}

// problemCode sends req and returns the status, the problem's error code,
// and the Retry-After header, failing on anything but problem+json.
func problemCode(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	req.Close = true // a connection of its own: the server may close idle ones at any time
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode < 400 {
		return res.StatusCode, "", ""
	}
	var prob struct{ Error string }
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") || json.NewDecoder(res.Body).Decode(&prob) != nil {
		t.Fatalf("%s %s: %s with Content-Type %q, want problem+json", req.Method, req.URL.Path, res.Status, res.Header.Get("Content-Type"))
	}
	return res.StatusCode, prob.Error, res.Header.Get("Retry-After")
}

// TestServeRedisDown: with Redis stopped, a publish answers 503
// problem+json store_unavailable with Retry-After within the read timeout,
// never a hang or a 201; /readyz turns 503 store_unavailable within a few
// seconds (the hub's periodic ping) and a poll 503 store_unavailable; an
// open stream stays open with heartbeats. Once Redis is back /readyz
// answers 200 again without any publish, publishing resumes, the open
// stream goes on with no gap, and every acknowledged event is there.
func TestServeRedisDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true, Fsync: "always"})
	t.Setenv("SSEGUARD_CONFIG", "")
	n := startNode(t, "--data", t.TempDir(), "--set", "store.driver=redis", "--set", "store.redis.url="+srv.URL(),
		"--set", "stream.heartbeat=1s")
	n.waitFollowing(t)
	live := n.stream(t, "")
	acked := []string{n.publish(t, "before")}
	if got := live.next(t, 1); got[0].id != acked[0] {
		t.Fatalf("stream got %+v, want %s", got, acked[0])
	}
	ready := func() (int, string) {
		req, _ := http.NewRequest("GET", n.base+"/readyz", nil)
		status, code, _ := problemCode(t, req)
		return status, code
	}
	if status, _ := ready(); status != http.StatusOK {
		t.Fatalf("/readyz with Redis up: %d", status)
	}
	srv.Stop()
	down := time.Now()

	body, _ := json.Marshal(map[string]string{"topic": "demo", "data": "while down"})
	req, _ := http.NewRequest("POST", n.base+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.pub)
	start := time.Now()
	status, code, retry := problemCode(t, req)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publish with Redis down took %v", d)
	}
	if status != http.StatusServiceUnavailable || code != "store_unavailable" || retry == "" {
		t.Errorf("publish with Redis down: %d %q, Retry-After %q; want 503 store_unavailable with Retry-After", status, code, retry)
	}
	eventually.True(t, 10*time.Second, func() bool {
		status, code := ready()
		return status == http.StatusServiceUnavailable && code == "store_unavailable"
	}, "/readyz answers 503 store_unavailable with Redis down")
	if d := time.Since(down); d > 5*time.Second {
		t.Errorf("/readyz took %v to turn 503", d)
	}
	preq, _ := http.NewRequest("GET", n.base+"/api/poll?topic=demo&after="+url.QueryEscape(acked[0]), nil)
	preq.Header.Set("Accept", "application/json")
	preq.Header.Set("Authorization", "Bearer "+n.sub)
	if status, code, retry := problemCode(t, preq); status != http.StatusServiceUnavailable || code != "store_unavailable" || retry == "" {
		t.Errorf("poll with Redis down: %d %q, Retry-After %q; want 503 store_unavailable with Retry-After", status, code, retry)
	}
	// The open stream stays open: heartbeats go on, nothing else comes.
	for range 2 {
		select {
		case <-live.beats:
		case ev, ok := <-live.events:
			t.Fatalf("stream with Redis down: event %+v (open %v), want heartbeats only", ev, ok)
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat on the open stream with Redis down")
		}
	}

	srv.Restart()
	// Ready again with no publish: the hub's ping sees Redis back.
	eventually.True(t, 10*time.Second, func() bool { status, _ := ready(); return status == http.StatusOK },
		"/readyz answers 200 with Redis back, before any publish")
	acked = append(acked, n.publish(t, "after"))
	if got := live.next(t, 1); got[0].id != acked[1] || got[0].typ != "" {
		t.Errorf("the stream open across the outage got %+v, want %s", got, acked[1])
	}
	var got []string
	for _, e := range n.poll(t, "").Events {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, acked) {
		t.Errorf("events after the outage %q, want exactly the acknowledged %q", got, acked)
	}
}

// TestServeRedisLosesData: a Redis without persistence that restarts
// loses every event. A stream resumed with a Last-Event-ID from before
// gets event: reset, then the new events; a poll after such a cursor
// answers with a reset; no new event reuses an ID given before the loss.
func TestServeRedisLosesData(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	t.Setenv("SSEGUARD_CONFIG", "")
	n := startNode(t, "--data", t.TempDir(), "--set", "store.driver=redis", "--set", "store.redis.url="+srv.URL())
	old := []string{n.publish(t, "a0"), n.publish(t, "a1")}
	srv.Kill()
	srv.Restart() // empty: no AOF, no RDB
	var fresh string
	eventually.True(t, 20*time.Second, func() bool {
		req := publishRequest(n, "b0")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var ack struct{ ID string }
		if res.StatusCode != http.StatusCreated || json.NewDecoder(res.Body).Decode(&ack) != nil {
			return false
		}
		fresh = ack.ID
		return true
	}, "publishing resumes on the emptied Redis")
	if slices.Contains(old, fresh) {
		t.Fatalf("the first event after the loss has ID %s, given before the loss too (%q)", fresh, old)
	}
	resumed := n.stream(t, old[1])
	got := resumed.next(t, 2)
	if got[0].typ != "reset" || got[1].id != fresh || got[1].data != "b0" {
		t.Errorf("stream resumed after %s got %+v, want event: reset then %s", old[1], got, fresh)
	}
	p := n.poll(t, old[1])
	if p.Reset == nil || len(p.Events) > 1 || len(p.Events) == 1 && p.Events[0].ID != fresh {
		t.Errorf("poll after %s = %+v, want a reset (and at most the new event %s)", old[1], p, fresh)
	}
	for _, e := range p.Events {
		if slices.Contains(old, e.ID) {
			t.Errorf("poll after the loss gives %s, an ID from before it", e.ID)
		}
	}
}

// waitFollowing waits until /readyz says that n follows the store's feed:
// a stream opened before is cut loose when the feed starts.
func (n *node) waitFollowing(t *testing.T) {
	t.Helper()
	eventually.True(t, 20*time.Second, func() bool {
		res, err := http.Get(n.base + "/readyz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var ans struct {
			Store struct {
				Driver    string
				Following bool
			}
		}
		return json.NewDecoder(res.Body).Decode(&ans) == nil && ans.Store.Driver == "redis" && ans.Store.Following
	}, "/readyz says the node follows the store's feed")
}

// publishRequest is a publish of data to topic demo on n.
func publishRequest(n *node, data string) *http.Request {
	body, _ := json.Marshal(map[string]string{"topic": "demo", "data": data})
	req, _ := http.NewRequest("POST", n.base+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.pub)
	return req
}

// TestServeOnRedisPatterns: store.redis.pattern_prefixes reaches the
// store: with "orders/" declared (by the environment on one node, by --set
// on the other), a pattern subscription on node b gets what node a
// published under the prefix, and a pattern outside it is refused with a
// message naming the key.
func TestServeOnRedisPatterns(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	data := t.TempDir()
	t.Setenv("SSEGUARD_CONFIG", "")
	t.Setenv("SSEGUARD_STORE_DRIVER", "redis")
	t.Setenv("SSEGUARD_STORE_REDIS_URL", srv.URL())
	a := startNode(t, "--data", data, "--set", "store.redis.pattern_prefixes=[orders/]")
	t.Setenv("SSEGUARD_STORE_REDIS_PATTERN_PREFIXES", "[orders/]")
	b := startNode(t, "--data", data)
	secret, err := auth.LoadSecret(filepath.Join(data, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint(secret, "ops", auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(out)
	}
	for _, topic := range []string{"orders/1", "orders/2", "other/1"} {
		if code, out := do("POST", a.base+"/api/publish", `{"topic":"`+topic+`","data":"`+topic+`"}`); code != http.StatusCreated {
			t.Fatalf("publish %s on a: %d %s", topic, code, out)
		}
	}
	code, out := do("GET", b.base+"/api/poll?topic="+url.QueryEscape("orders/*")+"&after=0", "")
	var p polled
	if err := json.Unmarshal([]byte(out), &p); code != http.StatusOK || err != nil {
		t.Fatalf("poll orders/* on b: %d %s", code, out)
	}
	var got []string
	for _, e := range p.Events {
		got = append(got, e.Data)
	}
	if strings.Join(got, " ") != "orders/1 orders/2" {
		t.Errorf("poll orders/* on b got %q, want orders/1 and orders/2: %s", got, out)
	}
	if code, out := do("GET", b.base+"/api/poll?topic="+url.QueryEscape("other/*")+"&after=0", ""); code != http.StatusBadRequest || !strings.Contains(out, "store.redis.pattern_prefixes") {
		t.Errorf("poll other/* on b: %d %s, want 400 naming store.redis.pattern_prefixes", code, out)
	}
}
