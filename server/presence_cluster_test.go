package server

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store/redis"
)

// tcpProxy relays loopback TCP connections to a target until killed: a
// node behind it loses Redis at once, as a node that dies does, without
// a chance to say goodbye.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	killed bool
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.kill)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.killed {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(u, c)
		go pipe(c, u)
	}
}

// kill closes the listener and every relayed connection.
func (p *tcpProxy) kill() {
	p.mu.Lock()
	p.killed = true
	_ = p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// openRedisStore opens a Redis store at addr, closed when the test ends.
func openRedisStore(t testing.TB, addr string) *redis.Store {
	t.Helper()
	st, err := redis.Open(context.Background(), redis.Config{Client: goredis.NewClient(&goredis.Options{
		Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, redis.ErrUnavailable) {
			t.Logf("closing a store: %v", err)
		}
	})
	return st
}

// waitNodes waits until each node's view holds n nodes: each read the
// others' state, and counts them from then on.
func waitNodes(t testing.TB, n int, nodes ...*testServer) {
	t.Helper()
	for _, ts := range nodes {
		eventually.True(t, 10*time.Second, func() bool { return len(ts.srv.presence.tracker.Nodes()) == n }, "a node sees %d nodes", n)
	}
}

// TestPresenceAcrossNodes: two nodes on one Redis count every open
// stream and WebSocket of both, list the subjects to the claim holder
// on either node, and announce joins and leaves on the other node's
// subscribers; a node stopped gracefully takes its counts with it at once.
func TestPresenceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	// A TTL far longer than the test: a leave after a graceful stop must
	// come from the stop, not from expiry.
	longTTL := func(c *config.Config) {
		withPresence("chat/*")(c)
		c.Presence.TTL = config.Duration(30 * time.Second)
	}
	a := start(t, longTTL, openRedisStore(t, srv.Addr))
	b := start(t, longTTL, openRedisStore(t, srv.Addr))
	bases := []string{a.base, b.base}
	waitNodes(t, 2, a, b)
	watcher := mintFor(t, testKey, "zed", watcherPerms)
	plain := mintFor(t, testKey, "carol", chatPerms)
	alice := mintFor(t, testKey, "alice", chatPerms)
	bob := mintFor(t, testKey, "bob", chatPerms)

	onA, _ := sseOpen(t, a.base, watcher, "topic=chat/1&presence=1")
	wantEvent(t, nextSSEPresence(t, onA), PresenceJoinEvent, "chat/1", 1, sub("zed"))
	// Each node announces with the count it knows: node b is to know
	// zed's connection before carol's join is counted there.
	waitPresence(t, bases, watcher, "chat/1", 1, []string{"zed"})
	onB := wsOpen(t, b.base, plain, "topic=chat/1&presence=1")
	wantEvent(t, nextSSEPresence(t, onA), PresenceJoinEvent, "chat/1", 2, sub("carol"))
	wantEvent(t, nextWSPresence(t, onB), PresenceJoinEvent, "chat/1", 2, nil)

	_, closeAliceB := sseOpen(t, b.base, alice, "topic=chat/1")
	wantEvent(t, nextSSEPresence(t, onA), PresenceJoinEvent, "chat/1", 3, sub("alice"))
	wantEvent(t, nextWSPresence(t, onB), PresenceJoinEvent, "chat/1", 3, nil)
	_, closeAliceA := sseOpen(t, a.base, alice, "topic=chat/1")
	bobWS := wsOpen(t, a.base, bob, "topic=chat/1")
	wantEvent(t, nextSSEPresence(t, onA), PresenceJoinEvent, "chat/1", 5, sub("bob"))
	wantEvent(t, nextWSPresence(t, onB), PresenceJoinEvent, "chat/1", 5, nil)
	waitPresence(t, bases, watcher, "chat/1", 5, []string{"alice", "bob", "carol", "zed"})
	if p := getPresence(t, b.base, plain, "chat/1"); p.Count != 5 || p.Subjects != nil {
		t.Fatalf("without the claim on node b: %+v, want count 5 and no subjects", p)
	}

	// alice leaves node b but is still on node a: no leave.
	closeAliceB()
	waitPresence(t, bases, watcher, "chat/1", 4, []string{"alice", "bob", "carol", "zed"})
	closeAliceA()
	wantEvent(t, nextSSEPresence(t, onA), PresenceLeaveEvent, "chat/1", 3, sub("alice"))
	wantEvent(t, nextWSPresence(t, onB), PresenceLeaveEvent, "chat/1", 3, nil)
	_ = bobWS.Close(websocket.StatusNormalClosure, "")
	wantEvent(t, nextSSEPresence(t, onA), PresenceLeaveEvent, "chat/1", 2, sub("bob"))

	// carol stays connected to node b while it stops gracefully: she
	// leaves at once, long before the TTL.
	_, closeCarol := sseOpen(t, b.base, plain, "topic=chat/1")
	_ = onB.CloseNow() // a socket that is not read would hold the stop for its close handshake
	waitPresence(t, bases, watcher, "chat/1", 2, []string{"carol", "zed"})
	stopped := time.Now()
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	closeCarol()
	wantEvent(t, nextSSEPresence(t, onA), PresenceLeaveEvent, "chat/1", 1, sub("carol"))
	if d := time.Since(stopped); d > 10*time.Second {
		t.Fatalf("the leave came %v after a graceful stop: by expiry, not by the stop", d)
	}
	waitPresence(t, []string{a.base}, watcher, "chat/1", 1, []string{"zed"})
}

// TestPresenceNodeDies: a node that loses Redis and stops without leaving
// keeps counting on the other node until presence.ttl runs out; then the
// other node drops its entries and announces the leaves.
func TestPresenceNodeDies(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := startProxy(t, srv.Addr)
	a := start(t, withPresence("chat/*"), openRedisStore(t, srv.Addr))
	b := start(t, withPresence("chat/*"), openRedisStore(t, proxy.addr()))
	waitNodes(t, 2, a, b)
	watcher := mintFor(t, testKey, "zed", watcherPerms)
	alice := mintFor(t, testKey, "alice", chatPerms)
	bob := mintFor(t, testKey, "bob", chatPerms)

	onA, _ := sseOpen(t, a.base, watcher, "topic=chat/1&presence=1")
	wantEvent(t, nextSSEPresence(t, onA), PresenceJoinEvent, "chat/1", 1, sub("zed"))
	sseOpen(t, b.base, alice, "topic=chat/1")
	wsOpen(t, b.base, bob, "topic=chat/1")
	sseOpen(t, b.base, "", "topic=chat/1")
	waitPresence(t, []string{a.base, b.base}, watcher, "chat/1", 4, []string{"alice", "bob", "zed"})
	for range 3 { // alice, bob and the anonymous one, in some order
		if e := nextSSEPresence(t, onA); e.typ != PresenceJoinEvent {
			t.Fatalf("got %v, want the joins of node b's connections", e)
		}
	}

	proxy.kill() // node b can no longer reach Redis: no leave gets out
	died := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }() // its streams end; nothing reaches Redis
	defer func() { <-stopped }()
	left := map[string]bool{}
	for range 3 {
		e := nextSSEPresence(t, onA)
		if e.typ != PresenceLeaveEvent {
			t.Fatalf("got %v, want the leaves of node b's connections", e)
		}
		name := "(anonymous)"
		if e.Sub != nil {
			name = *e.Sub
		}
		left[name] = true
	}
	waited := time.Since(died)
	if !left["alice"] || !left["bob"] || !left["(anonymous)"] {
		t.Fatalf("leaves of %v, want alice, bob and the anonymous one", left)
	}
	// Node b's last heartbeat was at most TTL/3 before it died: its hash
	// expires TTL-TTL/3 to TTL after, found by node a's next heartbeat.
	if waited < 500*time.Millisecond {
		t.Fatalf("the leaves came %v after node b died: before its entries could expire", waited)
	}
	if waited > 1*time.Second+time.Second/3+3*time.Second {
		t.Fatalf("the leaves came %v after node b died; want about presence.ttl (1s) plus a heartbeat", waited)
	}
	waitPresence(t, []string{a.base}, watcher, "chat/1", 1, []string{"zed"})
	eventually.True(t, 5*time.Second, func() bool { return len(a.srv.presence.tracker.Nodes()) == 1 }, "node a forgets node b")
	t.Logf("node b's entries expired %v after it died", waited)
}
