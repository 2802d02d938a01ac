package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// parseWire parses what a reader receives, with the SSE parser.
func parseWire(t *testing.T, parts ...[]byte) (sse.Event, string) {
	t.Helper()
	p := sse.NewParser(bytes.NewReader(bytes.Join(parts, nil)))
	ev, err := p.Next()
	if err != nil {
		t.Fatalf("parse %q: %v", bytes.Join(parts, nil), err)
	}
	if _, err := p.Next(); err != io.EOF {
		t.Fatalf("more than one event in %q: %v", bytes.Join(parts, nil), err)
	}
	return ev, p.LastEventID()
}

// TestFrameIDLinePerCursor: a reader whose cursor is the event's ID gets
// the shared encoding itself; another cursor gets the same event with its
// cursor as the id.
func TestFrameIDLinePerCursor(t *testing.T) {
	e := store.Event{ID: "3.7", Topic: "a", Type: "price", Data: "one\ntwo"}
	f := NewFrame(e)
	tests := []struct {
		name, cursor string
		shared       bool
	}{
		{name: "cursor is the ID", cursor: "3.7", shared: true},
		{name: "no cursor", cursor: "", shared: true},
		{name: "vector cursor", cursor: "1.4_3.7", shared: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := Delivery{Frame: f, Cursor: tt.cursor}.appendParts(nil)
			if tt.shared && (len(parts) != 1 || &parts[0][0] != &f.Wire[0]) {
				t.Fatalf("parts = %q, want the shared Wire itself", parts)
			}
			if !tt.shared && len(parts) != 2 {
				t.Fatalf("parts = %q, want the body and an id line", parts)
			}
			want := tt.cursor
			if want == "" {
				want = e.ID
			}
			ev, last := parseWire(t, parts...)
			if last != want || ev.Type != e.Type || ev.Data != e.Data {
				t.Errorf("reader got %+v with Last-Event-ID %q, want %q", ev, last, want)
			}
			// AppendTo makes the same decision in one buffer.
			ev2, last2 := parseWire(t, f.AppendTo([]byte(nil), tt.cursor))
			if ev2 != ev || last2 != last {
				t.Errorf("AppendTo = %+v %q, Pull's parts = %+v %q", ev2, last2, ev, last)
			}
		})
	}
}

// node is one hub over a shared store, as one process of a cluster.
func startNode(t *testing.T, st store.Store) *Hub {
	t.Helper()
	return startHub(t, Options{Store: st})
}

// collect drains s until it holds n deliveries or the deadline passes.
func collect(t *testing.T, s *Subscriber, n int) []Delivery {
	t.Helper()
	var got []Delivery
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-s.Ready():
			var cut bool
			if got, cut = s.Take(got); cut {
				t.Fatalf("cut off after %d deliveries", len(got))
			}
		case <-deadline:
			t.Fatalf("got %d deliveries, want %d", len(got), n)
		}
	}
	return got
}

// TestTwoNodesOnASharedStore: two hubs over one memory.Shared, as two
// nodes over one Redis. Events published on either node reach the
// subscribers of both exactly once, in order per topic, each with the
// subscriber's cursor; a node never delivers its own publish twice.
func TestTwoNodesOnASharedStore(t *testing.T) {
	st := memory.NewShared(store.Retention{})
	a, b := startNode(t, st), startNode(t, st)
	waitFed(t, a, st)
	waitFed(t, b, st)
	type sub struct {
		node   string
		topics []string
		s      *Subscriber
	}
	var subs []sub
	for _, node := range []struct {
		name string
		h    *Hub
	}{{"A", a}, {"B", b}} {
		for _, topics := range [][]string{{"x"}, {"y"}, {"x", "y"}} {
			s, err := node.h.Subscribe(topics)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			head, err := st.Head(context.Background(), topics)
			if err != nil {
				t.Fatal(err)
			}
			s.GoLive(head)
			subs = append(subs, sub{node.name, topics, s})
		}
	}
	const perPublisher = 50
	before := []uint64{a.Stats().Published, b.Stats().Published}
	var wg sync.WaitGroup
	for i, h := range []*Hub{a, b, a, b} {
		topic := []string{"x", "y"}[i%2]
		wg.Go(func() {
			for j := range perPublisher {
				if _, err := h.Publish(context.Background(), store.Record{Topic: topic, Data: fmt.Sprint(i, "-", j)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	all, err := st.Read(context.Background(), []string{"x", "y"}, "", 0)
	if err != nil || len(all.Events) != 4*perPublisher {
		t.Fatalf("store holds %d events (%v), want %d", len(all.Events), err, 4*perPublisher)
	}
	for _, sb := range subs {
		want := 0
		for _, e := range all.Events {
			if contains(sb.topics, e.Topic) {
				want++
			}
		}
		got := collect(t, sb.s, want)
		// Nothing more arrives: each event once.
		if extra, _ := sb.s.Take(nil); len(extra) != 0 {
			t.Errorf("node %s %q: %d deliveries beyond the %d events", sb.node, sb.topics, len(extra), want)
		}
		seen := map[string]bool{}
		last := map[string]string{}
		for _, d := range got {
			e := d.Event
			if seen[e.ID] {
				t.Fatalf("node %s %q: %s delivered twice", sb.node, sb.topics, e.ID)
			}
			seen[e.ID] = true
			if p, ok := last[e.Topic]; ok && st.Compare(p, e.ID) != -1 {
				t.Fatalf("node %s %q: %s after %s of topic %s", sb.node, sb.topics, e.ID, p, e.Topic)
			}
			last[e.Topic] = e.ID
			if len(sb.topics) == 1 && d.Cursor != e.ID {
				t.Errorf("single-topic cursor %q, want the ID %s", d.Cursor, e.ID)
			}
			if !st.Seen(d.Cursor, sb.topics, e) {
				t.Errorf("node %s %q: cursor %q has not Seen its own event %s", sb.node, sb.topics, d.Cursor, e.ID)
			}
		}
		if len(sb.topics) > 1 {
			// The last cursor resumes exactly after everything delivered.
			page, err := st.Read(context.Background(), sb.topics, got[len(got)-1].Cursor, 0)
			if err != nil || len(page.Events) != 0 || page.Truncated {
				t.Errorf("node %s %q: Read after the last cursor %q = %+v, %v; want nothing", sb.node, sb.topics, got[len(got)-1].Cursor, page, err)
			}
			ev, id := parseWire(t, got[len(got)-1].appendParts(nil)...)
			if id != got[len(got)-1].Cursor || ev.Data != got[len(got)-1].Event.Data {
				t.Errorf("node %s %q: the wire says id %q, want the cursor %q", sb.node, sb.topics, id, got[len(got)-1].Cursor)
			}
		}
	}
	for i, h := range []*Hub{a, b} {
		if n := h.Stats().Published - before[i]; n != 2*perPublisher {
			t.Errorf("node %d counted %d publishes, want its own %d", i, n, 2*perPublisher)
		}
	}
}

// TestGoLiveDropsSeenPerTopic: frames buffered during a replay that the
// replay's vector cursor has Seen are dropped, per topic; the rest carry
// cursors that continue it.
func TestGoLiveDropsSeenPerTopic(t *testing.T) {
	st := memory.NewShared(store.Retention{})
	h := startNode(t, st)
	waitFed(t, h, st)
	topics := []string{"a", "b"}
	s, err := h.Subscribe(topics)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []store.Event
	for _, topic := range []string{"a", "b", "a", "b", "a"} {
		evs = append(evs, publish(t, h, topic, topic))
	}
	// The feed is asynchronous: wait until all five are buffered.
	deadline := time.Now().Add(10 * time.Second)
	for h.Stats().Delivered < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("buffered %d frames, want 5", h.Stats().Delivered)
		}
		time.Sleep(time.Millisecond)
	}
	// The replay gave a1, b1 and a2 (as the store's Read would), in this order.
	cursor := ""
	for _, e := range []store.Event{evs[0], evs[1], evs[2]} {
		cursor = st.Next(cursor, topics, e)
	}
	s.GoLive(cursor)
	got := collect(t, s, 2)
	if got[0].Event.ID != evs[3].ID || got[1].Event.ID != evs[4].ID {
		t.Fatalf("after GoLive(%q) got %s, %s; want %s, %s", cursor, got[0].Event.ID, got[1].Event.ID, evs[3].ID, evs[4].ID)
	}
	want := st.Next(st.Next(cursor, topics, evs[3]), topics, evs[4])
	if got[1].Cursor != want {
		t.Errorf("cursor after the last = %q, want %q", got[1].Cursor, want)
	}
}

// TestFeedStartedCutsEarlierSubscribers: a subscriber registered before the
// feed is in place may have missed events, so it is cut loose to resume
// from its cursor.
func TestFeedStartedCutsEarlierSubscribers(t *testing.T) {
	st := memory.NewShared(store.Retention{})
	h := New(Options{Store: st})
	s, err := h.Subscribe([]string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.GoLive("")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no cut-off after the feed started")
	}
	if !s.Cut() {
		t.Fatal("ready without a cut")
	}
	later, err := h.Subscribe([]string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	later.GoLive("")
	// The feed is in place once Run has started it; a later subscriber
	// gets events, and is not cut.
	deadline := time.Now().Add(10 * time.Second)
	for {
		publish(t, h, "a", "x")
		select {
		case <-later.Ready():
			if ds, cut := later.Take(nil); cut || len(ds) == 0 {
				t.Fatalf("later subscriber: %d deliveries, cut %v", len(ds), cut)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("later subscriber got nothing")
		}
	}
}

// TestFeedGapCutsItsTopic: a node that falls behind its feed loses events;
// the subscribers of those topics are cut loose (they resume from their
// cursors and the store reports the loss), the others go on.
func TestFeedGapCutsItsTopic(t *testing.T) {
	st := memory.NewShared(store.Retention{})
	st.FeedLimit = 4
	h := startNode(t, st)
	waitFed(t, h, st)
	sa, _ := h.Subscribe([]string{"a"})
	sb, _ := h.Subscribe([]string{"b"})
	defer sa.Close()
	defer sb.Close()
	sa.GoLive("")
	sb.GoLive("")
	// Hold the fan-out, as a node stalled by a busy CPU, while a burst
	// beyond the feed's limit is committed elsewhere: the feed takes at
	// most FeedLimit events before it blocks on the fan-out, and more than
	// FeedLimit wait behind them.
	h.mu.Lock()
	for i := range 2*st.FeedLimit + 2 {
		if _, err := st.Append(context.Background(), []store.Record{{Topic: "a", Data: fmt.Sprint(i)}}); err != nil {
			h.mu.Unlock()
			t.Fatal(err)
		}
	}
	h.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !sa.Cut() {
		if time.Now().After(deadline) {
			t.Fatal("subscriber of the topic with a gap was not cut")
		}
		time.Sleep(time.Millisecond)
	}
	publish(t, h, "b", "after")
	got := collect(t, sb, 1)
	if got[len(got)-1].Event.Data != "after" {
		t.Errorf("subscriber of the other topic got %q", got[len(got)-1].Event.Data)
	}
}

// waitFed publishes to a topic nobody else reads until the hub's feed
// delivers it to a subscriber that was not cut: the feed is then in place.
func waitFed(t *testing.T, h *Hub, st *memory.Shared) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		probe, err := h.Subscribe([]string{"probe"})
		if err != nil {
			t.Fatal(err)
		}
		probe.GoLive("")
		publish(t, h, "probe", "x")
		select {
		case <-probe.Ready():
		case <-time.After(10 * time.Millisecond):
		}
		ds, cut := probe.Take(nil)
		probe.Close()
		if len(ds) > 0 && !cut {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the feed delivered nothing")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// stoppingFeed is a memory.Shared whose first Follow gives up when stop is
// closed, as a feed that cannot go on (its store's client closed under it).
type stoppingFeed struct {
	*memory.Shared
	stop  chan struct{}
	calls atomic.Int32
}

func (f *stoppingFeed) Follow(ctx context.Context, sink store.FeedSink) error {
	if f.calls.Add(1) > 1 {
		return f.Shared.Follow(ctx, sink)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-fctx.Done():
		}
	}()
	err := f.Shared.Follow(fctx, sink)
	if ctx.Err() != nil {
		return err
	}
	return errors.New("feed gave up")
}

// TestFeedStoppedCutsAllAndFollowsAgain: when Follow gives up, every
// subscriber may miss events, so each is cut loose to resume from its
// cursor; the hub follows again after followRetry.
func TestFeedStoppedCutsAllAndFollowsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &stoppingFeed{Shared: memory.NewShared(store.Retention{}), stop: make(chan struct{})}
		h := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = h.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		synctest.Wait() // the feed has started
		s, _ := h.Subscribe([]string{"a"})
		defer s.Close()
		s.GoLive("")
		close(st.stop)
		synctest.Wait()
		if !s.Cut() {
			t.Fatal("subscriber not cut loose when the feed stopped")
		}
		if st.calls.Load() != 1 {
			t.Fatalf("Follow called %d times before followRetry", st.calls.Load())
		}
		time.Sleep(followRetry)
		synctest.Wait()
		if st.calls.Load() != 2 {
			t.Fatalf("Follow called %d times after followRetry, want 2", st.calls.Load())
		}
		later, _ := h.Subscribe([]string{"a"})
		defer later.Close()
		later.GoLive("")
		publish(t, h, "a", "x")
		synctest.Wait()
		if ds, cut := later.Take(nil); cut || len(ds) != 1 {
			t.Fatalf("after following again: %d deliveries, cut %v", len(ds), cut)
		}
	})
}

// TestFloorPerTopic: after GoLive, frames arrive in order per topic but
// interleaved across topics as the feed delivers them; a frame of one
// topic past the cursor must not end the check for another topic, whose
// next frames the replay may already have sent.
func TestFloorPerTopic(t *testing.T) {
	st := memory.NewShared(store.Retention{})
	h := New(Options{Store: st}) // not running: the test plays the feed
	topics := []string{"a", "b"}
	s, err := h.Subscribe(topics)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []store.Event
	for _, topic := range []string{"a", "b", "b", "a", "b"} { // a1 b1 b2 a2 b3
		res, err := st.Append(context.Background(), []store.Record{{Topic: topic, Data: topic}})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, res[0].Event)
	}
	a1, b1, b2, a2, b3 := evs[0], evs[1], evs[2], evs[3], evs[4]
	cursor := st.Next(st.Next(st.Next("", topics, a1), topics, b1), topics, b2) // what the replay sent
	s.GoLive(cursor)
	h.deliver([]store.Event{a1, a2, b1, b2, b3}) // the feed, late with b
	got, _ := s.Take(nil)
	var ids []string
	for _, d := range got {
		ids = append(ids, d.Event.ID)
	}
	if want := []string{a2.ID, b3.ID}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("after GoLive(%q) got %v, want %v: the replay sent the rest", cursor, ids, want)
	}
	if last := got[len(got)-1].Cursor; st.Next(st.Next(cursor, topics, a2), topics, b3) != last {
		t.Errorf("last cursor %q does not continue the replay's", last)
	}
}
