package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// sink is a store.FeedSink that keeps what Follow gave it.
type sink struct {
	mu      sync.Mutex
	started bool
	events  map[string][]store.Event // by topic, in delivery order
	gaps    map[string]int
}

func newSink() *sink {
	return &sink{events: map[string][]store.Event{}, gaps: map[string]int{}}
}

func (k *sink) Started() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.started = true
}

func (k *sink) Deliver(evs []store.Event) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range evs {
		k.events[e.Topic] = append(k.events[e.Topic], e)
	}
}

func (k *sink) Gap(topic string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gaps[topic]++
}

func (k *sink) isStarted() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.started
}

// has reports whether every ID of want was delivered.
func (k *sink) has(want map[string][]string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for topic, ids := range want {
		got := map[string]bool{}
		for _, e := range k.events[topic] {
			got[e.ID] = true
		}
		for _, id := range ids {
			if !got[id] {
				return false
			}
		}
	}
	return true
}

func (k *sink) gapCount(topic string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gaps[topic]
}

// follow runs s.Follow into a new sink until the test ends, and waits
// until it has started.
func follow(t *testing.T, s *Store) *sink {
	t.Helper()
	k := newSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Follow(ctx, k) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	})
	eventually.True(t, 0, k.isStarted, "Follow started")
	return k
}

// checkOrder checks that each topic's deliveries have strictly increasing,
// contiguous offsets within an epoch (no duplicate, no hole), and returns
// them by topic.
func checkOrder(t *testing.T, k *sink) map[string][]string {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string][]string{}
	for topic, evs := range k.events {
		var last pos
		for i, e := range evs {
			p, ok := parsePos(e.ID)
			if !ok {
				t.Fatalf("%s: delivered ID %q is not one of ours", topic, e.ID)
			}
			if i > 0 && p.epoch == last.epoch && p.offset != last.offset+1 {
				t.Errorf("%s: delivery %d is %s after %s: want the next offset", topic, i, e.ID, last)
			}
			last = p
			out[topic] = append(out[topic], e.ID)
		}
	}
	return out
}

// TestFollowTwoStores: events appended through one store reach a follower
// on another, each once, in order per topic, with their data.
func TestFollowTwoStores(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	// Events from before Follow started are not delivered.
	before := mustAppend(t, a, store.Record{Topic: "t0", Data: "before"})
	k := follow(t, b)
	topics := []string{"t0", "t1", "t2", "t/{3}"}
	want := map[string][]string{}
	byID := map[string]store.Event{}
	for i := range 50 {
		var recs []store.Record
		for j := range 1 + i%5 {
			recs = append(recs, store.Record{Topic: topics[(i+j)%len(topics)], Type: "x", Data: fmt.Sprint(i, "-", j)})
		}
		for _, ap := range mustAppend(t, a, recs...) {
			want[ap.Event.Topic] = append(want[ap.Event.Topic], ap.Event.ID)
			byID[ap.Event.ID] = ap.Event
		}
	}
	eventually.True(t, 0, func() bool { return k.has(want) }, "the follower has every event")
	got := checkOrder(t, k)
	for _, topic := range topics {
		if !slices.Equal(got[topic], want[topic]) {
			t.Errorf("%s: delivered %q, want %q", topic, got[topic], want[topic])
		}
	}
	k.mu.Lock()
	for _, evs := range k.events {
		for _, e := range evs {
			if w := byID[e.ID]; !e.Time.Equal(w.Time) || e.Data != w.Data || e.Type != w.Type || e.Topic != w.Topic {
				t.Errorf("delivered %+v, want %+v", e, w)
			}
			if e.ID == before[0].Event.ID {
				t.Errorf("delivered %s, committed before Follow started", e.ID)
			}
		}
	}
	if len(k.gaps) != 0 {
		t.Errorf("gaps reported without a loss: %v", k.gaps)
	}
	k.mu.Unlock()
}

// TestFollowAcrossRestart: Redis crashes (SIGKILL) while events are
// appended and comes back. With appendfsync always the follower gets
// every acknowledged event once, in order, with no gap reported; without
// persistence it reports a gap for every topic it followed, and then
// delivers the new epoch's events.
func TestFollowAcrossRestart(t *testing.T) {
	tests := []struct {
		name    string
		o       redistest.Options
		persist bool
	}{
		{"aof always", redistest.Options{AppendOnly: true, Fsync: "always"}, true},
		{"no persistence", redistest.Options{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, tt.o)
			prefix := nextPrefix()
			a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
			b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
			k := follow(t, b)
			topics := []string{"a", "b", "c"}
			acked := map[string][]string{}
			appendSome := func(tag string, n int) {
				for i := range n {
					recs := []store.Record{{Topic: topics[i%3], Data: tag}, {Topic: topics[(i+1)%3], Data: tag}}
					got, err := a.Append(context.Background(), recs)
					if err != nil {
						t.Fatalf("Append with Redis up: %v", err)
					}
					for _, g := range got {
						acked[g.Event.Topic] = append(acked[g.Event.Topic], g.Event.ID)
					}
				}
			}
			appendSome("first", 20)
			eventually.True(t, 0, func() bool { return k.has(acked) }, "the follower has the first events")
			srv.Kill()
			// While Redis is down, Append fails promptly.
			start := time.Now()
			if _, err := a.Append(context.Background(), []store.Record{{Topic: "a", Data: "down"}}); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Append with Redis down: %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Append with Redis down took %v", d)
			}
			srv.Restart()
			firstEpoch := maps(acked)
			if !tt.persist {
				acked = map[string][]string{}
			}
			appendSome("second", 20)
			eventually.True(t, 0, func() bool { return k.has(acked) }, "the follower has the events after the restart")
			got := checkOrder(t, k)
			for _, topic := range topics {
				want := acked[topic]
				if !tt.persist {
					want = append(slices.Clone(firstEpoch[topic]), want...)
				}
				if !slices.Equal(got[topic], want) {
					t.Errorf("%s: delivered %q, want %q", topic, got[topic], want)
				}
				gaps := k.gapCount(topic)
				if tt.persist && gaps != 0 {
					t.Errorf("%s: %d gaps reported with nothing lost", topic, gaps)
				}
				if !tt.persist && gaps == 0 {
					t.Errorf("%s: Redis lost the topic and no gap was reported", topic)
				}
			}
		})
	}
}

func maps(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func mustAppend(t *testing.T, s store.Store, recs ...store.Record) []store.Appended {
	t.Helper()
	got, err := s.Append(context.Background(), recs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

// TestFollowFillsWhatPubSubLost: events that were never published (as
// pub/sub loses them while a connection is down) reach the follower, in
// order and once: read by offset when a later event shows the hole, and
// caught up when the follower subscribes again.
func TestFollowFillsWhatPubSubLost(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	silent := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	silent.silent = true
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	k := follow(t, b)
	want := map[string][]string{}
	add := func(s *Store, topic, data string) {
		e := mustAppend(t, s, store.Record{Topic: topic, Data: data})[0].Event
		want[topic] = append(want[topic], e.ID)
	}

	// A hole before a published event: filled from the stream.
	add(a, "x", "1")
	add(silent, "x", "2 lost")
	add(silent, "x", "3 lost")
	add(a, "x", "4")
	// A new topic whose first events were lost.
	add(silent, "y", "1 lost")
	add(a, "y", "2")
	eventually.True(t, 0, func() bool { return k.has(want) }, "the follower has the events around the holes")

	// Lost while the follower's subscription was cut: caught up when it
	// subscribes again, with no later event to show the hole.
	add(silent, "x", "5 lost")
	add(silent, "z", "1 lost, new topic")
	if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 0, func() bool { return k.has(want) }, "the follower caught up after subscribing again")
	got := checkOrder(t, k)
	for topic, ids := range want {
		if !slices.Equal(got[topic], ids) {
			t.Errorf("%s: delivered %q, want %q", topic, got[topic], ids)
		}
		if n := k.gapCount(topic); n != 0 {
			t.Errorf("%s: %d gaps, want none: every event was there to read", topic, n)
		}
	}
}

// TestFollowReportsRetentionGap: events that retention removed before the
// follower could read them are a gap, not a silent skip.
func TestFollowReportsRetentionGap(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, Retention: store.Retention{MaxEventsPerTopic: 2}})
	silent := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, Retention: store.Retention{MaxEventsPerTopic: 2}})
	silent.silent = true
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	k := follow(t, b)
	first := mustAppend(t, a, store.Record{Topic: "x", Data: "1"})[0].Event
	eventually.True(t, 0, func() bool { return k.has(map[string][]string{"x": {first.ID}}) }, "the first event")
	for i := range 5 {
		mustAppend(t, silent, store.Record{Topic: "x", Data: fmt.Sprint("lost ", i)})
	}
	if _, err := silent.Trim(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	last := mustAppend(t, a, store.Record{Topic: "x", Data: "7"})[0].Event
	eventually.True(t, 0, func() bool { return k.has(map[string][]string{"x": {last.ID}}) }, "the last event")
	if n := k.gapCount("x"); n != 1 {
		t.Errorf("%d gaps reported, want 1", n)
	}
}

// TestFollowRollbackStartsNewEpoch: Redis restarts from an older snapshot
// (RDB), so a topic's last offset goes back below what the follower
// delivered. The follower reports the gap and starts a new epoch, so that
// the offsets given again to new events are not mistaken for the lost
// ones: a reader holding a lost event's ID gets Truncated and the new
// events.
func TestFollowRollbackStartsNewEpoch(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	k := follow(t, b)
	var ids []string
	for i := range 5 {
		ids = append(ids, mustAppend(t, a, store.Record{Topic: "x", Data: fmt.Sprint(i)})[0].Event.ID)
		if i == 2 {
			if _, err := srv.Do("SAVE"); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually.True(t, 0, func() bool { return k.has(map[string][]string{"x": ids}) }, "the follower has the 5 events")
	srv.Kill()
	srv.Restart() // from the snapshot of 3 events
	eventually.True(t, 0, func() bool { return k.gapCount("x") == 1 }, "a gap for the topic that went back")
	fresh := mustAppend(t, a, store.Record{Topic: "x", Data: "new"})[0].Event
	if fresh.ID == ids[3] {
		t.Fatalf("the new event got the ID %s of a lost one", fresh.ID)
	}
	eventually.True(t, 0, func() bool { return k.has(map[string][]string{"x": {fresh.ID}}) }, "the follower has the new event")
	if b.Seen(ids[4], []string{"x"}, fresh) {
		t.Errorf("the new event %s is Seen at the lost event's ID %s", fresh.ID, ids[4])
	}
	page, err := a.Read(context.Background(), []string{"x"}, ids[4], 0)
	if err != nil || !page.Truncated || len(page.Events) != 4 || page.Events[3].Data != "new" {
		t.Errorf("Read after a lost event's ID = %+v, %v; want Truncated with the 3 kept events and the new one", page, err)
	}
}

// TestFollowDetectsReusedOffsets: a topic goes back while the follower
// stays subscribed (as when a replica that lacked the newest events is
// promoted), so the next append reuses an offset the follower delivered.
// The follower tells it from a duplicate by its later commit time,
// reports the gap and starts a new epoch.
func TestFollowDetectsReusedOffsets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	b := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	k := follow(t, b)
	var ids []string
	for i := range 5 {
		ids = append(ids, mustAppend(t, a, store.Record{Topic: "x", Data: fmt.Sprint(i)})[0].Event.ID)
	}
	eventually.True(t, 0, func() bool { return k.has(map[string][]string{"x": ids}) }, "the follower has the 5 events")
	// The topic goes back to its state after 3 events, as a snapshot has
	// it: stream (with its last ID) and meta.
	keys := a.keys("x")
	page, err := a.Read(context.Background(), []string{"x"}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("DEL", keys.stream); err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Events[:3] {
		p, _ := parsePos(e.ID)
		if _, err := srv.Do("XADD", keys.stream, fmt.Sprintf("%d-%d", p.offset, e.Time.UnixMicro()), "d", e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Do("HSET", keys.meta, "n", "3", "u", fmt.Sprint(page.Events[2].Time.UnixMicro())); err != nil {
		t.Fatal(err)
	}
	reused := mustAppend(t, a, store.Record{Topic: "x", Data: "reuses offset 4"})[0].Event
	if reused.ID != ids[3] {
		t.Fatalf("the simulated rollback did not reuse offset 4: %s", reused.ID)
	}
	eventually.True(t, 0, func() bool { return k.gapCount("x") == 1 }, "a gap for the reused offset")
	page, err = a.Read(context.Background(), []string{"x"}, ids[4], 0)
	if err != nil || !page.Truncated {
		t.Errorf("Read after the lost event's ID = %+v, %v; want Truncated", page, err)
	}
	for _, e := range page.Events {
		if e.ID == ids[3] {
			t.Errorf("after the new epoch, an event still has the reused ID %s", e.ID)
		}
	}
}

// TestFollowUnderChurn: two processes append concurrently while the
// follower's subscription is cut again and again; the follower still gets
// every event once, in order per topic, and reports no gap.
func TestFollowUnderChurn(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	writers := []*Store{
		openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix}),
		openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix}),
	}
	k := follow(t, openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix}))
	const batches = 150
	var mu sync.Mutex
	want := map[string][]string{}
	errs := make(chan error, len(writers))
	var wg sync.WaitGroup
	for w, s := range writers {
		wg.Go(func() {
			for i := range batches {
				var recs []store.Record
				for j := range 8 {
					recs = append(recs, store.Record{Topic: fmt.Sprint("t", (i+j)%8), Data: fmt.Sprint(w, "-", i, "-", j)})
				}
				got, err := s.Append(context.Background(), recs)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, g := range got {
					want[g.Event.Topic] = append(want[g.Event.Topic], g.Event.ID)
				}
				mu.Unlock()
				if w == 0 && i%30 == 15 {
					if _, err := srv.Do("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually.True(t, 0, func() bool { return k.has(want) }, "the follower has every event")
	got := checkOrder(t, k)
	total := 0
	for topic, ids := range want {
		total += len(ids)
		if len(got[topic]) != len(ids) {
			t.Errorf("%s: delivered %d events, want %d (each once)", topic, len(got[topic]), len(ids))
		}
		if n := k.gapCount(topic); n != 0 {
			t.Errorf("%s: %d gaps with nothing lost", topic, n)
		}
	}
	if total != 2*batches*8 {
		t.Fatalf("appended %d events, want %d", total, 2*batches*8)
	}
}
