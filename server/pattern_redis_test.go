package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/redis"
)

// patternNodes starts n nodes over one Redis (or a 3-master Cluster) whose
// stores declare prefixes.
func patternNodes(t *testing.T, n int, cluster bool, prefixes ...string) []*servertest.Server {
	t.Helper()
	var client func() goredis.UniversalClient
	if cluster {
		c := redistest.StartCluster(t, 3, 0, redistest.Options{})
		client = func() goredis.UniversalClient {
			return goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), MaxRetries: -1})
		}
	} else {
		srv := redistest.Start(t, redistest.Options{})
		client = func() goredis.UniversalClient { return goredis.NewClient(&goredis.Options{Addr: srv.Addr}) }
	}
	stores := make([]store.Store, n)
	for i := range stores { // a client of its own per node, as processes have
		st, err := redis.Open(context.Background(), redis.Config{Client: client(), PatternPrefixes: prefixes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		stores[i] = st
	}
	return startNodes(t, stores)
}

// patternStream opens GET /events?topic=<pattern> on a node with a token
// that may subscribe to grant; lastID, when not empty, resumes.
func patternStream(t *testing.T, ctx context.Context, ts *servertest.Server, pattern, grant, lastID string) *sse.Parser {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events?topic="+url.QueryEscape(pattern), nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+ts.Token(t, "reader", auth.Permissions{Subscribe: []string{grant}}))
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events?topic=%s on %s: %d", pattern, ts.Addr, res.StatusCode)
	}
	return sse.NewParser(res.Body)
}

// TestPatternAcrossNodesRedis: a token allowed orders/* subscribes to
// orders/* on node B and gets what node A publishes to orders/1 and
// orders/2, nothing else; resumed on node A with B's last ID it gets
// exactly what was published on either node while it was away (a topic
// new meanwhile included), then live events, none twice. On one Redis and
// on a 3-master Cluster.
func TestPatternAcrossNodesRedis(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		name := "single"
		if cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			if cluster && testing.Short() {
				t.Skip("starts a Redis Cluster")
			}
			nodes := patternNodes(t, 2, cluster, "orders/", "chat/")
			a, b := nodes[0], nodes[1]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			onB, stopB := context.WithCancel(ctx)
			pb := patternStream(t, onB, b, "orders/*", "orders/*", "")
			publishOn(t, a, "orders/1", "o1")
			publishOn(t, a, "misc", "m1")
			publishOn(t, a, "chat/1", "c1")
			publishOn(t, a, "orders/2", "o2")
			publishOn(t, b, "orders/1", "o3")
			got := readEvents(t, pb, 3)
			checkData(t, got, "o1", "o2", "o3")
			last := got[2].id
			stopB()

			// Away: on both nodes, a topic new to the pattern among them.
			publishOn(t, b, "orders/2", "o4")
			publishOn(t, a, "chat/1", "c2")
			publishOn(t, a, "orders/eu/9", "o5")
			publishOn(t, b, "orders/1", "o6")

			pa := patternStream(t, ctx, a, "orders/*", "orders/*", last)
			replayed := readEvents(t, pa, 3)
			checkData(t, replayed, "o4", "o5", "o6")
			publishOn(t, b, "orders/3", "o7")
			publishOn(t, a, "misc", "m2")
			publishOn(t, a, "orders/2", "o8")
			live := readEvents(t, pa, 2)
			checkData(t, live, "o7", "o8")
			// Nothing is left after the stream's last cursor, on either node's
			// store.
			for _, ts := range nodes {
				page, err := ts.Hub.Store().Read(ctx, []string{"orders/*"}, live[1].id, 0)
				if err != nil || len(page.Events) != 0 || page.Truncated {
					t.Errorf("Read after the stream's last cursor %q = %+v, %v; want nothing", live[1].id, page, err)
				}
			}
		})
	}
}

// checkData checks that got holds want's data in that order: one index
// gives a pattern its events in commit order.
func checkData(t *testing.T, got []received, want ...string) {
	t.Helper()
	var data []string
	for _, r := range got {
		data = append(data, r.data)
	}
	if strings.Join(data, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", data, want)
	}
}

// TestPatternOutsidePrefixesRedis: on Redis a pattern under no declared
// prefix (or spanning none: "*" without "") is a 400 problem that names
// store.redis.pattern_prefixes, on /events, /api/poll and /ws alike.
func TestPatternOutsidePrefixesRedis(t *testing.T) {
	ts := patternNodes(t, 1, false, "orders/")[0]
	tok := ts.Token(t, "reader", auth.Permissions{Subscribe: []string{"*"}})
	for _, path := range []string{"/events", "/api/poll", "/ws"} {
		for _, pattern := range []string{"*", "misc/*", "order*"} {
			req, _ := http.NewRequest("GET", ts.URL+path+"?topic="+url.QueryEscape(pattern), nil)
			req.Header.Set("Accept", "text/event-stream, application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			if path == "/ws" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var prob struct {
				Status int
				Error  string
				Detail string
			}
			err = json.NewDecoder(res.Body).Decode(&prob)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest || err != nil || prob.Error != "bad_request" ||
				!strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") ||
				!strings.Contains(prob.Detail, "store.redis.pattern_prefixes") {
				t.Errorf("GET %s?topic=%s: %d %s %+v (%v), want 400 problem+json naming store.redis.pattern_prefixes",
					path, pattern, res.StatusCode, res.Header.Get("Content-Type"), prob, err)
			}
		}
	}
	// Under the prefix, the same token is served.
	patternStream(t, context.Background(), ts, "orders/eu/*", "*", "")
}

// TestPatternCursorOfAnotherPatternRedis: the Last-Event-ID of a stream of
// orders/eu/* given to a stream of orders/us/* (both in the orders/
// index) is not a position in orders/us/*: the second stream gets every
// orders/us event, none skipped because the first pattern's position in
// the shared index was past it.
func TestPatternCursorOfAnotherPatternRedis(t *testing.T) {
	ts := patternNodes(t, 1, false, "orders/")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publishOn(t, ts, "orders/us/1", "u1")
	publishOn(t, ts, "orders/eu/1", "e1")
	publishOn(t, ts, "orders/us/2", "u2")
	publishOn(t, ts, "orders/eu/1", "e2")
	eu := patternStream(t, ctx, ts, "orders/eu/*", "orders/*", "")

	// The eu stream started live: give it an event, take its cursor.
	publishOn(t, ts, "orders/eu/2", "e3")
	got := readEvents(t, eu, 1)
	checkData(t, got, "e3")
	us := patternStream(t, ctx, ts, "orders/us/*", "orders/*", got[0].id)
	checkData(t, readEvents(t, us, 2), "u1", "u2")
}
