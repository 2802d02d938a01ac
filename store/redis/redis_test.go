package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/storetest"
)

// prefixes gives every store of a test binary its own key prefix, so that
// stores on one redis-server start empty.
var prefixes atomic.Int64

func nextPrefix() string { return fmt.Sprintf("test%d", prefixes.Add(1)) }

// testClient returns a client for addrs (one: a single Redis; more: a
// Cluster) with the timeouts serve uses.
func testClient(addrs ...string) goredis.UniversalClient {
	return goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 addrs,
		IsClusterMode:         len(addrs) > 1,
		DialTimeout:           time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
}

func openStore(t testing.TB, c Config) *Store {
	t.Helper()
	if c.Prefix == "" {
		c.Prefix = nextPrefix()
	}
	s, err := Open(context.Background(), c)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return openStore(t, Config{Client: testClient(srv.Addr), Retention: r})
	})
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return openStore(t, Config{Client: testClient(c.Addrs()...), Retention: r})
	})
}

// TestLoss: a Redis restarted without persistence loses the topics; a
// cursor from before is a reset, never a silent gap.
func TestLoss(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.RunLoss(t, func(t *testing.T) (store.Store, func()) {
		s := openStore(t, Config{Client: testClient(srv.Addr)})
		return s, func() {
			srv.Kill()
			srv.Restart()
		}
	})
}

// TestDurable: a store opened again on the same Redis and prefix (a hub
// restarted, or another node) has every event, key and position.
func TestDurable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefixOf := map[string]string{}
	storetest.RunDurable(t, func(t *testing.T, dir string, r store.Retention) store.Store {
		if prefixOf[dir] == "" {
			prefixOf[dir] = nextPrefix()
		}
		return openStore(t, Config{Client: testClient(srv.Addr), Retention: r, Prefix: prefixOf[dir]})
	})
}

// TestLostMetaKeepsAppending: a topic whose meta is gone while its stream
// stays (evicted under maxmemory) starts a new epoch over an empty stream,
// rather than failing every append on the stream's higher IDs.
func TestLostMetaKeepsAppending(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr)})
	old := mustAppend(t, s, store.Record{Topic: "a", Data: "1"}, store.Record{Topic: "a", Data: "2"})
	if _, err := srv.Do("DEL", s.keys("a").meta); err != nil {
		t.Fatal(err)
	}
	fresh := mustAppend(t, s, store.Record{Topic: "a", Data: "3"})[0].Event
	page, err := s.Read(context.Background(), []string{"a"}, old[1].Event.ID, 0)
	if err != nil || !page.Truncated || len(page.Events) != 1 || page.Events[0].ID != fresh.ID {
		t.Errorf("Read after the old epoch's ID = %+v, %v; want Truncated and only the new event", page, err)
	}
}

// TestTrimInSteps: a Trim call covers a bounded number of topics and the
// next goes on from there, so that every topic is trimmed after a few
// calls without one call loading Redis with all of them.
func TestTrimInSteps(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr), Retention: store.Retention{MaxAge: time.Hour}})
	s.trimLimit = 64
	const topics = 600
	var recs []store.Record
	for i := range topics {
		recs = append(recs, store.Record{Topic: fmt.Sprint("t", i), Data: "x"})
	}
	mustAppend(t, s, recs...)
	later := time.Now().Add(2 * time.Hour)
	total, calls := 0, 0
	for total < topics && calls < 20 {
		n, err := s.Trim(context.Background(), later)
		if err != nil {
			t.Fatal(err)
		}
		if calls == 0 && n == topics {
			t.Errorf("the first Trim covered all %d topics, want at most about %d", topics, s.trimLimit)
		}
		total += n
		calls++
	}
	if total != topics {
		t.Errorf("%d Trim calls removed %d events, want all %d", calls, total, topics)
	}
	page, err := s.Read(context.Background(), []string{"t0", "t599"}, "", 0)
	if err != nil || len(page.Events) != 0 {
		t.Errorf("Read after the trims = %+v, %v; want nothing", page, err)
	}
}

// TestIdempotencyAcrossStores: a publish retried on another hub process
// (another store on the same Redis) returns the first event and stores
// nothing, as on one process.
func TestIdempotencyAcrossStores(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	rec := store.Record{Topic: "t", Type: "x", Data: "once", IdempotencyKey: "k"}
	first := mustAppend(t, a, rec)[0]
	again := mustAppend(t, b, rec)[0]
	if first.Duplicate || !again.Duplicate || again.Conflict || again.Event != first.Event {
		t.Errorf("first %+v, retry on another store %+v; want the retry a duplicate of the first", first, again)
	}
	page, err := b.Read(context.Background(), []string{"t"}, "", 0)
	if err != nil || len(page.Events) != 1 {
		t.Errorf("Read = %+v, %v; want the one event", page, err)
	}
}
