package presence

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
)

// recorder collects the events a tracker hands out.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(es []Event) {
	r.mu.Lock()
	r.events = append(r.events, es...)
	r.mu.Unlock()
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, e := range r.events {
		kind := "leave"
		if e.Join {
			kind = "join"
		}
		parts = append(parts, fmt.Sprintf("%s %s %q %d", kind, e.Topic, e.Subject, e.Count))
	}
	return strings.Join(parts, "; ")
}

// run starts t until the test ends.
func run(tb testing.TB, t *Tracker) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = t.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
}

func waitCount(tb testing.TB, t *Tracker, topic string, count int, subjects ...string) {
	tb.Helper()
	var n int
	var got []string
	eventually.True(tb, 10*time.Second, func() bool {
		n, got = t.Count(topic)
		return n == count && slices.Equal(got, append([]string{}, subjects...))
	}, "%s counts %d %v (has %d %v)", topic, count, subjects, n, got)
}

// flush applies what changed since the last flush, as Run does every
// flush interval.
func flush(t *Tracker) {
	changes, full := t.takeDirty()
	t.applyOwn(changes, full)
}

// TestTrackerOneNode: joins and leaves count per topic and subject;
// a subject's first connection is a join and its last a leave, every
// change of connections without a subject is announced, each with the
// count after it, and topics that are not tracked (patterns, reserved,
// unmatched) are not counted.
func TestTrackerOneNode(t *testing.T) {
	rec := &recorder{}
	tr := New(Options{Topics: []string{"chat/*", "lobby"}, OnEvents: rec.add})
	for topic, want := range map[string]bool{"chat/1": true, "lobby": true, "lobby/x": false, "chat/*": false, "news": false, "sseguard:dashboard": false} {
		if got := tr.Tracked(topic); got != want {
			t.Errorf("Tracked(%q) = %v, want %v", topic, got, want)
		}
	}
	if c := tr.Join([]string{"news", "chat/*"}, "alice"); c != nil {
		t.Fatalf("a connection on untracked topics counted on %v", c.Topics())
	}
	check := func(topic string, count int, subjects ...string) {
		t.Helper()
		n, got := tr.Count(topic)
		if n != count || !slices.Equal(got, append([]string{}, subjects...)) {
			t.Fatalf("%s: %d %v, want %d %v", topic, n, got, count, subjects)
		}
	}
	a1 := tr.Join([]string{"chat/1", "news", "chat/1"}, "alice")
	check("chat/1", 0) // not before the flush
	flush(tr)
	check("chat/1", 1, "alice")
	a2 := tr.Join([]string{"chat/1", "lobby"}, "alice")
	b := tr.Join([]string{"chat/1"}, "bob")
	anon := tr.Join([]string{"chat/1"}, "")
	flush(tr)
	check("chat/1", 4, "alice", "bob")
	check("lobby", 1, "alice")
	a1.Leave()
	a1.Leave() // once only
	flush(tr)
	check("chat/1", 3, "alice", "bob")
	a2.Leave()
	b.Leave()
	anon.Leave()
	flush(tr)
	check("chat/1", 0)
	check("lobby", 0)
	want := `join chat/1 "alice" 1; join chat/1 "" 2; join chat/1 "bob" 4; join lobby "alice" 1; ` +
		`leave chat/1 "" 2; leave chat/1 "alice" 1; leave chat/1 "bob" 0; leave lobby "alice" 0`
	if got := rec.String(); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}

// TestTrackerRunFlushes: Run applies joins and leaves within the flush
// interval, without being asked.
func TestTrackerRunFlushes(t *testing.T) {
	tr := New(Options{Topics: []string{"chat/*"}, FlushInterval: 5 * time.Millisecond})
	run(t, tr)
	c := tr.Join([]string{"chat/1"}, "alice")
	waitCount(t, tr, "chat/1", 1, "alice")
	c.Leave()
	waitCount(t, tr, "chat/1", 0)
}

// TestTrackerBatches: changes within one flush interval are applied
// together, and a join undone before the flush announces nothing.
func TestTrackerBatches(t *testing.T) {
	rec := &recorder{}
	tr := New(Options{Topics: []string{"*"}, FlushInterval: time.Hour, OnEvents: rec.add})
	for range 100 {
		tr.Join([]string{"t"}, "alice").Leave()
	}
	c := tr.Join([]string{"t"}, "bob")
	changes, full := tr.takeDirty()
	if full || len(changes) != 2 {
		t.Fatalf("dirty %v (full %v), want alice at 0 and bob at 1", changes, full)
	}
	tr.applyOwn(changes, false)
	if got := rec.String(); got != `join t "bob" 1` {
		t.Fatalf("events %q, want bob's join alone", got)
	}
	c.Leave()
}

// startRedis starts a Redis server, or skips.
func startRedis(tb testing.TB) *redistest.Server {
	tb.Helper()
	return redistest.Start(tb, redistest.Options{})
}

func redisClient(tb testing.TB, addr string) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: time.Second, WriteTimeout: time.Second})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// redisTracker starts a tracker on Redis at addr until the test ends.
func redisTracker(tb testing.TB, addr string, rec *recorder) *Tracker {
	tb.Helper()
	opts := Options{Topics: []string{"chat/*"}, FlushInterval: 10 * time.Millisecond, TTL: time.Second,
		Redis: redisClient(tb, addr), Prefix: "test"}
	if rec != nil {
		opts.OnEvents = rec.add
	}
	tr := New(opts)
	run(tb, tr)
	return tr
}

func waitNodes(tb testing.TB, n int, ts ...*Tracker) {
	tb.Helper()
	for _, t := range ts {
		eventually.True(tb, 10*time.Second, func() bool { return len(t.Nodes()) == n }, "a tracker sees %d nodes", n)
	}
}

// TestTrackerLostMessages: changes that pub/sub loses (the subscriber's
// connection is killed while they are published) reach the other node
// anyway: by the gap in the seq of the next change, or by the heartbeat's
// check of the seq when nothing follows.
func TestTrackerLostMessages(t *testing.T) {
	srv := startRedis(t)
	a := redisTracker(t, srv.Addr, nil)
	b := redisTracker(t, srv.Addr, nil)
	waitNodes(t, 2, a, b)
	var conns []*Conn
	for i := range 50 {
		if i == 10 {
			// Every subscription drops; go-redis subscribes again, and
			// what is published meanwhile is lost to it.
			if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, b.Join([]string{"chat/1"}, fmt.Sprintf("u%02d", i)))
		if i%5 == 4 { // a flush every few joins: several messages, some lost
			eventually.True(t, 10*time.Second, func() bool { n, _ := b.Count("chat/1"); return n == i+1 }, "node b flushes %d joins", i+1)
		}
	}
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf("u%02d", i))
	}
	waitCount(t, a, "chat/1", 50, want...)
	// The last change alone, lost with nothing after it: only the
	// heartbeat's seq check finds it.
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	conns[0].Leave()
	waitCount(t, a, "chat/1", 49, want[1:]...)
}

// TestTrackerRedisLostState: when Redis loses a node's hash (a restart
// without persistence, a FLUSHALL), the other nodes drop that node, and
// its next heartbeat writes its whole state again, which they read back.
func TestTrackerRedisLostState(t *testing.T) {
	srv := startRedis(t)
	rec := &recorder{}
	a := redisTracker(t, srv.Addr, rec)
	b := redisTracker(t, srv.Addr, nil)
	waitNodes(t, 2, a, b)
	c := b.Join([]string{"chat/1"}, "alice")
	defer c.Leave()
	waitCount(t, a, "chat/1", 1, "alice")
	if _, err := srv.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	// Node b finds its hash gone at its next heartbeat and writes it
	// again; node a, which may have dropped node b meanwhile (a leave,
	// then a join), counts alice again.
	eventually.True(t, 10*time.Second, func() bool {
		v, err := srv.Do("HGET", "test:{presence}:node:"+b.Node(), "chat/1\x00alice")
		return err == nil && v == "1"
	}, "node b writes its state again")
	waitCount(t, a, "chat/1", 1, "alice")
	if got := rec.String(); strings.Count(got, `join chat/1 "alice"`) != strings.Count(got, `leave chat/1 "alice"`)+1 {
		t.Fatalf("node a's events do not end with alice joined: %s", got)
	}
	waitNodes(t, 2, a, b)
}

// TestTrackerRedisCluster: on a Redis Cluster the keys share one slot
// (the {presence} hash tag), so the scripts run there, and pub/sub
// reaches every node's subscriber.
func TestTrackerRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 0, redistest.Options{})
	trackers := make([]*Tracker, 2)
	for i := range trackers {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs(), MaxRetries: -1, ReadTimeout: time.Second, WriteTimeout: time.Second})
		t.Cleanup(func() { _ = c.Close() })
		trackers[i] = New(Options{Topics: []string{"chat/*"}, FlushInterval: 10 * time.Millisecond, TTL: time.Second, Redis: c, Prefix: "test"})
		run(t, trackers[i])
	}
	a, b := trackers[0], trackers[1]
	waitNodes(t, 2, a, b)
	c1 := a.Join([]string{"chat/1"}, "alice")
	c2 := b.Join([]string{"chat/1"}, "bob")
	waitCount(t, a, "chat/1", 2, "alice", "bob")
	waitCount(t, b, "chat/1", 2, "alice", "bob")
	c1.Leave()
	c2.Leave()
	waitCount(t, a, "chat/1", 0)
	waitCount(t, b, "chat/1", 0)
}
