// Package storetest is the conformance suite that every store.Store must
// pass: store/memory and store/bolt call Run from a test, and the durable
// one, store/bolt, calls RunDurable too.
//
// The suite pins down what store.Store's doc comments leave to judgement:
//
//   - An empty cursor reads from the oldest retained event and never reports
//     Truncated: the caller asked for whatever history there is. A cursor
//     reports Truncated when an event of a requested topic with an ID after
//     the cursor was removed by retention, and only then.
//   - Idempotency keys are one namespace per topic at least: a repeated key
//     of one topic returns the first event. A store may make them one
//     namespace for the whole store (memory and bolt do: the key then
//     returns the first event even for another topic); a store sharded by
//     topic keeps them with the topic, so that the key and the event are
//     stored in one atomic step. Callers that serve several principals
//     scope the key themselves.
//   - A key is remembered while its first event is at most the window old;
//     Trim(now) forgets older ones. Trim(now) removes events more than MaxAge
//     older than now, and at most MaxEventsPerTopic newest events per topic
//     remain after Trim (a store may trim by count earlier, in Append).
//   - A batch with a record without a topic fails whole: nothing of it is
//     stored and none of its keys are remembered.
//   - Every method but Compare, Next and Seen returns store.ErrClosed after
//     Close, a second Close included, and the context's error when the
//     context is done before the call.
//   - IDs are ordered within their topic only, and a page keeps each
//     topic's order: the suite never compares IDs of two topics, and checks
//     reads of several topics per topic. A reader's cursor is always built
//     with Next from the events it was given (see cursor.go): Read after it
//     returns exactly the retained events of its topics that are not Seen.
//
// Package storetest runs against any store through the interface only: it
// never forges IDs, so stores with other ID formats pass it unchanged. It is
// not a benchmark suite; each store benchmarks itself.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/store"
)

// opener returns a new, empty store that applies r and closes it when the
// test ends.
type opener func(t *testing.T, r store.Retention) store.Store

// Run runs the conformance suite as subtests of t, each on a store of its
// own from open.
func Run(t *testing.T, open func(t *testing.T, r store.Retention) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"HeadOfEmptyStore", testHeadOfEmptyStore},
		{"AppendIDsIncrease", testAppendIDsIncrease},
		{"AppendBatchInOrder", testAppendBatchInOrder},
		{"AppendEmptyBatch", testAppendEmptyBatch},
		{"AppendFailedBatchStoresNothing", testAppendFailedBatchStoresNothing},
		{"RoundTrip", testRoundTrip},
		{"ReadMergesTopics", testReadMergesTopics},
		{"ReadAfterCursor", testReadAfterCursor},
		{"ReadLimit", testReadLimit},
		{"ReadUnknownCursor", testReadUnknownCursor},
		{"ReadAtHead", testReadAtHead},
		{"ReadUnknownTopics", testReadUnknownTopics},
		{"IdempotencyDuplicate", testIdempotencyDuplicate},
		{"IdempotencyDistinctKeys", testIdempotencyDistinctKeys},
		{"IdempotencyWindow", testIdempotencyWindow},
		{"IdempotencyAfterRetention", testIdempotencyAfterRetention},
		{"RetentionCount", testRetentionCount},
		{"RetentionAge", testRetentionAge},
		{"Truncated", testTruncated},
		{"ConcurrentAppends", testConcurrentAppends},
		{"Closed", testClosed},
		{"CloseWhileAppending", testCloseWhileAppending},
		{"ContextDone", testContextDone},
		{"CursorsResumeExactly", testCursorsResumeExactly},
		{"CursorAfterEachLimit", testCursorAfterEachLimit},
		{"NextOfOneTopicIsID", testNextOfOneTopicIsID},
		{"SeenLaws", testSeenLaws},
		{"CursorOfOtherTopicSet", testCursorOfOtherTopicSet},
		{"HeadPerTopicSet", testHeadPerTopicSet},
		{"ZeroCursorIsTheStart", testZeroCursorIsTheStart},
	}
	tests = append(tests, patternCases()...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, func(t *testing.T, r store.Retention) store.Store {
				t.Helper()
				s := open(t, r)
				t.Cleanup(func() { _ = s.Close() })
				return s
			})
		})
	}
}

func testHeadOfEmptyStore(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	for _, topics := range [][]string{{"a"}, {"a", "b"}, nil} {
		head := mustHead(t, s, topics...)
		later := appendMix(t, s, []string{"a", "b"}, 4, fmt.Sprint(topics))
		for _, e := range later {
			if contains(topics, e.Topic) && s.Seen(head, topics, e) {
				t.Errorf("Head(%q) of an empty store = %q has Seen a later %s", topics, head, brief(e))
			}
		}
		if len(topics) > 0 {
			page := mustRead(t, s, topics, head, 0)
			assertMerged(t, page.Events, events(filter(asAppended(later), topics...)))
		}
		s = open(t, store.Retention{})
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping of an open store: %v", err)
	}
}

func testAppendIDsIncrease(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	var ids []string
	topicOf := map[string]string{}
	for i := range 12 {
		got := mustAppend(t, s, rec(fmt.Sprintf("t%d", i%3), fmt.Sprintf("d%d", i)))
		ids = append(ids, got[0].Event.ID)
		topicOf[got[0].Event.ID] = got[0].Event.Topic
	}
	seen := map[string]bool{}
	for i, a := range ids {
		if a == "" {
			t.Fatalf("event %d has an empty ID", i)
		}
		if !store.ValidCursor(a) {
			t.Errorf("ID %q is not in the cursor alphabet", a)
		}
		if seen[a] {
			t.Fatalf("ID %q assigned twice", a)
		}
		seen[a] = true
		if c := s.Compare(a, a); c != 0 {
			t.Errorf("Compare(%q, %q) = %d, want 0", a, a, c)
		}
		for _, b := range ids[i+1:] {
			if topicOf[a] != topicOf[b] {
				continue // IDs are ordered within their topic only
			}
			if c := s.Compare(a, b); c != -1 {
				t.Errorf("Compare(%q, %q) = %d, want -1 (appended in that order)", a, b, c)
			}
			if c := s.Compare(b, a); c != 1 {
				t.Errorf("Compare(%q, %q) = %d, want +1", b, a, c)
			}
		}
	}
	topics := []string{"t0", "t1", "t2"}
	if page := mustRead(t, s, topics, mustHead(t, s, topics...), 0); len(page.Events) != 0 {
		t.Errorf("Read after Head = %s, want nothing", briefs(page.Events))
	}
}

func testAppendBatchInOrder(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	before := time.Now()
	recs := []store.Record{rec("a", "0"), rec("b", "1"), rec("a", "2"), rec("c", "3"), rec("a", "4")}
	recs[1].Type = "update"
	got := mustAppend(t, s, recs...)
	after := time.Now()
	if len(got) != len(recs) {
		t.Fatalf("Append of %d records returned %d results", len(recs), len(got))
	}
	for i, g := range got {
		ev := g.Event
		if g.Duplicate {
			t.Errorf("result %d: Duplicate without an idempotency key", i)
		}
		if ev.Topic != recs[i].Topic || ev.Type != recs[i].Type || ev.Data != recs[i].Data {
			t.Errorf("result %d = %+v, want the fields of %+v", i, ev, recs[i])
		}
		if ev.Time.Before(before.Add(-time.Minute)) || ev.Time.After(after.Add(time.Minute)) {
			t.Errorf("result %d: Time %v is not the commit time (between %v and %v)", i, ev.Time, before, after)
		}
		for _, prev := range events(got[:i]) {
			if prev.Topic != ev.Topic {
				continue
			}
			if s.Compare(prev.ID, ev.ID) != -1 {
				t.Errorf("result %d: ID %q not after %q of its topic", i, ev.ID, prev.ID)
			}
			if ev.Time.Before(prev.Time) {
				t.Errorf("result %d: Time %v before the previous event's %v", i, ev.Time, prev.Time)
			}
		}
	}
	all := readAll(t, s, []string{"a", "b", "c"}, "")
	assertMerged(t, all, events(got))
}

func testAppendEmptyBatch(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	got, err := s.Append(context.Background(), nil)
	if err != nil {
		t.Fatalf("Append(nil): %v", err)
	}
	if len(got) != 0 {
		t.Errorf("Append(nil) returned %d results", len(got))
	}
	if page := mustRead(t, s, []string{"a"}, "", 0); len(page.Events) != 0 {
		t.Errorf("events after an empty Append: %s", briefs(page.Events))
	}
}

func testAppendFailedBatchStoresNothing(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	first := mustAppend(t, s, rec("a", "before"))
	before := mustHead(t, s, "a", "b")
	bad := []store.Record{keyed("a", "x", "k1"), rec("", "no topic"), rec("b", "y")}
	if got, err := s.Append(context.Background(), bad); err == nil {
		t.Fatalf("Append with an empty topic = %+v, want an error", got)
	}
	if head := mustHead(t, s, "a", "b"); head != before {
		t.Errorf("Head after a failed Append = %q, want %q", head, before)
	}
	assertEvents(t, readAll(t, s, []string{"a", "b"}, ""), events(first))
	again := mustAppend(t, s, keyed("a", "x", "k1"))
	if again[0].Duplicate {
		t.Errorf("key of a failed batch was remembered: %+v", again[0])
	}
}

func testRoundTrip(t *testing.T, open opener) {
	tests := []struct {
		name string
		rec  store.Record
	}{
		{name: "default type", rec: store.Record{Topic: "t", Data: "hello"}},
		{name: "custom type", rec: store.Record{Topic: "t", Type: "price.update", Data: `{"p":1}`}},
		{name: "empty data", rec: store.Record{Topic: "t"}},
		{name: "newlines", rec: store.Record{Topic: "t", Data: "one\ntwo\r\nthree\r"}},
		{name: "unicode", rec: store.Record{Topic: "тема/🌍", Type: "é", Data: "日本語 \u2028 \x00 bytes"}},
		{name: "large", rec: store.Record{Topic: "big", Data: strings.Repeat("0123456789abcdef", 16<<10)}},
		{name: "topic with separators", rec: store.Record{Topic: "a/b:c\x00d", Data: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, store.Retention{})
			got := mustAppend(t, s, tt.rec)
			page := mustRead(t, s, []string{tt.rec.Topic}, "", 0)
			assertEvents(t, page.Events, events(got))
		})
	}
}

func testReadMergesTopics(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	var all []store.Appended
	for i := range 5 {
		all = append(all, mustAppend(t, s, rec("a", fmt.Sprint("a", i)), rec("b", fmt.Sprint("b", i)))...)
		all = append(all, mustAppend(t, s, rec("c", fmt.Sprint("c", i)))...)
	}
	tests := []struct {
		name   string
		topics []string
	}{
		{name: "one topic", topics: []string{"b"}},
		{name: "two topics", topics: []string{"a", "c"}},
		{name: "order of topics does not matter", topics: []string{"c", "a"}},
		{name: "all topics", topics: []string{"a", "b", "c"}},
		{name: "repeated topic", topics: []string{"a", "a", "c", "a"}},
		{name: "with unknown topic", topics: []string{"zzz", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := mustRead(t, s, tt.topics, "", 0)
			assertMerged(t, page.Events, events(filter(all, tt.topics...)))
			if page.More || page.Truncated {
				t.Errorf("More=%v Truncated=%v, want both false", page.More, page.Truncated)
			}
		})
	}
}

func testReadAfterCursor(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	var all []store.Appended
	for i := range 6 {
		all = append(all, mustAppend(t, s, rec([]string{"a", "b"}[i%2], fmt.Sprint(i)))...)
	}
	tests := []struct {
		name   string
		given  int // events of topics the reader was given, in Read's order
		topics []string
	}{
		{name: "empty cursor reads from the oldest", given: 0, topics: []string{"a", "b"}},
		{name: "cursor excludes its event", given: 1, topics: []string{"a", "b"}},
		{name: "cursor in the middle", given: 3, topics: []string{"a", "b"}},
		{name: "cursor of one topic", given: 1, topics: []string{"a"}},
		{name: "cursor at the last event of the topic", given: 3, topics: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order := readAll(t, s, tt.topics, "")
			assertMerged(t, order, events(filter(all, tt.topics...)))
			after := cursorAfter(s, "", tt.topics, order[:tt.given])
			page := mustRead(t, s, tt.topics, after, 0)
			assertMerged(t, page.Events, order[tt.given:])
			if page.Truncated {
				t.Error("Truncated without retention")
			}
		})
	}
}

func testReadLimit(t *testing.T, open opener) {
	tests := []struct {
		name  string
		n     int   // events appended
		limit int   // per Read
		pages []int // page sizes expected, More on all but the last
	}{
		{name: "pages", n: 10, limit: 4, pages: []int{4, 4, 2}},
		{name: "exact multiple", n: 8, limit: 4, pages: []int{4, 4}},
		{name: "limit one", n: 3, limit: 1, pages: []int{1, 1, 1}},
		{name: "limit above count", n: 3, limit: 100, pages: []int{3}},
		{name: "zero limit is a default", n: 5, limit: 0, pages: []int{5}},
		{name: "negative limit is a default", n: 5, limit: -1, pages: []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, store.Retention{})
			var all []store.Appended
			for i := range tt.n {
				all = append(all, mustAppend(t, s, rec([]string{"a", "b"}[i%2], fmt.Sprint(i)))...)
			}
			topics := []string{"a", "b"}
			after := ""
			var got []store.Event
			for i, size := range tt.pages {
				page := mustRead(t, s, topics, after, tt.limit)
				if len(page.Events) != size {
					t.Fatalf("page %d has %d events, want %d", i, len(page.Events), size)
				}
				if wantMore := i < len(tt.pages)-1; page.More != wantMore {
					t.Fatalf("page %d: More = %v, want %v", i, page.More, wantMore)
				}
				got = append(got, page.Events...)
				after = cursorAfter(s, after, topics, page.Events)
			}
			assertMerged(t, got, events(all))
		})
	}
}

func testReadUnknownCursor(t *testing.T, open opener) {
	other := open(t, store.Retention{})
	var future string
	for i := range 5 {
		future = mustAppend(t, other, rec("a", fmt.Sprint(i)))[0].Event.ID
	}
	tests := []struct {
		name   string
		events int // appended to the store under test first
		after  string
		// foreign is set for a well-formed cursor of another store: a
		// store that can tell it is foreign (an epoch) may answer it with
		// Truncated instead, a reset all the same.
		foreign bool
	}{
		{name: "newer than an empty store", events: 0, after: future, foreign: true},
		{name: "newer than head", events: 2, after: future, foreign: true},
		{name: "letters", events: 2, after: "not-an-id"},
		{name: "space", events: 2, after: " "},
		{name: "negative", events: 2, after: "-5"},
		{name: "fraction", events: 2, after: "1.5"},
		{name: "control bytes", events: 2, after: "\x00\r\n"},
		{name: "overflow", events: 2, after: strings.Repeat("9", 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, store.Retention{})
			for i := range tt.events {
				mustAppend(t, s, rec("a", fmt.Sprint(i)))
			}
			page, err := s.Read(context.Background(), []string{"a"}, tt.after, 0)
			if tt.foreign && err == nil && page.Truncated {
				return
			}
			if !errors.Is(err, store.ErrUnknownCursor) {
				t.Errorf("Read after %q = %+v, %v; want ErrUnknownCursor", tt.after, page, err)
			}
		})
	}
}

func testReadAtHead(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	mustAppend(t, s, rec("a", "1"), rec("b", "2"))
	for _, topics := range [][]string{{"a", "b"}, {"a"}, {"b"}} {
		head := mustHead(t, s, topics...)
		if !store.ValidCursor(head) || head == "" {
			t.Errorf("Head(%q) = %q, want a cursor", topics, head)
		}
		page := mustRead(t, s, topics, head, 0)
		if len(page.Events) != 0 || page.More || page.Truncated {
			t.Errorf("Read(%q) at head = %+v, want an empty page", topics, page)
		}
	}
}

func testReadUnknownTopics(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	got := mustAppend(t, s, rec("a", "1"))
	tests := []struct {
		name   string
		topics []string
		after  string
	}{
		{name: "no topics", topics: nil},
		{name: "unknown topic", topics: []string{"nope"}},
		{name: "unknown topic after cursor", topics: []string{"nope"}, after: got[0].Event.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := mustRead(t, s, tt.topics, tt.after, 0)
			if len(page.Events) != 0 || page.More || page.Truncated {
				t.Errorf("Read = %+v, want an empty page", page)
			}
		})
	}
}

func testIdempotencyDuplicate(t *testing.T, open opener) {
	tests := []struct {
		name    string
		batches [][]store.Record
		// dups[i][j] says whether record j of batch i is a duplicate.
		dups [][]bool
		// firsts[i][j] is the flat index of the record whose event record
		// j of batch i must return.
		firsts [][]int
		// conflicts[i][j] says whether record j of batch i reused its key
		// for a different record (Appended.Conflict).
		conflicts [][]bool
		// perTopic is set where a store whose keys are per topic stores
		// the second record as a new event instead.
		perTopic bool
	}{
		{
			name:      "same batch",
			batches:   [][]store.Record{{keyed("a", "x", "k"), keyed("a", "y", "k")}},
			dups:      [][]bool{{false, true}},
			firsts:    [][]int{{0, 0}},
			conflicts: [][]bool{{false, true}},
		},
		{
			name:      "across batches",
			batches:   [][]store.Record{{keyed("a", "x", "k")}, {rec("a", "plain"), keyed("a", "y", "k")}},
			dups:      [][]bool{{false}, {false, true}},
			firsts:    [][]int{{0}, {1, 0}},
			conflicts: [][]bool{{false}, {false, true}},
		},
		{
			name:      "other topic returns the first event",
			batches:   [][]store.Record{{keyed("a", "x", "k")}, {keyed("b", "y", "k")}},
			dups:      [][]bool{{false}, {true}},
			firsts:    [][]int{{0}, {0}},
			conflicts: [][]bool{{false}, {true}},
			perTopic:  true,
		},
		{
			name:      "three times",
			batches:   [][]store.Record{{keyed("a", "x", "k"), keyed("a", "x", "k")}, {keyed("a", "x", "k")}},
			dups:      [][]bool{{false, true}, {true}},
			firsts:    [][]int{{0, 0}, {0}},
			conflicts: [][]bool{{false, false}, {false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, store.Retention{})
			var flat []store.Appended
			var stored []store.Event
			for i, batch := range tt.batches {
				got := mustAppend(t, s, batch...)
				if tt.perTopic && i > 0 && !got[0].Duplicate {
					// Keys per topic: a new event of its own.
					if got[0].Conflict || got[0].Event.Topic != batch[0].Topic || got[0].Event.Data != batch[0].Data {
						t.Errorf("key of another topic: %+v, want a duplicate of the first event or a new event", got[0])
					}
					stored = append(stored, got[0].Event)
					continue
				}
				for j, g := range got {
					if g.Duplicate != tt.dups[i][j] {
						t.Errorf("batch %d record %d: Duplicate = %v, want %v", i, j, g.Duplicate, tt.dups[i][j])
					}
					if g.Conflict != tt.conflicts[i][j] {
						t.Errorf("batch %d record %d: Conflict = %v, want %v", i, j, g.Conflict, tt.conflicts[i][j])
					}
					if !g.Duplicate {
						stored = append(stored, g.Event)
					}
					flat = append(flat, g)
					assertEvent(t, g.Event, flat[tt.firsts[i][j]].Event)
				}
			}
			assertMerged(t, readAll(t, s, []string{"a", "b"}, ""), stored)
		})
	}
}

func testIdempotencyDistinctKeys(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	got := mustAppend(t, s, keyed("a", "1", "k1"), keyed("a", "2", "k2"), rec("a", "3"), rec("a", "3"))
	got = append(got, mustAppend(t, s, keyed("a", "4", "k3"), keyed("a", "1", "K1"))...)
	seen := map[string]bool{}
	for i, g := range got {
		if g.Duplicate {
			t.Errorf("record %d: Duplicate with a key of its own", i)
		}
		if seen[g.Event.ID] {
			t.Errorf("record %d: ID %q returned twice", i, g.Event.ID)
		}
		seen[g.Event.ID] = true
	}
	assertEvents(t, readAll(t, s, []string{"a"}, ""), events(got))
}

func testIdempotencyWindow(t *testing.T, open opener) {
	tests := []struct {
		name     string
		window   time.Duration
		kept     time.Duration // Trim this long after the first event keeps the key
		forgotAt time.Duration // Trim this long after forgets it
	}{
		{name: "custom window", window: time.Hour, kept: 59 * time.Minute, forgotAt: 2 * time.Hour},
		{name: "default window", window: 0, kept: store.DefaultIdempotencyWindow - time.Minute, forgotAt: store.DefaultIdempotencyWindow + time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, store.Retention{IdempotencyWindow: tt.window})
			first := mustAppend(t, s, keyed("a", "x", "k"))[0].Event
			mustTrim(t, s, first.Time.Add(tt.kept))
			if again := mustAppend(t, s, keyed("a", "x", "k"))[0]; !again.Duplicate || again.Event.ID != first.ID {
				t.Fatalf("within the window: %+v, want a duplicate of %q", again, first.ID)
			}
			if n := mustTrim(t, s, first.Time.Add(tt.forgotAt)); n != 0 {
				t.Errorf("Trim removed %d events without event retention", n)
			}
			second := mustAppend(t, s, keyed("a", "y", "k"))[0]
			if second.Duplicate || second.Event.ID == first.ID {
				t.Fatalf("after the window: %+v, want a new event", second)
			}
			if third := mustAppend(t, s, keyed("a", "z", "k"))[0]; !third.Duplicate || third.Event.ID != second.Event.ID {
				t.Errorf("key re-used after the window: %+v, want a duplicate of %q", third, second.Event.ID)
			}
			if n := len(readAll(t, s, []string{"a"}, "")); n != 2 {
				t.Errorf("stored %d events, want 2", n)
			}
		})
	}
}

// testIdempotencyAfterRetention checks that a key outlives its event: the
// duplicate still names the first event's ID, topic and time (its type and
// data may be gone) and stores nothing.
func testIdempotencyAfterRetention(t *testing.T, open opener) {
	s := open(t, store.Retention{MaxEventsPerTopic: 1})
	first := mustAppend(t, s, store.Record{Topic: "a", Type: "t", Data: "x", IdempotencyKey: "k"})[0].Event
	mustAppend(t, s, rec("a", "y"))
	mustTrim(t, s, time.Now())
	head := mustHead(t, s, "a")
	again := mustAppend(t, s, store.Record{Topic: "a", Type: "t", Data: "x", IdempotencyKey: "k"})[0]
	if !again.Duplicate || again.Conflict || again.Event.ID != first.ID || again.Event.Topic != first.Topic || !again.Event.Time.Equal(first.Time) {
		t.Errorf("key of a trimmed event: %+v, want a duplicate of %s", again, brief(first))
	}
	// The event is gone, but the key still knows what it was stored for.
	other := mustAppend(t, s, store.Record{Topic: "a", Type: "t", Data: "changed", IdempotencyKey: "k"})[0]
	if !other.Duplicate || !other.Conflict {
		t.Errorf("key of a trimmed event reused for other data: %+v, want a conflict", other)
	}
	if got := mustHead(t, s, "a"); got != head {
		t.Errorf("Head = %q, want %q: the duplicate was stored", got, head)
	}
}

func testRetentionCount(t *testing.T, open opener) {
	s := open(t, store.Retention{MaxEventsPerTopic: 3})
	var all []store.Appended
	for i := range 7 {
		all = append(all, mustAppend(t, s, rec("a", fmt.Sprint("a", i)))...)
		if i < 2 {
			all = append(all, mustAppend(t, s, rec("b", fmt.Sprint("b", i)))...)
		}
	}
	if _, err := s.Trim(context.Background(), time.Now()); err != nil {
		t.Fatalf("Trim: %v", err)
	}
	a, b := events(filter(all, "a")), events(filter(all, "b"))
	a = a[len(a)-3:]
	assertEvents(t, readAll(t, s, []string{"a"}, ""), a)
	assertEvents(t, readAll(t, s, []string{"b"}, ""), b)
	assertMerged(t, readAll(t, s, []string{"a", "b"}, ""), append(b, a...))
	if page := mustRead(t, s, []string{"a", "b"}, mustHead(t, s, "a", "b"), 0); len(page.Events) != 0 || page.Truncated {
		t.Errorf("Read after Head after retention = %+v, want an empty page", page)
	}
	// Retention must not disturb the sequence.
	next := mustAppend(t, s, rec("a", "next"))[0].Event
	if s.Compare(all[len(all)-1].Event.ID, next.ID) != -1 {
		t.Errorf("ID after retention %q not after %q", next.ID, all[len(all)-1].Event.ID)
	}
}

func testRetentionAge(t *testing.T, open opener) {
	const maxAge = time.Hour
	s := open(t, store.Retention{MaxAge: maxAge})
	old := mustAppend(t, s, rec("a", "old a"), rec("b", "old b"))
	// The cursor of a reader of a and b that was given only the old a.
	var cursor string
	for _, e := range readAll(t, s, []string{"a", "b"}, "") {
		if e.ID == old[0].Event.ID {
			cursor = s.Next("", []string{"a", "b"}, e)
		}
	}
	time.Sleep(20 * time.Millisecond)
	young := mustAppend(t, s, rec("a", "young a"))
	// The later of the old two: a store sharded by topic times each
	// topic's events on its own shard, so a batch's times need not follow
	// its order across topics.
	t0, t1 := old[1].Event.Time, young[0].Event.Time
	if old[0].Event.Time.After(t0) {
		t0 = old[0].Event.Time
	}
	if !t0.Before(t1) {
		t.Fatalf("events 20ms apart have times %v and %v", t0, t1)
	}
	if n := mustTrim(t, s, time.Now()); n != 0 {
		t.Errorf("Trim(now) removed %d young events", n)
	}
	if n := mustTrim(t, s, t0.Add(maxAge+time.Millisecond)); n != 2 {
		t.Errorf("Trim removed %d events, want the 2 old ones", n)
	}
	assertEvents(t, readAll(t, s, []string{"a", "b"}, ""), events(young))
	page := mustRead(t, s, []string{"a", "b"}, cursor, 0)
	if !page.Truncated {
		t.Errorf("Read a and b after a cursor before the trimmed b = %+v, want Truncated", page)
	}
	assertEvents(t, page.Events, events(young))
	if n := mustTrim(t, s, t1.Add(maxAge+time.Millisecond)); n != 1 {
		t.Errorf("Trim removed %d events, want 1", n)
	}
	if all := readAll(t, s, []string{"a", "b"}, ""); len(all) != 0 {
		t.Errorf("events left after all expired: %+v", all)
	}
	page = mustRead(t, s, []string{"a"}, old[0].Event.ID, 0)
	if !page.Truncated {
		t.Errorf("Read a after a cursor whose successors expired = %+v, want Truncated", page)
	}
	if page := mustRead(t, s, []string{"a"}, mustHead(t, s, "a"), 0); len(page.Events) != 0 || page.Truncated {
		t.Errorf("Read after Head after trimming everything = %+v, want an empty page", page)
	}
	// The topic's sequence goes on after everything expired.
	next := mustAppend(t, s, rec("a", "next"))[0].Event
	if s.Compare(young[0].Event.ID, next.ID) != -1 {
		t.Errorf("ID after expiry %q not after %q", next.ID, young[0].Event.ID)
	}
	assertEvents(t, readAll(t, s, []string{"a"}, young[0].Event.ID), []store.Event{next})
}

func testTruncated(t *testing.T, open opener) {
	s := open(t, store.Retention{MaxEventsPerTopic: 3})
	order := []string{"a", "b", "a", "a", "a", "b", "a"} // a1 b1 a2 a3 a4 b2 a5
	var all []store.Appended
	for i, topic := range order {
		all = append(all, mustAppend(t, s, rec(topic, fmt.Sprint(topic, i)))...)
	}
	mustTrim(t, s, time.Now())
	id := func(i int) string { return all[i].Event.ID }
	retained := append(append([]store.Appended(nil), all[1], all[3], all[4]), all[5:]...) // b1 a3 a4 b2 a5
	tests := []struct {
		name      string
		topics    []string
		after     string
		truncated bool
		want      []store.Appended
	}{
		{name: "empty cursor is never truncated", topics: []string{"a"}, after: "", want: filter(retained, "a")},
		{name: "cursor before a trimmed event", topics: []string{"a"}, after: id(0), truncated: true, want: filter(retained, "a")},
		{name: "cursor at the last trimmed event", topics: []string{"a"}, after: id(2), want: filter(retained, "a")},
		{name: "cursor at a retained event", topics: []string{"a"}, after: id(3), want: filter(all[4:], "a")},
		{name: "other topic untouched", topics: []string{"b"}, after: id(0), want: filter(all, "b")},
		{name: "one truncated topic taints the page", topics: []string{"a", "b"}, after: id(0), truncated: true, want: retained},
		{name: "unknown topic is not truncated", topics: []string{"b", "nope"}, after: id(0), want: filter(all, "b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := mustRead(t, s, tt.topics, tt.after, 0)
			if page.Truncated != tt.truncated {
				t.Errorf("Truncated = %v, want %v", page.Truncated, tt.truncated)
			}
			assertMerged(t, page.Events, events(tt.want))
		})
	}
}

func testConcurrentAppends(t *testing.T, open opener) {
	const (
		writers = 64
		appends = 4
		batch   = 2
	)
	s := open(t, store.Retention{})
	topics := []string{"a", "b", "c", "d"}
	ctx := context.Background()
	ids := make([][]store.Event, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := range writers {
		wg.Go(func() {
			for i := range appends {
				recs := make([]store.Record, batch)
				for j := range recs {
					recs[j] = keyed(topics[(w+j)%len(topics)], fmt.Sprintf("w%d-%d-%d", w, i, j), fmt.Sprintf("k%d-%d-%d", w, i, j))
				}
				got, err := s.Append(ctx, recs)
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				for _, g := range got {
					ids[w] = append(ids[w], g.Event)
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				page, err := s.Read(ctx, topics, "", 0)
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				if err := topicOrder(s, page.Events); err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	seen := map[string]bool{}
	for w, own := range ids {
		for _, e := range own {
			if seen[e.ID] {
				t.Fatalf("ID %q assigned twice", e.ID)
			}
			seen[e.ID] = true
		}
		if err := topicOrder(s, own); err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	all := readAll(t, s, topics, "")
	if len(all) != writers*appends*batch {
		t.Fatalf("Read returned %d events, want %d", len(all), writers*appends*batch)
	}
	for _, ev := range all {
		if !seen[ev.ID] {
			t.Errorf("Read returned ID %q that no Append returned", ev.ID)
		}
	}
}

func testClosed(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	got := mustAppend(t, s, rec("a", "1"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := s.Append(ctx, []store.Record{rec("a", "2")}); return err }},
		{"Read", func() error { _, err := s.Read(ctx, []string{"a"}, "", 0); return err }},
		{"Read after cursor", func() error { _, err := s.Read(ctx, []string{"a"}, got[0].Event.ID, 0); return err }},
		{"Head", func() error { _, err := s.Head(ctx, []string{"a"}); return err }},
		{"Trim", func() error { _, err := s.Trim(ctx, time.Now()); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Close", s.Close},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, store.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", c.name, err)
			}
		})
	}
}

func testCloseWhileAppending(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	started := make(chan struct{}, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := s.Append(ctx, []store.Record{rec("a", fmt.Sprint(w, "-", i))})
				if err == nil {
					_, err = s.Read(ctx, []string{"a"}, "", 10)
				}
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					if !errors.Is(err, store.ErrClosed) {
						errs <- fmt.Errorf("writer %d after %d appends: %w, want ErrClosed", w, i, err)
					}
					return
				}
			}
		})
	}
	for range 8 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testContextDone(t *testing.T, open opener) {
	s := open(t, store.Retention{})
	mustAppend(t, s, rec("a", "1"))
	head := mustHead(t, s, "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := s.Append(ctx, []store.Record{keyed("a", "2", "k")}); return err }},
		{"Read", func() error { _, err := s.Read(ctx, []string{"a"}, "", 0); return err }},
		{"Head", func() error { _, err := s.Head(ctx, []string{"a"}); return err }},
		{"Trim", func() error { _, err := s.Trim(ctx, time.Now()); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: %v, want context.Canceled", c.name, err)
			}
		})
	}
	if got := mustHead(t, s, "a"); got != head {
		t.Errorf("Head = %q, want %q: a canceled Append stored something", got, head)
	}
	if again := mustAppend(t, s, keyed("a", "2", "k"))[0]; again.Duplicate {
		t.Error("a canceled Append remembered its key")
	}
}

func rec(topic, data string) store.Record {
	return store.Record{Topic: topic, Data: data}
}

func keyed(topic, data, key string) store.Record {
	return store.Record{Topic: topic, Data: data, IdempotencyKey: key}
}

func mustAppend(t *testing.T, s store.Store, recs ...store.Record) []store.Appended {
	t.Helper()
	got, err := s.Append(context.Background(), recs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(got) != len(recs) {
		t.Fatalf("Append of %d records returned %d results", len(recs), len(got))
	}
	return got
}

func mustRead(t *testing.T, s store.Store, topics []string, after string, limit int) store.Page {
	t.Helper()
	page, err := s.Read(context.Background(), topics, after, limit)
	if err != nil {
		t.Fatalf("Read(%q, after %q, limit %d): %v", topics, after, limit, err)
	}
	if limit > 0 && len(page.Events) > limit {
		t.Fatalf("Read with limit %d returned %d events", limit, len(page.Events))
	}
	if err := topicOrder(s, page.Events); err != nil {
		t.Fatalf("Read: %v", err)
	}
	for _, e := range page.Events {
		if !store.ValidCursor(e.ID) {
			t.Fatalf("Read: ID %q is not in the cursor alphabet", e.ID)
		}
	}
	return page
}

// readAll reads every event of topics after the cursor, page by page.
func readAll(t *testing.T, s store.Store, topics []string, after string) []store.Event {
	t.Helper()
	var all []store.Event
	for range 1 << 20 {
		page := mustRead(t, s, topics, after, 0)
		all = append(all, page.Events...)
		if !page.More {
			return all
		}
		if len(page.Events) == 0 {
			t.Fatal("Read returned More with no events")
		}
		after = cursorAfter(s, after, topics, page.Events)
	}
	t.Fatal("readAll: too many pages")
	return nil
}

func mustHead(t *testing.T, s store.Store, topics ...string) string {
	t.Helper()
	head, err := s.Head(context.Background(), topics)
	if err != nil {
		t.Fatalf("Head(%q): %v", topics, err)
	}
	if !store.ValidCursor(head) {
		t.Fatalf("Head(%q) = %q, not in the cursor alphabet", topics, head)
	}
	return head
}

// cursorAfter returns the cursor of a reader of topics at cursor that is
// given events, in order.
func cursorAfter(s store.Store, cursor string, topics []string, events []store.Event) string {
	for _, e := range events {
		cursor = s.Next(cursor, topics, e)
	}
	return cursor
}

// topicOrder checks that events keep each topic's ID order.
func topicOrder(s store.Store, events []store.Event) error {
	last := map[string]string{}
	for i, e := range events {
		if prev, ok := last[e.Topic]; ok && s.Compare(prev, e.ID) != -1 {
			return fmt.Errorf("event %d (%q) not after %q of topic %q", i, e.ID, prev, e.Topic)
		}
		last[e.Topic] = e.ID
	}
	return nil
}

// assertMerged checks that got holds want's events, each topic's in want's
// order: how a store interleaves topics is its own.
func assertMerged(t *testing.T, got, want []store.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d events, want %d:\n got  %s\n want %s", len(got), len(want), briefs(got), briefs(want))
		return
	}
	for _, topic := range topicsOf(want) {
		assertEvents(t, ofTopic(got, topic), ofTopic(want, topic))
	}
}

func topicsOf(es []store.Event) []string {
	var topics []string
	seen := map[string]bool{}
	for _, e := range es {
		if !seen[e.Topic] {
			seen[e.Topic] = true
			topics = append(topics, e.Topic)
		}
	}
	return topics
}

func ofTopic(es []store.Event, topic string) []store.Event {
	var out []store.Event
	for _, e := range es {
		if e.Topic == topic {
			out = append(out, e)
		}
	}
	return out
}

func mustTrim(t *testing.T, s store.Store, now time.Time) int {
	t.Helper()
	n, err := s.Trim(context.Background(), now)
	if err != nil {
		t.Fatalf("Trim(%v): %v", now, err)
	}
	return n
}

func events(as []store.Appended) []store.Event {
	evs := make([]store.Event, 0, len(as))
	for _, a := range as {
		evs = append(evs, a.Event)
	}
	return evs
}

// filter returns the results of as whose events belong to topics, in order.
func filter(as []store.Appended, topics ...string) []store.Appended {
	var out []store.Appended
	for _, a := range as {
		for _, topic := range topics {
			if a.Event.Topic == topic {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func assertEvent(t *testing.T, got, want store.Event) {
	t.Helper()
	if got.ID != want.ID || got.Topic != want.Topic || got.Type != want.Type || got.Data != want.Data || !got.Time.Equal(want.Time) {
		t.Errorf("event = %s, want %s", brief(got), brief(want))
	}
}

func assertEvents(t *testing.T, got, want []store.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d events, want %d:\n got  %s\n want %s", len(got), len(want), briefs(got), briefs(want))
		return
	}
	for i := range got {
		assertEvent(t, got[i], want[i])
	}
}

func brief(e store.Event) string {
	data := e.Data
	if len(data) > 40 {
		data = data[:40] + "…"
	}
	return fmt.Sprintf("{%s %s %q %q %s}", e.ID, e.Topic, e.Type, data, e.Time.Format(time.RFC3339Nano))
}

func briefs(es []store.Event) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = brief(e)
	}
	return strings.Join(parts, " ")
}
