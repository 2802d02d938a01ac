package storetest

import (
	"fmt"
	"testing"

	"github.com/sseguard/sseguard/store"
)

// RunDurable checks what a store keeps across Close and a new open of the
// same folder: every event with its ID, the idempotency keys, the retention
// watermarks behind Page.Truncated, and a sequence that goes on increasing.
// open must return a store on the data in dir, which the suite creates; the
// suite closes every store it opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string, r store.Retention) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, reopen func() store.Store)
	}{
		{"ReopenEmpty", testReopenEmpty},
		{"ReopenKeepsEvents", testReopenKeepsEvents},
		{"ReopenKeepsKeys", testReopenKeepsKeys},
		{"ReopenKeepsRetention", testReopenKeepsRetention},
		{"ReopenContinuesSequence", testReopenContinuesSequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var last store.Store
			tt.run(t, func() store.Store {
				t.Helper()
				if last != nil {
					if err := last.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
				}
				last = open(t, dir, store.Retention{MaxEventsPerTopic: 5})
				s := last
				t.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
}

func testReopenEmpty(t *testing.T, reopen func() store.Store) {
	reopen()
	s := reopen()
	head := mustHead(t, s, "a")
	got := mustAppend(t, s, rec("a", "1"))
	assertEvents(t, readAll(t, s, []string{"a"}, ""), events(got))
	assertEvents(t, readAll(t, s, []string{"a"}, head), events(got))
}

func testReopenKeepsEvents(t *testing.T, reopen func() store.Store) {
	s := reopen()
	var all []store.Appended
	for i := range 4 {
		all = append(all, mustAppend(t, s,
			store.Record{Topic: "a", Type: "t", Data: fmt.Sprint("a", i)},
			store.Record{Topic: "b", Data: fmt.Sprint("b\n", i)},
		)...)
	}
	head := mustHead(t, s, "a", "b")
	s = reopen()
	if got := mustHead(t, s, "a", "b"); got != head {
		t.Errorf("Head after reopen = %q, want %q", got, head)
	}
	assertMerged(t, readAll(t, s, []string{"a", "b"}, ""), events(all))
	assertEvents(t, readAll(t, s, []string{"b"}, all[1].Event.ID), events(filter(all[2:], "b")))
}

func testReopenKeepsKeys(t *testing.T, reopen func() store.Store) {
	s := reopen()
	first := mustAppend(t, s, keyed("a", "x", "k1"), keyed("b", "y", "k2"))
	s = reopen()
	again := mustAppend(t, s, keyed("a", "x", "k1"), keyed("b", "y", "k2"), keyed("a", "z", "k3"))
	for i, g := range again[:2] {
		if !g.Duplicate {
			t.Errorf("key %d forgotten across reopen: %+v", i, g)
		}
		assertEvent(t, g.Event, first[i].Event)
	}
	if again[2].Duplicate {
		t.Errorf("new key taken for a duplicate: %+v", again[2])
	}
	assertMerged(t, readAll(t, s, []string{"a", "b"}, ""), append(events(first), again[2].Event))
}

func testReopenKeepsRetention(t *testing.T, reopen func() store.Store) {
	s := reopen()
	var all []store.Appended
	for i := range 8 {
		all = append(all, mustAppend(t, s, rec("a", fmt.Sprint(i)))...)
	}
	mustTrim(t, s, all[len(all)-1].Event.Time)
	s = reopen()
	page := mustRead(t, s, []string{"a"}, all[0].Event.ID, 0)
	if !page.Truncated {
		t.Error("Truncated forgotten across reopen")
	}
	assertEvents(t, page.Events, events(all[3:]))
	page = mustRead(t, s, []string{"a"}, all[2].Event.ID, 0)
	if page.Truncated {
		t.Error("Truncated after reopen for a cursor at the last trimmed event")
	}
	more := mustAppend(t, s, rec("a", "8"))
	all = append(all, more...)
	mustTrim(t, s, more[0].Event.Time)
	assertEvents(t, readAll(t, s, []string{"a"}, ""), events(all[4:]))
}

func testReopenContinuesSequence(t *testing.T, reopen func() store.Store) {
	s := reopen()
	var evs []store.Event
	for round := range 3 {
		for i := range 3 {
			got := mustAppend(t, s, rec(fmt.Sprint("t", i), fmt.Sprint(round, i)))
			evs = append(evs, got[0].Event)
		}
		s = reopen()
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			t.Fatalf("ID %q assigned twice across reopens", e.ID)
		}
		seen[e.ID] = true
	}
	if err := topicOrder(s, evs); err != nil {
		t.Errorf("IDs across reopens: %v", err)
	}
	topics := []string{"t0", "t1", "t2"}
	if page := mustRead(t, s, topics, mustHead(t, s, topics...), 0); len(page.Events) != 0 {
		t.Errorf("Read after Head = %s, want nothing", briefs(page.Events))
	}
}
