package redis

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/store"
)

// FuzzCursor: any text parses or is refused without panicking; what parses
// formats back to a valid cursor with the same positions; Next and Seen
// take any cursor.
func FuzzCursor(f *testing.F) {
	h := topicHash("a")
	f.Add("")
	f.Add(h + ".AAAAAAAA.1")
	f.Add(h + ".0")
	f.Add(h + ".AAAAAAAA.7~" + topicHash("b") + ".0")
	f.Add("-5")
	f.Add(strings.Repeat("9", 40))
	f.Fuzz(func(t *testing.T, c string) {
		s := &Store{}
		e := store.Event{ID: h + ".AAAAAAAA.3", Topic: "a", Time: time.Unix(1, 0)}
		next := s.Next(c, []string{"a", "b"}, e)
		if !store.ValidCursor(next) || !s.Seen(next, []string{"a", "b"}, e) {
			t.Fatalf("Next(%q) = %q: not a valid cursor that has Seen e", c, next)
		}
		_ = s.Seen(c, []string{"a"}, e)
		ps, ok := parseCursor(c)
		if !ok {
			return
		}
		out := formatCursor(slices.Clone(ps))
		if !store.ValidCursor(out) {
			t.Fatalf("cursor %q formats as %q, not valid", c, out)
		}
		again, ok := parseCursor(out)
		if !ok || len(again) != len(ps) {
			t.Fatalf("cursor %q formats as %q, which parses as %v, %v", c, out, again, ok)
		}
	})
}

// TestCursorFits: 32 topics with 10-digit offsets fit store.MaxCursor.
func TestCursorFits(t *testing.T) {
	s := &Store{}
	var topics []string
	for i := range 32 {
		topics = append(topics, strings.Repeat("t", i+1))
	}
	c := ""
	for _, topic := range topics {
		e := store.Event{ID: pos{hash: topicHash(topic), epoch: "AAAAAAAA", offset: 9_999_999_999}.String(), Topic: topic}
		c = s.Next(c, topics, e)
	}
	if !store.ValidCursor(c) {
		t.Fatalf("cursor of 32 topics is %d bytes, over %d", len(c), store.MaxCursor)
	}
	ps, ok := parseCursor(c)
	if !ok || len(ps) != 32 {
		t.Errorf("cursor of 32 topics parses as %d positions, %v", len(ps), ok)
	}
}
