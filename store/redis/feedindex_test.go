package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// orderSink keeps every delivery in the order Follow made it.
type orderSink struct {
	mu      sync.Mutex
	started bool
	all     []store.Event
	gaps    []string
}

func (k *orderSink) Started() { k.mu.Lock(); k.started = true; k.mu.Unlock() }

func (k *orderSink) Deliver(evs []store.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.all = append(k.all, evs...)
}

func (k *orderSink) Gap(topic string) { k.mu.Lock(); k.gaps = append(k.gaps, topic); k.mu.Unlock() }

func (k *orderSink) count() int { k.mu.Lock(); defer k.mu.Unlock(); return len(k.all) }

// checkIndexOrder checks that the indexed deliveries follow each index's
// offsets one by one (what a pattern subscriber's cursor needs), and that
// the deliveries are want's IDs, each once.
func checkIndexOrder(t *testing.T, s *Store, k *orderSink, want []string) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	last := map[string]ixPos{}
	seen := map[string]int{}
	for i, e := range k.all {
		seen[e.ID]++
		_, xp, ok := parseID(e.ID)
		ix, indexed := s.indexOf(e.Topic)
		if !ok || !indexed || xp.epoch == "" {
			continue
		}
		if l, ok := last[ix]; ok && l.epoch == xp.epoch && xp.offset != l.offset+1 {
			t.Errorf("delivery %d (%s) is index %q offset %d after %d: want the next", i, e.ID, ix, xp.offset, l.offset)
		}
		last[ix] = xp
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, seen[id])
		}
	}
	if len(k.all) != len(want) {
		t.Errorf("%d deliveries, want %d", len(k.all), len(want))
	}
	if len(k.gaps) > 0 {
		t.Errorf("gaps %q, want none: every event was there to read", k.gaps)
	}
}

// TestFollowIndexOrder: events of several topics under one prefix reach
// the follower in index order, also when pub/sub lost some: a hole in the
// index is filled from the index before the event after it, and what was
// lost while the subscription was cut is caught up index by index.
func TestFollowIndexOrder(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	pfx := []string{"orders/", "chat/"}
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, PatternPrefixes: pfx})
	silent := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, PatternPrefixes: pfx})
	silent.silent = true
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, PatternPrefixes: pfx})
	k := &orderSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Follow(ctx, k) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v", err)
		}
	})
	eventually.True(t, 0, func() bool { k.mu.Lock(); defer k.mu.Unlock(); return k.started }, "Follow started")

	var want []string
	add := func(s *Store, topic string, i int) {
		e := mustAppend(t, s, store.Record{Topic: topic, Data: fmt.Sprint(i)})[0].Event
		want = append(want, e.ID)
	}
	// Holes of several topics before a published event.
	add(a, "orders/1", 0)
	add(silent, "orders/2", 1)
	add(silent, "orders/1", 2)
	add(silent, "orders/3", 3) // a topic new to the follower
	add(silent, "chat/1", 4)
	add(a, "orders/2", 5)
	add(a, "misc", 6)
	add(a, "chat/1", 7)
	eventually.True(t, 0, func() bool { return k.count() >= len(want) }, "the follower has the events around the holes")

	// Lost while the subscription was cut: caught up when it subscribes
	// again.
	add(silent, "orders/3", 8)
	add(silent, "orders/1", 9)
	add(silent, "chat/2", 10)
	add(silent, "misc", 11)
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 0, func() bool { return k.count() >= len(want) }, "the follower caught up after subscribing again")
	add(a, "orders/2", 12)
	eventually.True(t, 0, func() bool { return k.count() >= len(want) }, "the follower goes on")
	checkIndexOrder(t, b, k, want)
}

// TestFollowIndexRollback: Redis restarts from an older snapshot, so an
// index's last offset goes back below what the follower delivered. The
// follower reports a gap of the prefix's patterns and starts a new epoch
// of the index, so that index offsets given again are not mistaken for
// the lost ones: a pattern cursor at a lost event reads with Truncated,
// then the kept and the new events.
func TestFollowIndexRollback(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	pfx := []string{"orders/"}
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, PatternPrefixes: pfx})
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, PatternPrefixes: pfx})
	k := &orderSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Follow(ctx, k) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually.True(t, 0, func() bool { k.mu.Lock(); defer k.mu.Unlock(); return k.started }, "Follow started")
	topics := []string{"orders/*"}
	cursor := ""
	for i := range 5 {
		e := mustAppend(t, a, store.Record{Topic: fmt.Sprint("orders/", i%2), Data: fmt.Sprint(i)})[0].Event
		cursor = a.Next(cursor, topics, e)
		if i == 2 {
			if _, err := srv.Do("SAVE"); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually.True(t, 0, func() bool { return k.count() == 5 }, "the follower has the 5 events")
	srv.Kill()
	srv.Restart() // from the snapshot of 3 events
	gapped := func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return slices.Contains(k.gaps, "orders/*")
	}
	eventually.True(t, 0, gapped, "a gap of orders/* for the index that went back")
	fresh := mustAppend(t, a, store.Record{Topic: "orders/1", Data: "new"})[0].Event
	if b.Seen(cursor, topics, fresh) {
		t.Errorf("the new event %s is Seen at the pattern cursor %s of the lost events", fresh.ID, cursor)
	}
	page, err := a.Read(context.Background(), topics, cursor, 0)
	if err != nil || !page.Truncated || len(page.Events) != 4 || page.Events[3].Data != "new" {
		t.Errorf("Read after the lost events' pattern cursor = %+v, %v; want Truncated with the 3 kept events and the new one", page, err)
	}
}
