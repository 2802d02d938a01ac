package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/presence"
	"github.com/sseguard/sseguard/sse"
)

// withPresence tracks topics, flushes every 20 ms, and lets anonymous
// clients read chat/*.
func withPresence(topics ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.Presence.Topics = topics
		c.Presence.FlushInterval = config.Duration(20 * time.Millisecond)
		c.Presence.TTL = config.Duration(time.Second)
		anon := []string{"chat/*"}
		c.Auth.AnonymousSubscribe = &anon
	}
}

// mintFor returns a token of subject with perms, valid for an hour.
func mintFor(t testing.TB, key []byte, subject string, perms auth.Permissions) string {
	t.Helper()
	tok, err := auth.Mint(key, subject, perms, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var (
	chatPerms    = auth.Permissions{Subscribe: []string{"chat/*"}}
	watcherPerms = auth.Permissions{Subscribe: []string{"chat/*"}, Presence: true}
)

// presenceSeen is GET /api/presence as a client decodes it: Subjects nil
// when the member is absent.
type presenceSeen struct {
	status   int
	Topic    string    `json:"topic"`
	Count    int       `json:"count"`
	Subjects *[]string `json:"subjects"`
	Code     string    `json:"error"`
}

func getPresence(t testing.TB, base, tok, topic string) presenceSeen {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/presence?topic="+url.QueryEscape(topic), nil)
	req.Header.Set("Accept", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var p presenceSeen
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET /api/presence?topic=%s: %d %q: %v", topic, res.StatusCode, body, err)
	}
	p.status = res.StatusCode
	return p
}

// waitPresence waits until GET /api/presence on every base gives count
// and, for a token with the claim, subjects.
func waitPresence(t testing.TB, bases []string, tok, topic string, count int, subjects []string) {
	t.Helper()
	var last presenceSeen
	eventually.True(t, 10*time.Second, func() bool {
		for _, b := range bases {
			last = getPresence(t, b, tok, topic)
			if last.status != 200 || last.Count != count || (subjects != nil && (last.Subjects == nil || !slices.Equal(*last.Subjects, subjects))) {
				return false
			}
		}
		return true
	}, "presence of %s is %d %v (last answer: %d count %d subjects %v)", topic, count, subjects, last.status, last.Count, last.Subjects)
}

// sseOpen opens /events?query with tok ("" for anonymous) and returns
// its parser and a function that closes it.
func sseOpen(t testing.TB, base, tok, query string) (*sse.Parser, func()) {
	t.Helper()
	// A deadline, so that an event that never comes fails the test.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("GET /events?%s: %d %s", query, res.StatusCode, b)
	}
	closeIt := func() { cancel(); res.Body.Close() }
	t.Cleanup(closeIt)
	return sse.NewParser(res.Body), closeIt
}

// wsOpen opens /ws?query with tok.
func wsOpen(t testing.TB, base, tok, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?"+query,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial /ws?%s: %v (%d)", query, err, status)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// presenceEvent is a join or leave as a client sees it.
type presenceEvent struct {
	typ   string
	Topic string  `json:"topic"`
	Count int     `json:"count"`
	Sub   *string `json:"sub"`
}

func (e presenceEvent) String() string {
	sub := "-"
	if e.Sub != nil {
		sub = *e.Sub
	}
	return fmt.Sprintf("%s %s %d %s", e.typ, e.Topic, e.Count, sub)
}

// nextSSEPresence reads events until a join or leave, checking that it
// carries no id and leaves the cursor alone.
func nextSSEPresence(t testing.TB, p *sse.Parser) presenceEvent {
	t.Helper()
	for {
		before := p.LastEventID()
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("reading presence events: %v", err)
		}
		if ev.Type != PresenceJoinEvent && ev.Type != PresenceLeaveEvent {
			continue
		}
		if p.LastEventID() != before {
			t.Fatalf("a %s event moved the cursor: %q -> %q", ev.Type, before, p.LastEventID())
		}
		e := presenceEvent{typ: ev.Type}
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			t.Fatalf("%s data %q: %v", ev.Type, ev.Data, err)
		}
		return e
	}
}

// nextWSPresence reads messages until a join or leave.
func nextWSPresence(t testing.TB, c *websocket.Conn) presenceEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading presence messages: %v", err)
		}
		var m struct {
			ID    *string         `json:"id"`
			Type  string          `json:"type"`
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message %q: %v", b, err)
		}
		if m.Type != PresenceJoinEvent && m.Type != PresenceLeaveEvent {
			continue
		}
		if m.ID != nil {
			t.Fatalf("a %s message has an id: %s", m.Type, b)
		}
		e := presenceEvent{typ: m.Type}
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Topic != m.Topic {
			t.Fatalf("%s data %s (topic %q): %v", m.Type, m.Data, m.Topic, err)
		}
		return e
	}
}

func sub(s string) *string { return &s }

// wantEvent checks a presence event.
func wantEvent(t testing.TB, got presenceEvent, typ, topic string, count int, subject *string) {
	t.Helper()
	want := presenceEvent{typ: typ, Topic: topic, Count: count, Sub: subject}
	if got.String() != want.String() {
		t.Fatalf("presence event %v, want %v", got, want)
	}
}

// TestPresenceCountsOneNode: on one node the count is the number of open
// streams and WebSockets subscribed to the topic by name, anonymous ones
// included; a pattern subscription and a poll do not count; subjects are
// listed, once each and sorted, only to a token with the presence claim.
func TestPresenceCountsOneNode(t *testing.T) {
	ts := start(t, withPresence("chat/*"), nil)
	watcher := mintFor(t, testKey, "zed", watcherPerms)
	plain := mintFor(t, testKey, "carol", chatPerms)
	alice := mintFor(t, testKey, "alice", chatPerms)
	bob := mintFor(t, testKey, "bob", chatPerms)
	bases := []string{ts.base}

	waitPresence(t, bases, watcher, "chat/1", 0, []string{})
	_, closeA1 := sseOpen(t, ts.base, alice, "topic=chat/1")
	_, closeA2 := sseOpen(t, ts.base, alice, "topic=chat/1&topic=chat/2")
	ws := wsOpen(t, ts.base, bob, "topic=chat/1")
	_, closeAnon := sseOpen(t, ts.base, "", "topic=chat/1")
	sseOpen(t, ts.base, bob, "topic=chat/*") // a pattern: not counted on chat/1
	if res, err := http.Get(ts.base + "/api/poll?topic=chat/1&after="); err == nil {
		res.Body.Close() // a poll is not a connection
	}
	waitPresence(t, bases, watcher, "chat/1", 4, []string{"alice", "bob"})
	waitPresence(t, bases, watcher, "chat/2", 1, []string{"alice"})
	if p := getPresence(t, ts.base, plain, "chat/1"); p.status != 200 || p.Count != 4 || p.Subjects != nil {
		t.Fatalf("without the claim: %+v, want count 4 and no subjects", p)
	}
	if p := getPresence(t, ts.base, "", "chat/1"); p.status != 200 || p.Count != 4 || p.Subjects != nil {
		t.Fatalf("anonymous: %+v, want count 4 and no subjects", p)
	}

	closeA1()
	waitPresence(t, bases, watcher, "chat/1", 3, []string{"alice", "bob"})
	closeA2()
	_ = ws.Close(websocket.StatusNormalClosure, "")
	closeAnon()
	waitPresence(t, bases, watcher, "chat/1", 0, []string{})
	waitPresence(t, bases, watcher, "chat/2", 0, []string{})
}

// TestPresenceRefusals: GET /api/presence checks what subscribing checks,
// and refuses patterns, several topics and untracked topics.
func TestPresenceRefusals(t *testing.T) {
	ts := start(t, func(c *config.Config) {
		withPresence("chat/*")(c)
		c.CORS.AllowedOrigins = []string{"https://app.test"}
	}, nil)
	other := mintFor(t, testKey, "mallory", auth.Permissions{Subscribe: []string{"news"}, Presence: true})
	reader := mintFor(t, testKey, "carol", auth.Permissions{Subscribe: []string{"*"}})
	for _, tc := range []struct {
		name, query, tok string
		header           []string
		status           int
		code             string
	}{
		{"a topic the token may not read", "topic=chat/1", other, nil, 403, policy.CodeTopicForbidden},
		{"no token, a topic anonymous may not read", "topic=news", "", nil, 401, policy.CodeTokenMissing},
		{"a pattern", "topic=chat/*", reader, nil, 400, policy.CodeBadRequest},
		{"two topics", "topic=chat/1&topic=chat/2", reader, nil, 400, policy.CodeBadRequest},
		{"no topic", "", reader, nil, 400, policy.CodeBadRequest},
		{"an untracked topic", "topic=news", reader, nil, 404, policy.CodePresenceOff},
		{"a reserved topic is never tracked", "topic=sseguard:dashboard", mintFor(t, testKey, "op", auth.Permissions{Subscribe: []string{"sseguard:dashboard"}}), nil, 404, policy.CodePresenceOff},
		{"a foreign origin", "topic=chat/1", reader, []string{"Origin", "https://evil.test"}, 403, policy.CodeOriginForbidden},
		{"HTML only", "topic=chat/1", reader, []string{"Accept", "text/html"}, 406, policy.CodeAcceptNotAcceptable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.base+"/api/presence?"+tc.query, nil)
			if tc.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			checkProblem(t, res, tc.status, tc.code)
		})
	}
	t.Run("hardened JSON headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", ts.base+"/api/presence?topic=chat/1", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		for name, want := range map[string]string{"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"} {
			if got := res.Header.Get(name); got != want {
				t.Errorf("%s: %q, want %q", name, got, want)
			}
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
	})
	t.Run("presence=1 on untracked topics", func(t *testing.T) {
		for _, path := range []string{"/events?topic=news&presence=1", "/events?topic=chat/*&presence=1", "/events?topic=chat/1&presence=yes"} {
			req, _ := http.NewRequest("GET", ts.base+path, nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+reader)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			checkProblem(t, res, 400, policy.CodeBadRequest)
		}
	})
}

// TestPresenceOffByDefault: without presence.topics, GET /api/presence
// answers presence_off and presence=1 is refused.
func TestPresenceOffByDefault(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	if p := getPresence(t, ts.base, tok, "chat/1"); p.status != 404 || p.Code != policy.CodePresenceOff {
		t.Fatalf("presence off: %+v, want 404 presence_off", p)
	}
	req, _ := http.NewRequest("GET", ts.base+"/events?topic=chat/1&presence=1", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkProblem(t, res, 400, policy.CodeBadRequest)
}

// TestPresenceEventsOneNode: subscribers that asked with presence=1 get a
// join when a subject's first connection opens and a leave when its last
// one closes, without id, with sub only for the claim holder, over SSE
// (parked and not) and WebSocket; events of the topic still flow, and the
// cursor is the events' alone.
func TestPresenceEventsOneNode(t *testing.T) {
	ts := start(t, withPresence("chat/*"), nil)
	watcher := mintFor(t, testKey, "zed", watcherPerms)
	plain := mintFor(t, testKey, "carol", chatPerms)
	alice := mintFor(t, testKey, "alice", chatPerms)
	pub := mintFor(t, testKey, "pub", auth.Permissions{Publish: []string{"chat/*"}})

	claimSSE, _ := sseOpen(t, ts.base, watcher, "topic=chat/1&presence=1")
	wantEvent(t, nextSSEPresence(t, claimSSE), PresenceJoinEvent, "chat/1", 1, sub("zed"))
	plainSSE, _ := sseOpen(t, ts.base, plain, "topic=chat/1&presence=1&heartbeat=event")
	wantEvent(t, nextSSEPresence(t, claimSSE), PresenceJoinEvent, "chat/1", 2, sub("carol"))
	wantEvent(t, nextSSEPresence(t, plainSSE), PresenceJoinEvent, "chat/1", 2, nil)
	plainWS := wsOpen(t, ts.base, plain, "topic=chat/1&presence=1")
	claimWS := wsOpen(t, ts.base, watcher, "topic=chat/1&presence=1")
	waitPresence(t, []string{ts.base}, watcher, "chat/1", 4, []string{"carol", "zed"})

	_, closeA1 := sseOpen(t, ts.base, alice, "topic=chat/1")
	wantEvent(t, nextSSEPresence(t, claimSSE), PresenceJoinEvent, "chat/1", 5, sub("alice"))
	wantEvent(t, nextSSEPresence(t, plainSSE), PresenceJoinEvent, "chat/1", 5, nil)
	wantEvent(t, nextWSPresence(t, claimWS), PresenceJoinEvent, "chat/1", 5, sub("alice"))
	wantEvent(t, nextWSPresence(t, plainWS), PresenceJoinEvent, "chat/1", 5, nil)

	// A second connection of alice changes the count, announces nothing;
	// an event published meanwhile arrives with its id.
	_, closeA2 := sseOpen(t, ts.base, alice, "topic=chat/1")
	waitPresence(t, []string{ts.base}, watcher, "chat/1", 6, nil)
	id := ts.mustPublish(t, pub, "chat/1", "hello")
	for {
		ev := nextEvent(t, claimSSE)
		if ev.Type == PresenceJoinEvent || ev.Type == PresenceLeaveEvent {
			t.Fatalf("a second connection of one subject was announced: %s %s", ev.Type, ev.Data)
		}
		if ev.Data == "hello" {
			if claimSSE.LastEventID() != id {
				t.Fatalf("the event's id %q, want %q", claimSSE.LastEventID(), id)
			}
			break
		}
	}
	closeA1()
	closeA2()
	wantEvent(t, nextSSEPresence(t, claimSSE), PresenceLeaveEvent, "chat/1", 4, sub("alice"))
	wantEvent(t, nextSSEPresence(t, plainSSE), PresenceLeaveEvent, "chat/1", 4, nil)
	wantEvent(t, nextWSPresence(t, claimWS), PresenceLeaveEvent, "chat/1", 4, sub("alice"))

	// Anonymous connections are announced each, without sub.
	_, closeAnon := sseOpen(t, ts.base, "", "topic=chat/1")
	wantEvent(t, nextSSEPresence(t, claimSSE), PresenceJoinEvent, "chat/1", 5, nil)
	closeAnon()
	wantEvent(t, nextSSEPresence(t, claimSSE), PresenceLeaveEvent, "chat/1", 4, nil)
}

// TestEncodePresence: a presence event has no id on either transport (it
// is not history and must not move a cursor), and its sub only for the
// claim's holder and a subject that has one.
func TestEncodePresence(t *testing.T) {
	e := presence.Event{Topic: "chat/1", Join: true, Subject: "alice", Count: 3}
	for _, tc := range []struct {
		name   string
		format presenceFormat
		claim  bool
		event  presence.Event
		want   string
	}{
		{"sse with the claim", presenceSSE, true, e, "event: sseguard.join\ndata: {\"topic\":\"chat/1\",\"count\":3,\"sub\":\"alice\"}\n\n"},
		{"sse without", presenceSSE, false, e, "event: sseguard.join\ndata: {\"topic\":\"chat/1\",\"count\":3}\n\n"},
		{"sse anonymous leave", presenceSSE, true, presence.Event{Topic: "chat/1", Count: 2}, "event: sseguard.leave\ndata: {\"topic\":\"chat/1\",\"count\":2}\n\n"},
		{"ws with the claim", presenceWS, true, e, `{"type":"sseguard.join","topic":"chat/1","data":{"topic":"chat/1","count":3,"sub":"alice"}}`},
		{"ws without", presenceWS, false, presence.Event{Topic: "chat/1", Subject: "alice", Count: 2}, `{"type":"sseguard.leave","topic":"chat/1","data":{"topic":"chat/1","count":2}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(encodePresence(tc.event, tc.format, tc.claim)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPresenceSubject: only a token's sub is listed; a client
// certificate's name and anonymous principals are counted unnamed.
func TestPresenceSubject(t *testing.T) {
	for _, tc := range []struct {
		p    auth.Principal
		want string
	}{
		{auth.Principal{Source: auth.SourceJWT, Subject: "alice"}, "alice"},
		{auth.Principal{Source: auth.SourceMTLS, Subject: "spiffe://corp/svc/a"}, ""},
		{auth.Principal{Source: auth.SourceAnonymous, Anonymous: true}, ""},
	} {
		if got := presenceSubject(&tc.p); got != tc.want {
			t.Errorf("%s %q: listed as %q, want %q", tc.p.Source, tc.p.Subject, got, tc.want)
		}
	}
}
