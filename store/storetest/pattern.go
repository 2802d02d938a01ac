package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/sseguard/sseguard/store"
)

// Laws of topic patterns, for stores that read them (store.Patterns):
//
//   - Read of a pattern returns the events of every topic it matches, and
//     nothing of a reserved topic, even for "*".
//   - A reader's cursor over a pattern, built with Next, resumes exactly:
//     a topic that got its first event after the cursor was issued is read
//     from that event, never skipped.
//   - Head of a pattern has Seen every committed event of its topics.
//   - A pattern and a name it covers in one set give each event once.
//   - A cursor issued for one pattern and used with another never skips
//     an event of the other committed after it was issued (a store may
//     read the other pattern from its start: it names nothing of it).
//   - Retention that removed events of a pattern after its cursor makes
//     Read report Truncated, then the retained events.
//
// Stores that do not read patterns skip these cases.

func patternCases() []struct {
	name string
	run  func(t *testing.T, open opener)
} {
	return []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"PatternReadsMatchingTopics", testPatternReadsMatchingTopics},
		{"PatternResumesWithNewTopics", testPatternResumesWithNewTopics},
		{"PatternHead", testPatternHead},
		{"PatternOverlapOnce", testPatternOverlapOnce},
		{"PatternCursorOfOtherPattern", testPatternCursorOfOtherPattern},
		{"PatternTruncated", testPatternTruncated},
	}
}

func patternStore(t *testing.T, open opener) store.Store {
	t.Helper()
	return patternStoreWith(t, open, store.Retention{})
}

func patternStoreWith(t *testing.T, open opener, r store.Retention) store.Store {
	t.Helper()
	s := open(t, r)
	if !store.SupportsPatterns(s) {
		t.Skip("this store does not read topic patterns")
	}
	return s
}

// matching returns the events of es that one of topics matches.
func matching(es []store.Event, topics ...string) []store.Event {
	var out []store.Event
	for _, e := range es {
		for _, t := range topics {
			if store.Match(t, e.Topic) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

func testPatternReadsMatchingTopics(t *testing.T, open opener) {
	s := patternStore(t, open)
	all := appendMix(t, s, []string{"orders/1", "orders/eu/2", "ordersX", "other", store.ReservedPrefix + "dashboard"}, 30, "p")
	for _, topics := range [][]string{{"orders/*"}, {"orders/eu/*"}, {"*"}, {"orders*"}, {"orders/*", "other"}, {"nothing/*"}} {
		want := matching(all, topics...)
		got := readAll(t, s, topics, "")
		assertMerged(t, got, want)
		for _, e := range got {
			if e.Topic == store.ReservedPrefix+"dashboard" {
				t.Errorf("Read(%q) gave an event of the reserved topic %q", topics, e.Topic)
			}
		}
	}
}

func testPatternResumesWithNewTopics(t *testing.T, open opener) {
	s := patternStore(t, open)
	topics := []string{"orders/*"}
	first := appendMix(t, s, []string{"orders/1", "misc"}, 6, "a")
	given := readAll(t, s, topics, "")
	assertMerged(t, given, matching(first, topics...))
	cursor := cursorAfter(s, "", topics, given)
	// orders/2 and orders/3 appear only after the cursor was issued.
	later := appendMix(t, s, []string{"orders/2", "orders/1", "misc", "orders/3"}, 12, "b")
	want := matching(later, topics...)
	checkResume(t, s, topics, cursor, want)
	// Resume from every point of the later events, one page at a time.
	for i := range want {
		c := cursorAfter(s, cursor, topics, want[:i])
		checkResume(t, s, topics, c, want[i:])
		for _, e := range want[:i] {
			if !s.Seen(c, topics, e) {
				t.Errorf("Seen(%q, %q, %s) = false for an event given", c, topics, brief(e))
			}
		}
	}
}

func testPatternHead(t *testing.T, open opener) {
	s := patternStore(t, open)
	topics := []string{"orders/*"}
	before := appendMix(t, s, []string{"orders/1", "misc", "orders/2"}, 9, "a")
	head := mustHead(t, s, topics...)
	for _, e := range matching(before, topics...) {
		if !s.Seen(head, topics, e) {
			t.Errorf("Head(%q) = %q has not Seen %s", topics, head, brief(e))
		}
	}
	later := appendMix(t, s, []string{"orders/9", "misc", "orders/1"}, 9, "b")
	checkResume(t, s, topics, head, matching(later, topics...))
}

func testPatternOverlapOnce(t *testing.T, open opener) {
	s := patternStore(t, open)
	all := appendMix(t, s, []string{"orders/1", "orders/eu/1", "misc"}, 18, "a")
	for _, topics := range [][]string{
		{"orders/*", "orders/1"},
		{"orders/eu/*", "orders/*"},
		{"orders/*", "orders/*"},
	} {
		got := readAll(t, s, topics, "")
		assertMerged(t, got, matching(all, topics...))
		for _, e := range got {
			if n := count(got, e.ID); n != 1 {
				t.Fatalf("Read(%q) gave %s %d times", topics, brief(e), n)
			}
		}
	}
}

func testPatternCursorOfOtherPattern(t *testing.T, open opener) {
	s := patternStore(t, open)
	eu, us := []string{"orders/eu/*"}, []string{"orders/us/*"}
	appendMix(t, s, []string{"orders/eu/1", "orders/us/1", "orders/eu/2"}, 12, "a")
	cursor := cursorAfter(s, "", eu, readAll(t, s, eu, ""))
	later := appendMix(t, s, []string{"orders/us/1", "orders/eu/1", "orders/us/2"}, 12, "b")
	got := readAll(t, s, us, cursor)
	for _, e := range matching(later, us...) {
		if n := count(got, e.ID); n != 1 {
			t.Errorf("Read(%q, cursor of %q) gave %s %d times, want once", us, eu, brief(e), n)
		}
		if s.Seen(cursor, us, e) {
			t.Errorf("Seen(cursor of %q, %q, %s) = true", eu, us, brief(e))
		}
	}
	for _, e := range got {
		if !store.Match(us[0], e.Topic) || count(got, e.ID) != 1 {
			t.Errorf("Read(%q, cursor of %q) gave %s", us, eu, brief(e))
		}
	}

}

func testPatternTruncated(t *testing.T, open opener) {
	s := patternStoreWith(t, open, store.Retention{MaxEventsPerTopic: 2})
	ctx := context.Background()
	topics := []string{"orders/*"}
	first := appendMix(t, s, []string{"orders/1", "orders/2", "misc"}, 3, "a")
	cursor := cursorAfter(s, "", topics, matching(first, topics...))
	appendMix(t, s, []string{"orders/1", "orders/2", "misc"}, 15, "b")
	if _, err := s.Trim(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	page := mustRead(t, s, topics, cursor, 0)
	if !page.Truncated {
		t.Errorf("Read(%q) after retention removed events after the cursor: not Truncated", topics)
	}
	for _, e := range page.Events {
		if !store.Match(topics[0], e.Topic) {
			t.Errorf("Read(%q) gave %s", topics, brief(e))
		}
	}
	if len(page.Events) == 0 {
		t.Errorf("Read(%q) after retention gave no event: the retained ones follow a reset", topics)
	}
}
