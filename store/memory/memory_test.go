package memory_test

import (
	"context"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
	"github.com/sseguard/sseguard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return memory.New(r)
	})
}

// TestSharedConformance runs the suite on per-topic numbering and vector
// cursors, the shape of store/redis.
func TestSharedConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return memory.NewShared(r)
	})
}

// TestSharedCursorForms: a malformed vector cursor is refused by Read and
// has seen nothing, the same for every method.
func TestSharedCursorForms(t *testing.T) {
	s := memory.NewShared(store.Retention{})
	got, err := s.Append(context.Background(), []store.Record{{Topic: "a", Data: "1"}, {Topic: "b", Data: "2"}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := got[0].Event, got[1].Event
	both := []string{"a", "b"}
	valid := s.Next(s.Next("", both, a), both, b)
	tests := []struct {
		name, cursor string
		ok           bool
	}{
		{name: "both positions", cursor: valid, ok: true},
		{name: "trailing separator", cursor: valid + "_"},
		{name: "leading separator", cursor: "_" + valid},
		{name: "positions out of order", cursor: b.ID + "_" + a.ID},
		{name: "repeated topic", cursor: a.ID + "_" + a.ID},
		{name: "no offset", cursor: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Read(context.Background(), both, tt.cursor, 0)
			if ok := err == nil; ok != tt.ok {
				t.Errorf("Read after %q: %v, want ok=%v", tt.cursor, err, tt.ok)
			}
			if seen := s.Seen(tt.cursor, both, a); seen != tt.ok {
				t.Errorf("Seen(%q, a) = %v, want %v", tt.cursor, seen, tt.ok)
			}
			if next := s.Next(tt.cursor, both, b); !tt.ok && next != b.ID {
				t.Errorf("Next(%q, b) = %q, want %q: a malformed cursor counts as empty", tt.cursor, next, b.ID)
			}
		})
	}
}
