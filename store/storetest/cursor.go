package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sseguard/sseguard/store"
)

// The cursor laws, for any store:
//
//   - A reader's cursor is Next folded over the events it was given, in the
//     order Read gave them; Read after it returns exactly the retained
//     events of its topics that are not Seen at it, each topic in order.
//   - Seen is true for every event folded into a cursor and false for every
//     event committed after the cursor was made.
//   - For a single topic, Next returns the event's ID.
//   - Head(topics) has Seen every committed event of topics; Read after it
//     returns exactly the events committed later.

// appendMix appends n events spread over topics, round robin, in batches of
// up to three records.
func appendMix(t *testing.T, s store.Store, topics []string, n int, tag string) []store.Event {
	t.Helper()
	var out []store.Event
	for i := 0; i < n; {
		var recs []store.Record
		for j := 0; j < 3 && i < n; j++ {
			recs = append(recs, rec(topics[i%len(topics)], fmt.Sprint(tag, i)))
			i++
		}
		out = append(out, events(mustAppend(t, s, recs...))...)
	}
	return out
}

// checkResume checks the first law: Read after cursor returns exactly want
// (the events of topics not yet given to the reader), and that each of them
// is not Seen at cursor.
func checkResume(t *testing.T, s store.Store, topics []string, cursor string, want []store.Event) {
	t.Helper()
	for _, e := range want {
		if s.Seen(cursor, topics, e) {
			t.Errorf("Seen(%q, %q, %s) = true for an event not given yet", cursor, topics, brief(e))
		}
	}
	assertMerged(t, readAll(t, s, topics, cursor), want)
}

func testCursorsResumeExactly(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	all := appendMix(t, s, []string{"a", "b", "c"}, 24, "x")
	topics := []string{"a", "b"}
	want := events(filter(asAppended(all), topics...))
	order := readAll(t, s, topics, "")
	assertMerged(t, order, want)
	// Resume from the cursor after every prefix of what Read gave.
	cursor := ""
	for i, e := range order {
		if s.Seen(cursor, topics, e) {
			t.Fatalf("event %d %s Seen before it was given", i, brief(e))
		}
		cursor = s.Next(cursor, topics, e)
		if !store.ValidCursor(cursor) || cursor == "" {
			t.Fatalf("Next after event %d = %q, not a cursor", i, cursor)
		}
		for _, given := range order[:i+1] {
			if !s.Seen(cursor, topics, given) {
				t.Fatalf("cursor %q after event %d has not Seen %s", cursor, i, brief(given))
			}
		}
		checkResume(t, s, topics, cursor, order[i+1:])
	}
	// Events committed after the cursor was made follow it, and only they.
	later := appendMix(t, s, []string{"c", "b", "a"}, 9, "y")
	checkResume(t, s, topics, cursor, events(filter(asAppended(later), topics...)))
}

// testCursorAfterEachLimit reads two topics page by page with every limit
// and checks that the pages, each from the previous page's cursor, give
// every event once.
func testCursorAfterEachLimit(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	all := appendMix(t, s, []string{"a", "b", "c"}, 15, "x")
	topics := []string{"c", "a"}
	want := events(filter(asAppended(all), topics...))
	for limit := 1; limit <= len(want)+1; limit++ {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []store.Event
			cursor := ""
			for range len(want) + 2 {
				page := mustRead(t, s, topics, cursor, limit)
				got = append(got, page.Events...)
				cursor = cursorAfter(s, cursor, topics, page.Events)
				if !page.More {
					break
				}
			}
			assertMerged(t, got, want)
		})
	}
}

func testNextOfOneTopicIsID(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	all := appendMix(t, s, []string{"a", "b"}, 6, "x")
	for _, topic := range []string{"a", "b"} {
		cursor := ""
		for _, e := range readAll(t, s, []string{topic}, "") {
			if next := s.Next(cursor, []string{topic}, e); next != e.ID {
				t.Errorf("Next(%q, [%s], %s) = %q, want the ID", cursor, topic, brief(e), next)
			}
			cursor = e.ID
		}
		if cursor != filter(asAppended(all), topic)[2].Event.ID {
			t.Errorf("last cursor of %s = %q, want its last ID", topic, cursor)
		}
	}
}

func testSeenLaws(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	all := appendMix(t, s, []string{"a", "b"}, 6, "x")
	topics := []string{"a", "b"}
	for _, e := range all {
		for _, cursor := range []string{"", "not a cursor\n", "\x00"} {
			if s.Seen(cursor, topics, e) {
				t.Errorf("Seen(%q, %q, %s) = true, want false for a cursor that has seen nothing", cursor, topics, brief(e))
			}
		}
		if !s.Seen(e.ID, []string{e.Topic}, e) {
			t.Errorf("Seen(its own ID, %s) = false", brief(e))
		}
	}
	head := mustHead(t, s, topics...)
	for _, e := range all {
		if !s.Seen(head, topics, e) {
			t.Errorf("Seen(Head %q, %s) = false for an event committed before Head", head, brief(e))
		}
	}
	for _, e := range appendMix(t, s, topics, 4, "y") {
		if s.Seen(head, topics, e) {
			t.Errorf("Seen(Head %q, %s) = true for an event committed after Head", head, brief(e))
		}
	}
}

// testCursorOfOtherTopicSet resumes with a cursor issued for one topic set
// on another: positions of the topics the cursor names hold, other topics
// are read from their oldest retained event or later, and nothing committed
// after the cursor was issued is skipped.
func testCursorOfOtherTopicSet(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	before := appendMix(t, s, []string{"a", "b", "c"}, 12, "x")
	issued := []struct {
		name   string
		topics []string
	}{
		{name: "one topic", topics: []string{"a"}},
		{name: "two topics", topics: []string{"a", "b"}},
		{name: "head of two topics", topics: nil},
	}
	resumed := [][]string{{"a", "b", "c"}, {"b"}, {"c", "d"}, {"a"}}
	for _, is := range issued {
		for _, topics := range resumed {
			t.Run(fmt.Sprintf("%s resumed on %q", is.name, topics), func(t *testing.T) {
				var cursor string
				if is.topics == nil {
					cursor = mustHead(t, s, "a", "b")
				} else {
					// Given all but the last event of its topics.
					given := readAll(t, s, is.topics, "")
					cursor = cursorAfter(s, "", is.topics, given[:len(given)-1])
				}
				page, err := s.Read(context.Background(), topics, cursor, 0)
				if err != nil {
					t.Fatalf("Read(%q) after a cursor of another topic set: %v, want events", topics, err)
				}
				if page.Truncated {
					t.Errorf("Truncated without retention")
				}
				// Exactly the events not Seen at the cursor, each topic in
				// order, the first law for any cursor.
				var want []store.Event
				for _, e := range readAll(t, s, topics, "") {
					if !s.Seen(cursor, topics, e) {
						want = append(want, e)
					}
				}
				got := readAll(t, s, topics, cursor)
				assertMerged(t, got, want)
				// A topic the cursor positioned resumes after its position:
				// the events of a issued topic that the reader was given
				// are not read again.
				for _, e := range before {
					if is.topics != nil && contains(is.topics, e.Topic) && contains(topics, e.Topic) {
						if s.Seen(cursor, is.topics, e) != s.Seen(cursor, topics, e) {
							t.Errorf("Seen of %s depends on the reader's other topics", brief(e))
						}
					}
				}
			})
		}
	}
	// Nothing committed after the cursor was issued is skipped.
	cursor := mustHead(t, s, "a")
	later := appendMix(t, s, []string{"a", "b", "c"}, 6, "y")
	got := readAll(t, s, []string{"a", "b", "c"}, cursor)
	for _, e := range later {
		if n := count(got, e.ID); n != 1 {
			t.Errorf("event %s committed after the cursor was read %d times, want once", brief(e), n)
		}
	}
}

func testHeadPerTopicSet(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	appendMix(t, s, []string{"a", "b", "c"}, 9, "x")
	sets := [][]string{{"a"}, {"b", "a"}, {"a", "b", "c"}, {"nope"}, {"nope", "c"}}
	heads := make([]string, len(sets))
	for i, topics := range sets {
		heads[i] = mustHead(t, s, topics...)
		if page := mustRead(t, s, topics, heads[i], 0); len(page.Events) != 0 || page.Truncated {
			t.Errorf("Read(%q) after Head = %+v, want an empty page", topics, page)
		}
	}
	later := appendMix(t, s, []string{"c", "nope", "b", "a"}, 8, "y")
	for i, topics := range sets {
		assertMerged(t, readAll(t, s, topics, heads[i]), events(filter(asAppended(later), topics...)))
	}
}

// RunLoss checks that a store that loses its data (a Redis restarted
// without persistence) never passes it off as history: a cursor from
// before the loss is a reset (store.ErrUnknownCursor, or Truncated with
// the new events), never a silent skip, and new events are not Seen at it.
// open returns an empty store and a function that wipes the store's data
// behind its back (and restarts whatever holds it); the store stays open.
// memory and bolt do not run it: a wiped bolt file starts its sequence
// over and cannot tell.
func RunLoss(t *testing.T, open func(t *testing.T) (s store.Store, wipe func())) {
	for _, tt := range []struct {
		name         string
		before, more int
	}{
		{name: "fewer events after the loss", before: 5, more: 2},
		{name: "more events after the loss", before: 3, more: 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, wipe := open(t)
			t.Cleanup(func() { _ = s.Close() })
			for _, topics := range [][]string{{"a"}, {"a", "b"}} {
				appendMix(t, s, topics, tt.before, "old")
				cursor := cursorAfter(s, "", topics, readAll(t, s, topics, ""))
				wipe()
				fresh := appendMix(t, s, topics, tt.more, "new")
				for _, e := range fresh {
					if s.Seen(cursor, topics, e) {
						t.Errorf("%q: an event after the loss %s is Seen at a cursor from before it", topics, brief(e))
					}
				}
				page, err := s.Read(context.Background(), topics, cursor, 0)
				switch {
				case errors.Is(err, store.ErrUnknownCursor):
				case err != nil:
					t.Fatalf("%q: Read after the loss: %v", topics, err)
				case !page.Truncated:
					t.Errorf("%q: Read after the loss = %s without Truncated: a silent gap", topics, briefs(page.Events))
				default:
					assertMerged(t, page.Events, fresh)
				}
				wipe()
			}
		})
	}
}

func asAppended(es []store.Event) []store.Appended {
	out := make([]store.Appended, len(es))
	for i, e := range es {
		out[i] = store.Appended{Event: e}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func count(es []store.Event, id string) int {
	n := 0
	for _, e := range es {
		if e.ID == id {
			n++
		}
	}
	return n
}

// testZeroCursorIsTheStart: "0", the cursor a client writes itself to ask
// for all retained history, reads what the empty cursor reads, has seen
// nothing, and folds as the empty cursor does.
func testZeroCursorIsTheStart(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	all := appendMix(t, s, []string{"a", "b"}, 6, "z")
	for _, topics := range [][]string{{"a"}, {"a", "b"}} {
		want := events(filter(asAppended(all), topics...))
		checkResume(t, s, topics, "0", want)
		for _, e := range want {
			if got, from := s.Next("0", topics, e), s.Next("", topics, e); got != from {
				t.Errorf("Next(\"0\", %q, %s) = %q, want %q as from the empty cursor", topics, brief(e), got, from)
			}
		}
	}
}
