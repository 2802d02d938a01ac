package hub

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// TestFanOutByPattern: a pattern subscriber gets every event of the
// topics its pattern matches, each once even when its set names a topic
// twice over (a pattern and a name, two nested patterns), nothing of other
// topics, and nothing of a reserved topic, even for "*".
func TestFanOutByPattern(t *testing.T) {
	h := startHub(t, Options{})
	sets := map[string][]string{
		"orders":  {"orders/*"},
		"overlap": {"orders/1", "orders/*", "orders/eu/*"},
		"all":     {"*"},
		"eu":      {"orders/eu/*"},
		"exact":   {"orders/1"},
	}
	subs := map[string]*Subscriber{}
	for name, topics := range sets {
		s, err := h.Subscribe(topics)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.GoLive("")
		subs[name] = s
	}
	var all []store.Event
	for i, topic := range []string{"orders/1", "orders/eu/2", "ordersX", "misc", store.ReservedPrefix + "dashboard", "orders/3"} {
		all = append(all, publish(t, h, topic, strconv.Itoa(i)))
	}
	for name, s := range subs {
		var want []string
		for _, e := range all {
			if slices.ContainsFunc(sets[name], func(p string) bool { return store.Match(p, e.Topic) }) {
				want = append(want, e.ID)
			}
		}
		got, _ := s.Take(nil)
		var ids []string
		for _, d := range got {
			ids = append(ids, d.Frame.Event.ID)
			if d.Frame.Event.Topic == store.ReservedPrefix+"dashboard" {
				t.Errorf("%s: got an event of the reserved topic", name)
			}
		}
		if !slices.Equal(ids, want) {
			t.Errorf("%s %q: got %q, want %q", name, sets[name], ids, want)
		}
	}
	// Closed pattern subscribers leave the index.
	for _, s := range subs {
		s.Close()
	}
	if n := len(h.patterns.byPrefix) + len(h.patterns.sorted); n != 0 {
		t.Errorf("the pattern index keeps %d entries after every subscriber closed", n)
	}
}

// TestPatternFloor: a pattern subscriber that goes live at a cursor drops
// the frames the replay already gave, of any topic under the pattern, and
// keeps the rest.
func TestPatternFloor(t *testing.T) {
	h := startHub(t, Options{})
	s, err := h.Subscribe([]string{"orders/*", "misc"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e1 := publish(t, h, "orders/1", "a")
	publish(t, h, "misc", "b")
	e3 := publish(t, h, "orders/2", "c")
	e4 := publish(t, h, "orders/3", "d")
	s.GoLive(e3.ID) // the replay gave everything up to e3
	got := waitFrames(t, s, 1)
	if len(got) != 1 || got[0].Frame.Event.ID != e4.ID {
		t.Fatalf("after GoLive(%s) got %v, want only %s (not %s)", e3.ID, got, e4.ID, e1.ID)
	}
}

// TestPatternsNeedStoreSupport: a store with vector cursors does not read
// patterns, so the hub refuses to subscribe one rather than deliver events
// that no cursor could resume.
func TestPatternsNeedStoreSupport(t *testing.T) {
	h := startHub(t, Options{Store: memory.NewShared(store.Retention{})})
	if _, err := h.Subscribe([]string{"orders/*"}); !errors.Is(err, ErrPatterns) {
		t.Fatalf("Subscribe(orders/*) on memory.Shared: %v, want ErrPatterns", err)
	}
	s, err := h.Subscribe([]string{"orders/1"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
