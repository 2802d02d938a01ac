package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
	"github.com/sseguard/sseguard/store/redis"
)

// sharedStores are the stores that several nodes share, each as a
// function that returns one store per node (the first also serves the
// test's own reads).
var sharedStores = []struct {
	name  string
	nodes func(t *testing.T, n int) []store.Store
}{
	{"memory.Shared", func(t *testing.T, n int) []store.Store {
		st := memory.NewShared(store.Retention{})
		out := make([]store.Store, n)
		for i := range out {
			out[i] = st // one process: the nodes share the store itself
		}
		return out
	}},
	{"redis", func(t *testing.T, n int) []store.Store {
		srv := redistest.Start(t, redistest.Options{})
		out := make([]store.Store, n)
		for i := range out { // a client of its own per node, as processes have
			st, err := redis.Open(context.Background(), redis.Config{Client: goredis.NewClient(&goredis.Options{Addr: srv.Addr})})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			out[i] = st
		}
		return out
	}},
}

// forEachSharedStore runs test on n nodes over each shared store.
func forEachSharedStore(t *testing.T, n int, test func(t *testing.T, st store.Store, nodes []*servertest.Server)) {
	for _, ss := range sharedStores {
		t.Run(ss.name, func(t *testing.T) {
			stores := ss.nodes(t, n)
			test(t, stores[0], startNodes(t, stores))
		})
	}
}

// startNodes serves a hub over each store, as the nodes of a cluster, and
// waits until each follows the store's feed.
func startNodes(t *testing.T, stores []store.Store) []*servertest.Server {
	t.Helper()
	nodes := make([]*servertest.Server, len(stores))
	for i, st := range stores {
		nodes[i] = servertest.Start(t, nil, servertest.WithStore(st))
		waitFed(t, nodes[i])
	}
	return nodes
}

// waitFed publishes to a topic no test reads until the node's feed
// delivers it to a subscriber that was not cut: a stream opened after it
// is not cut loose by the feed starting.
func waitFed(t *testing.T, ts *servertest.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		probe, err := ts.Hub.Subscribe([]string{"probe"})
		if err != nil {
			t.Fatal(err)
		}
		probe.GoLive("")
		if _, err := ts.Hub.Publish(context.Background(), store.Record{Topic: "probe", Data: "x"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-probe.Ready():
		case <-time.After(10 * time.Millisecond):
		}
		got, cut := probe.Take(nil)
		probe.Close()
		if len(got) > 0 && !cut {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the node's feed delivered nothing")
		}
	}
}

var clusterPerms = auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}

// publishOn publishes over HTTP on a node and returns the event's ID.
func publishOn(t *testing.T, ts *servertest.Server, topic, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	req, _ := http.NewRequest("POST", ts.URL+"/api/publish", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ts.Token(t, "writer", clusterPerms))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("publish %s on %s: %d %v", data, ts.Addr, res.StatusCode, err)
	}
	return ans.ID
}

// stream opens GET /events on a node; lastID, when not empty, resumes.
func stream(t *testing.T, ctx context.Context, ts *servertest.Server, query, lastID string) *sse.Parser {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events?"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+ts.Token(t, "reader", clusterPerms))
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events?%s on %s: %d", query, ts.Addr, res.StatusCode)
	}
	return sse.NewParser(res.Body)
}

// received is an event as a client saw it: its data and the Last-Event-ID
// it leaves the client with.
type received struct{ data, id string }

func readEvents(t *testing.T, p *sse.Parser, n int) []received {
	t.Helper()
	var got []received
	for len(got) < n {
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		if ev.Type == "reset" {
			t.Fatalf("unexpected reset: %s", ev.Data)
		}
		got = append(got, received{ev.Data, p.LastEventID()})
	}
	return got
}

// sameEvents checks that got holds want's data, each topic's in order
// (the data is "<topic><n>"), whatever the interleaving of topics.
func sameEvents(t *testing.T, got []received, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	byTopic := func(list []string) map[byte][]string {
		m := map[byte][]string{}
		for _, d := range list {
			m[d[0]] = append(m[d[0]], d)
		}
		return m
	}
	var data []string
	for _, r := range got {
		data = append(data, r.data)
	}
	g, w := byTopic(data), byTopic(want)
	for topic, list := range w {
		if strings.Join(g[topic], " ") != strings.Join(list, " ") {
			t.Fatalf("topic %c: got %v, want %v (all: %v)", topic, g[topic], list, data)
		}
	}
}

// TestClusterResumeAcrossNodes: a stream of two topics on node B gets what
// node A publishes, each event with a cursor of both topics; resumed on
// node A with B's last cursor it gets exactly what was published (on
// either node) while it was away, then live events from both, none twice.
func TestClusterResumeAcrossNodes(t *testing.T) {
	forEachSharedStore(t, 2, testResumeAcrossNodes)
}

func testResumeAcrossNodes(t *testing.T, st store.Store, nodes []*servertest.Server) {
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	onB, stopB := context.WithCancel(ctx)
	pb := stream(t, onB, b, "topic=x&topic=y", "")
	publishOn(t, a, "x", "x1")
	publishOn(t, a, "y", "y1")
	publishOn(t, b, "x", "x2")
	got := readEvents(t, pb, 3)
	sameEvents(t, got, "x1", "y1", "x2")
	last := got[2].id
	stopB()

	// Away: events on both nodes, and on a topic the stream does not read.
	publishOn(t, b, "y", "y2")
	publishOn(t, a, "z", "z1")
	publishOn(t, a, "x", "x3")
	publishOn(t, b, "y", "y3")

	pa := stream(t, ctx, a, "topic=x&topic=y", last)
	replayed := readEvents(t, pa, 3)
	sameEvents(t, replayed, "y2", "x3", "y3")
	// The replay's ids are cursors of both topics too: a client that
	// drops here resumes exactly.
	if page, err := st.Read(ctx, []string{"x", "y"}, replayed[2].id, 0); err != nil || len(page.Events) != 0 {
		t.Errorf("Read after the replay's last cursor %q = %+v, %v; want nothing", replayed[2].id, page, err)
	}
	publishOn(t, b, "x", "x4")
	publishOn(t, a, "y", "y4")
	live := readEvents(t, pa, 2)
	sameEvents(t, live, "x4", "y4")

	// The cursor the stream holds now is the one the store gives for
	// everything it read: nothing is left after it.
	page, err := st.Read(ctx, []string{"x", "y"}, live[1].id, 0)
	if err != nil || len(page.Events) != 0 || page.Truncated {
		t.Errorf("Read after the stream's last cursor %q = %+v, %v; want nothing", live[1].id, page, err)
	}
}

// TestClusterPollAcrossNodes: a poll's next from one node continues on
// the other, across two topics, with no gap and no repeat.
func TestClusterPollAcrossNodes(t *testing.T) {
	forEachSharedStore(t, 2, testPollAcrossNodes)
}

func testPollAcrossNodes(t *testing.T, _ store.Store, nodes []*servertest.Server) {
	a, b := nodes[0], nodes[1]
	poll := func(ts *servertest.Server, after *string) (events []string, next string) {
		t.Helper()
		q := url.Values{"topic": {"x", "y"}}
		if after != nil {
			q.Set("after", *after)
		}
		req, _ := http.NewRequest("GET", ts.URL+"/api/poll?"+q.Encode(), nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+ts.Token(t, "reader", clusterPerms))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var ans struct {
			Events []struct{ ID, Data string }
			Next   string
			Reset  *struct{ Reason string }
		}
		if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("poll on %s: %d %v", ts.Addr, res.StatusCode, err)
		}
		if ans.Reset != nil {
			t.Fatalf("poll on %s: reset %s", ts.Addr, ans.Reset.Reason)
		}
		for i, e := range ans.Events {
			events = append(events, e.Data)
			if i == len(ans.Events)-1 && e.ID != ans.Next {
				t.Errorf("last event's id %q is not next %q", e.ID, ans.Next)
			}
		}
		return events, ans.Next
	}
	publishOn(t, a, "x", "before") // history before the first poll is not owed
	_, next := poll(a, nil)
	publishOn(t, a, "x", "x1")
	publishOn(t, b, "y", "y1")
	evs, next := poll(b, &next)
	want := []received{}
	for _, d := range evs {
		want = append(want, received{data: d})
	}
	sameEvents(t, want, "x1", "y1")
	publishOn(t, b, "x", "x2")
	evs, next = poll(a, &next)
	if strings.Join(evs, " ") != "x2" {
		t.Errorf("second poll on the other node = %v, want [x2]", evs)
	}
	if evs, _ = poll(b, &next); len(evs) != 0 {
		t.Errorf("third poll = %v, want nothing", evs)
	}
}

// TestClusterFreshStreamResumes: a stream opened with no Last-Event-ID
// starts from the store's head of all its topics, so that a cursor it got
// from one topic's event still positions the others: resumed elsewhere,
// it gets what was published while it was away, not a topic's older
// history.
func TestClusterFreshStreamResumes(t *testing.T) {
	forEachSharedStore(t, 2, testFreshStreamResumes)
}

func testFreshStreamResumes(t *testing.T, _ store.Store, nodes []*servertest.Server) {
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publishOn(t, a, "y", "y-old") // before the stream: not owed to it

	onB, stopB := context.WithCancel(ctx)
	pb := stream(t, onB, b, "topic=x&topic=y", "")
	publishOn(t, a, "x", "x1")
	last := readEvents(t, pb, 1)[0].id
	stopB()
	publishOn(t, a, "y", "y1")
	pa := stream(t, ctx, a, "topic=x&topic=y", last)
	sameEvents(t, readEvents(t, pa, 1), "y1")
	publishOn(t, b, "x", "x2")
	sameEvents(t, readEvents(t, pa, 1), "x2")
}

// TestClusterWebSocketAcrossNodes: a socket of two topics on node B gets
// what node A publishes, each message's id a cursor of both topics; a
// stream on node A resumed from the socket's last id gets exactly what
// was published meanwhile, and a socket on B resumed from that stream's
// last id gets exactly what followed: one cursor across nodes and
// transports.
func TestClusterWebSocketAcrossNodes(t *testing.T) {
	forEachSharedStore(t, 2, func(t *testing.T, _ store.Store, nodes []*servertest.Server) {
		a, b := nodes[0], nodes[1]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		socket := func(ts *servertest.Server, lastID string) *websocket.Conn {
			t.Helper()
			q := url.Values{"topic": {"x", "y"}}
			if lastID != "" {
				q.Set("lastEventId", lastID)
			}
			hdr := http.Header{"Authorization": {"Bearer " + ts.Token(t, "reader", clusterPerms)}}
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws?"+q.Encode(), &websocket.DialOptions{HTTPHeader: hdr})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		readWS := func(c *websocket.Conn, n int) []received {
			t.Helper()
			var got []received
			for len(got) < n {
				_, b, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("after %d messages: %v", len(got), err)
				}
				var m struct{ ID, Topic, Type, Data string }
				if err := json.Unmarshal(b, &m); err != nil || m.Type == "reset" {
					t.Fatalf("message %s (%v)", b, err)
				}
				got = append(got, received{m.Data, m.ID})
			}
			return got
		}

		wb := socket(b, "")
		publishOn(t, a, "x", "x1")
		publishOn(t, a, "y", "y1")
		got := readWS(wb, 2)
		sameEvents(t, got, "x1", "y1")
		wb.CloseNow()

		publishOn(t, b, "y", "y2")
		publishOn(t, a, "x", "x3")
		onA, stopA := context.WithCancel(ctx)
		pa := stream(t, onA, a, "topic=x&topic=y", got[1].id)
		replayed := readEvents(t, pa, 2)
		sameEvents(t, replayed, "y2", "x3")
		stopA()

		publishOn(t, a, "y", "y3")
		wb = socket(b, replayed[1].id)
		defer wb.CloseNow()
		sameEvents(t, readWS(wb, 1), "y3")
		publishOn(t, a, "x", "x4")
		sameEvents(t, readWS(wb, 1), "x4")
	})
}
