package sseguardjs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/eventually"
)

// These tests run sseguard.js in node (drive.test-helper.mjs) against a
// real hub on loopback: the same module the browser loads, with node's
// fetch and WebSocket, one transport at a time.

// line is one event the client dispatched, as the driver writes it.
type line struct {
	Kind      string   `json:"kind"`
	ID        string   `json:"id"`
	Topic     string   `json:"topic"`
	Data      any      `json:"data"`
	EventType string   `json:"eventType"`
	Transport string   `json:"transport"`
	Cursor    string   `json:"cursor"`
	Error     string   `json:"error"`
	Status    int      `json:"status"`
	Fatal     bool     `json:"fatal"`
	Count     int      `json:"count"`
	Sub       string   `json:"sub"`
	Subjects  []string `json:"subjects"`
	Message   string   `json:"message"`
	Reason    string   `json:"reason"`
}

// nodeClient is one driver process.
type nodeClient struct {
	t     *testing.T
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []line
	done  chan struct{}
}

// clientOptions are the Subscription's options, as JSON.
type clientOptions struct {
	URL         string   `json:"url"`
	Topics      []string `json:"topics"`
	Transports  []string `json:"transports,omitempty"`
	LastEventID *string  `json:"lastEventId,omitempty"`
	TokenParam  string   `json:"tokenParam,omitempty"`
	Token       string   `json:"token,omitempty"`
	Presence    bool     `json:"presence,omitempty"`
	RetryMax    int      `json:"retryMax,omitempty"`
}

// startClient runs the driver with o until the test ends.
func startClient(t *testing.T, o clientOptions) *nodeClient {
	t.Helper()
	node := lookPath(t, "node")
	opts, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, nodeArgs(t, node, "drive.test-helper.mjs", string(opts))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &nodeClient{t: t, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("the driver wrote %q: %v", sc.Text(), err)
				continue
			}
			c.mu.Lock()
			c.lines = append(c.lines, l)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the driver closes its subscription and exits
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Error("the node driver did not exit within 10 s of its stdin closing")
		}
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("driver stderr:\n%s\nevents: %+v", stderr.String(), c.all())
		}
	})
	return c
}

func (c *nodeClient) all() []line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

func (c *nodeClient) of(kind string) []line {
	var ls []line
	for _, l := range c.all() {
		if l.Kind == kind {
			ls = append(ls, l)
		}
	}
	return ls
}

// waitFor fails the test unless cond holds of the events within d.
func (c *nodeClient) waitFor(what string, d time.Duration, cond func([]line) bool) []line {
	c.t.Helper()
	var last []line
	if !eventually.Wait(d, func() bool { last = c.all(); return cond(last) }) {
		c.t.Fatalf("%s: not within %v; the client dispatched %+v", what, d, last)
	}
	return last
}

func (c *nodeClient) send(cmd map[string]string) {
	c.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatal(err)
	}
}

// presence asks the driver for presence() of topic with token and
// returns its answer line (kind presence or presence_error).
func (c *nodeClient) presence(topic, token string) line {
	c.t.Helper()
	n := len(c.of("presence")) + len(c.of("presence_error"))
	c.send(map[string]string{"cmd": "presence", "topic": topic, "token": token})
	ls := c.waitFor("the answer of presence()", 15*time.Second, func([]line) bool {
		return len(c.of("presence"))+len(c.of("presence_error")) > n
	})
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].Kind == "presence" || ls[i].Kind == "presence_error" {
			return ls[i]
		}
	}
	panic("unreachable")
}

func hasKind(kind string) func([]line) bool {
	return func(ls []line) bool {
		return slices.ContainsFunc(ls, func(l line) bool { return l.Kind == kind })
	}
}

// publishTo publishes data to topic with a token allowed every topic.
func (p *hubProc) publishTo(t *testing.T, topic, data string) string {
	t.Helper()
	tok, err := auth.Mint(p.secret, "publisher", auth.Permissions{Publish: []string{"*"}}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("publish %q to %q: %d %v", data, topic, res.StatusCode, err)
	}
	return ans.ID
}

// queryTokens lets the driver send its token as ?access_token=, since
// node has no cookie jar.
func queryTokens(c *config.Config) {
	c.Auth.QueryParam = "access_token"
	c.Stream.Retry = config.Duration(200 * time.Millisecond)
}

func mint(t *testing.T, secret []byte, sub string, subscribe ...string) string {
	t.Helper()
	tok, err := auth.Mint(secret, sub, auth.Permissions{Subscribe: subscribe}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ptr[T any](v T) *T { return &v }

// TestPatternAgainstHub: a subscription to orders/* over each transport
// alone, on a real hub with its bolt file, replays the matching history,
// gets live events of orders/1 and orders/2 (and nothing of orders-x or
// other/1), and after the hub restarts on the same address and file
// resumes from its cursor: every event once, in order, none missing.
func TestPatternAgainstHub(t *testing.T) {
	for _, transport := range []string{"sse", "ws", "poll"} {
		t.Run(transport, func(t *testing.T) {
			h := newHub(t, queryTokens)
			tok := mint(t, h.secret, "reader", "orders/*")
			var want []line
			pub := func(topic, data string) {
				h.publishTo(t, topic, data)
				if strings.HasPrefix(topic, "orders/") {
					want = append(want, line{Topic: topic, Data: data})
				}
			}
			// History before the client starts: replayed from "0".
			pub("orders/1", "h1")
			pub("other/1", "not mine")
			pub("orders/2", "h2")
			pub("orders-x", "not mine either")

			c := startClient(t, clientOptions{URL: h.URL, Topics: []string{"orders/*"}, Transports: []string{transport},
				LastEventID: ptr("0"), TokenParam: "access_token", Token: tok, RetryMax: 2000})
			c.waitFor("open", 20*time.Second, hasKind("open"))
			for i := 1; i <= 3; i++ {
				pub("orders/1", fmt.Sprintf("a%d", i))
				pub("other/1", "no")
				pub("orders/2", fmt.Sprintf("b%d", i))
			}
			last := want[len(want)-1].Data
			c.waitFor("the live events", 20*time.Second, func(ls []line) bool {
				return slices.ContainsFunc(ls, func(l line) bool { return l.Kind == "message" && l.Data == last })
			})

			// A forced reconnect: the hub goes away and comes back on the
			// same address and file; events published meanwhile are owed.
			opens := len(c.of("open"))
			h.stop()
			h = startHub(t, h.addr, h.db, h.secret, queryTokens)
			for i := 4; i <= 6; i++ {
				pub("orders/2", fmt.Sprintf("b%d", i))
				pub("orders/1", fmt.Sprintf("a%d", i))
				pub("orders/eu/1", fmt.Sprintf("eu%d", i)) // deeper topics match too
			}
			pub("orders/3", "end")
			got := c.waitFor("the last event", 30*time.Second, func(ls []line) bool {
				return slices.ContainsFunc(ls, func(l line) bool { return l.Kind == "message" && l.Data == "end" })
			})

			// A stream and a socket are new connections, each opened; a
			// poll is a request per round, open since its first answer.
			if n := len(c.of("open")); transport != "poll" && n <= opens {
				t.Errorf("%d opens after the restart, want a new one", n-opens)
			}
			var msgs []line
			for _, l := range got {
				if l.Kind == "message" {
					msgs = append(msgs, l)
				}
				if l.Kind == "error" && l.Fatal {
					t.Errorf("a fatal error: %+v", l)
				}
				if l.Kind == "transport" && l.Transport != transport {
					t.Errorf("switched to %s: %+v", l.Transport, l)
				}
			}
			var gotData, wantData []string
			for _, m := range msgs {
				gotData = append(gotData, fmt.Sprint(m.Data))
			}
			for _, w := range want {
				wantData = append(wantData, fmt.Sprint(w.Data))
			}
			if !slices.Equal(gotData, wantData) {
				t.Fatalf("got %q, want exactly %q", gotData, wantData)
			}
			ids := map[string]bool{}
			for i, m := range msgs {
				if ids[m.ID] || m.ID == "" {
					t.Errorf("event %d has the id %q, empty or seen before", i, m.ID)
				}
				ids[m.ID] = true
				if m.Cursor != m.ID {
					t.Errorf("after event %q the cursor is %q", m.ID, m.Cursor)
				}
				// SSE does not name an event's topic; the others do.
				wantTopic := want[i].Topic
				if transport == "sse" {
					wantTopic = ""
				}
				if m.Topic != wantTopic {
					t.Errorf("event %q (%v): topic %q, want %q", m.ID, m.Data, m.Topic, wantTopic)
				}
			}
		})
	}
}

// TestPatternRefusedAgainstHub: a pattern the hub refuses stops the
// client with the problem's code as a fatal error event: 400 for a
// pattern outside the grammar, 403 for one wider than the token's grant,
// on the default transport chain (SSE first) and on polling alone.
func TestPatternRefusedAgainstHub(t *testing.T) {
	h := newHub(t, queryTokens)
	eu := mint(t, h.secret, "eu-reader", "orders/eu/*")
	cases := []struct {
		name, pattern, token, code string
		status                     int
	}{
		{"two stars", "orders/**", eu, "bad_request", http.StatusBadRequest},
		{"a dot segment", "orders/../*", eu, "bad_request", http.StatusBadRequest},
		{"wider than the grant", "orders/*", eu, "topic_forbidden", http.StatusForbidden},
	}
	for _, tc := range cases {
		for _, transports := range [][]string{nil, {"poll"}} {
			t.Run(tc.name+"/"+strings.Join(append([]string{"default"}, transports...), ","), func(t *testing.T) {
				c := startClient(t, clientOptions{URL: h.URL, Topics: []string{tc.pattern}, Transports: transports,
					TokenParam: "access_token", Token: tc.token})
				ls := c.waitFor("closed", 20*time.Second, hasKind("close"))
				var errs []line
				for _, l := range ls {
					if l.Kind == "error" {
						errs = append(errs, l)
					}
				}
				if len(errs) != 1 || errs[0].Error != tc.code || errs[0].Status != tc.status || !errs[0].Fatal {
					t.Errorf("errors %+v, want one fatal %s %d", errs, tc.code, tc.status)
				}
				if len(c.of("message")) != 0 || len(c.of("open")) != 0 {
					t.Errorf("it opened or delivered: %+v", ls)
				}
			})
		}
	}
}

// presenceToken mints a token for sub that may subscribe to chat/* (which
// presenceConfig tracks) and room/* (which it does not) and, with claim,
// carries the presence claim: "presence": true inside the sseguard claim
// (docs/presence.md; a top-level one grants nothing).
func presenceToken(t *testing.T, secret []byte, sub string, claim bool) string {
	t.Helper()
	now := time.Now()
	perms := map[string]any{"subscribe": []string{"chat/*", "room/*"}}
	claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), auth.ClaimNamespace: perms}
	if claim {
		perms["presence"] = true
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// presenceConfig is the hub's configuration for presence on chat/*, as
// the contract names it.
const presenceConfig = `
presence:
  topics: ["chat/*"]
auth:
  query_param: access_token
  anonymous_subscribe: ["demo", "chat/*"]
stream:
  retry: 200ms
`

// withPresence starts a hub that tracks chat/* and not room/* or demo,
// after checking that a hub with the default configuration (presence off)
// answers /api/presence with 404 presence_off.
func withPresence(t *testing.T) *hubProc {
	t.Helper()
	// demo: anonymous readers may read it, and nothing is tracked by default.
	res, err := http.Get(newHub(t).URL + "/api/presence?topic=" + url.QueryEscape("demo"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p struct{ Error string }
	_ = json.NewDecoder(res.Body).Decode(&p)
	if res.StatusCode != http.StatusNotFound || p.Error != "presence_off" {
		t.Fatalf("GET /api/presence?topic=demo with presence off: %s %q, want 404 presence_off", res.Status, p.Error)
	}
	parsed, err := config.Parse([]byte(presenceConfig))
	if err != nil {
		t.Fatalf("the hub serves /api/presence but does not take the contract's presence.topics: %v\n%s", err, presenceConfig)
	}
	return newHub(t, func(c *config.Config) { *c = *parsed })
}

// TestPresenceAgainstHub: against a hub that tracks chat/*, presence()
// counts the open streams and sockets and lists subjects only to a token
// with the presence claim; a subscription with presence: true gets join
// and leave events for another subscriber, over SSE and over WebSocket,
// and its cursor does not move with them; presence on a topic not
// tracked stops the subscription with 400.
func TestPresenceAgainstHub(t *testing.T) {
	h := withPresence(t)
	alice := presenceToken(t, h.secret, "alice", true)
	plain := presenceToken(t, h.secret, "carol", false)
	for _, transport := range []string{"sse", "ws"} {
		t.Run(transport, func(t *testing.T) {
			topic := "chat/" + transport
			first := h.publishTo(t, topic, "before")
			watcher := startClient(t, clientOptions{URL: h.URL, Topics: []string{topic}, Transports: []string{transport},
				LastEventID: ptr("0"), TokenParam: "access_token", Token: alice, Presence: true})
			watcher.waitFor("open and the first event", 20*time.Second, func(ls []line) bool {
				return hasKind("open")(ls) && len(watcher.of("message")) == 1
			})

			// Presence is cluster state: counts settle within seconds.
			var p line
			if !eventually.Wait(10*time.Second, func() bool { p = watcher.presence(topic, alice); return p.Count == 1 }) {
				t.Fatalf("presence(%s) with the claim: %+v, want count 1", topic, p)
			}
			if p.Kind != "presence" || !slices.Equal(p.Subjects, []string{"alice"}) {
				t.Errorf("presence(%s) with the claim: %+v, want subjects [alice]", topic, p)
			}
			if q := watcher.presence(topic, plain); q.Kind != "presence" || q.Subjects != nil || q.Count != 1 {
				t.Errorf("presence(%s) without the claim: %+v, want count 1 and no subjects", topic, q)
			}
			if q := watcher.presence("chat/*", alice); q.Kind != "presence_error" || q.Error != "bad_request" || q.Status != 400 {
				t.Errorf("presence of a pattern: %+v, want 400 bad_request", q)
			}
			if q := watcher.presence("room/1", alice); q.Kind != "presence_error" || q.Error != "presence_off" || q.Status != 404 {
				t.Errorf("presence of an untracked topic: %+v, want 404 presence_off", q)
			}

			bob := startClient(t, clientOptions{URL: h.URL, Topics: []string{topic}, Transports: []string{transport},
				TokenParam: "access_token", Token: presenceToken(t, h.secret, "bob", false)})
			bob.waitFor("bob open", 20*time.Second, hasKind("open"))
			isBob := func(kind string, count int) func([]line) bool {
				return func(ls []line) bool {
					return slices.ContainsFunc(ls, func(l line) bool { return l.Kind == kind && l.Sub == "bob" && l.Count == count })
				}
			}
			watcher.waitFor("bob's join", 15*time.Second, isBob("join", 2))
			bob.send(map[string]string{"cmd": "close"})
			ls := watcher.waitFor("bob's leave", 15*time.Second, isBob("leave", 1))
			// Bob's join and leave (whether the watcher hears of its own
			// join, and when, the contract leaves open).
			for _, l := range ls {
				if l.Kind != "join" && l.Kind != "leave" || l.Sub != "bob" {
					continue
				}
				if l.Topic != topic || l.Cursor != first || l.Transport != transport {
					t.Errorf("%s: topic %q, cursor %q, transport %q; want %q, %q (the last event's), %q", l.Kind, l.Topic, l.Cursor, l.Transport, topic, first, transport)
				}
				if d, ok := l.Data.(map[string]any); !ok || d["topic"] != topic {
					t.Errorf("%s: data %#v, want the parsed object", l.Kind, l.Data)
				}
			}
			if n := len(watcher.of("message")); n != 1 {
				t.Errorf("%d messages, want 1: join and leave are not messages", n)
			}
		})
	}

	t.Run("untracked", func(t *testing.T) {
		c := startClient(t, clientOptions{URL: h.URL, Topics: []string{"demo"}, Presence: true})
		ls := c.waitFor("closed", 20*time.Second, hasKind("close"))
		if errs := c.of("error"); len(errs) != 1 || errs[0].Error != "bad_request" || errs[0].Status != 400 || !errs[0].Fatal {
			t.Errorf("presence on an untracked topic: %+v, want one fatal 400 bad_request", ls)
		}
	})
}
