package hub

import (
	"context"
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/redis"
)

// TestPatternKeepsFloorAcrossIndexes: on Redis "*" with "" and orders/
// declared reads two indexes, whose frames reach the hub each in order
// but not together. After GoLive at a cursor that has one event of each,
// a new frame of one index must not lift the floor for the other: a frame
// the replay gave, arriving after it, is dropped, not sent twice. Each
// frame carries the pattern's cursor (Next), not the event's ID.
func TestPatternKeepsFloorAcrossIndexes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	st, err := redis.Open(ctx, redis.Config{Client: goredis.NewClient(&goredis.Options{Addr: srv.Addr}), PatternPrefixes: []string{"", "orders/"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h := New(Options{Store: st}) // not run: the test hands frames over itself
	topics := []string{"*"}
	s, err := h.Subscribe(topics)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := st.Append(ctx, []store.Record{{Topic: "orders/1", Data: "o1"}, {Topic: "misc", Data: "m1"}})
	if err != nil {
		t.Fatal(err)
	}
	o1, m1 := got[0].Event, got[1].Event
	// The replay gave o1 only; m1 is new, and o1 comes again after it.
	cursor := st.Next("", topics, o1)
	s.GoLive(cursor)
	for _, e := range []store.Event{m1, o1} {
		if r := s.push(NewFrame(e)); r != pushed {
			t.Fatalf("push %s: %v", e.ID, r)
		}
	}
	ds, _ := s.Take(nil)
	if len(ds) != 1 || ds[0].Frame.Event.ID != m1.ID {
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.Frame.Event.ID)
		}
		t.Fatalf("delivered %q, want only %s (o1 was replayed)", ids, m1.ID)
	}
	if want := st.Next(cursor, topics, m1); ds[0].Cursor != want {
		t.Errorf("cursor %q, want the pattern's %q", ds[0].Cursor, want)
	}
	page, err := st.Read(ctx, topics, ds[0].Cursor, 0)
	if err != nil || len(page.Events) != 0 || page.Truncated {
		t.Errorf("Read after the delivered cursor: %+v, %v; want nothing", page, err)
	}
}

// TestSubscribeRefusesUnservedPattern: Subscribe refuses a pattern the
// store does not read (store.CheckPattern) with ErrPatterns, saying why.
func TestSubscribeRefusesUnservedPattern(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := redis.Open(context.Background(), redis.Config{Client: goredis.NewClient(&goredis.Options{Addr: srv.Addr}), PatternPrefixes: []string{"orders/"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h := New(Options{Store: st})
	if _, err := h.Subscribe([]string{"orders/1", "misc/*"}); !errors.Is(err, ErrPatterns) || !errors.Is(err, store.ErrPatternNotServed) {
		t.Errorf("Subscribe(misc/*) = %v, want ErrPatterns wrapping store.ErrPatternNotServed", err)
	}
	s, err := h.Subscribe([]string{"orders/eu/*"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestGapOfPatternCutsOverlapping: a feed's Gap of a pattern (a prefix
// index that lost events) cuts loose the subscribers of every pattern
// that overlaps it, and no others.
func TestGapOfPatternCutsOverlapping(t *testing.T) {
	h := startHub(t, Options{})
	subs := map[string]*Subscriber{}
	for _, p := range []string{"orders/*", "orders/eu/*", "*", "chat/*", "ord*"} {
		s, err := h.Subscribe([]string{p})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.GoLive("")
		subs[p] = s
	}
	exact, err := h.Subscribe([]string{"orders/1"})
	if err != nil {
		t.Fatal(err)
	}
	defer exact.Close()
	exact.GoLive("")
	(&feedSink{h: h}).Gap("orders/*")
	for p, s := range subs {
		want := p != "chat/*"
		if s.Cut() != want {
			t.Errorf("after Gap(orders/*), %s cut = %v, want %v", p, s.Cut(), want)
		}
	}
	if exact.Cut() {
		t.Errorf("after Gap(orders/*), a subscriber of orders/1 alone was cut: its topic's gaps come by name")
	}
}
