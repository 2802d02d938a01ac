package redis

import (
	"strings"
	"testing"
)

// TestSplitHead: splitHead takes the head lines the append script writes
// exactly as strings.Fields did, and refuses every line of another shape
// (which Fields would have split into other than five fields, or which
// does not use single spaces). Other white space inside a field is left to
// the field's parser, which takes digits or the ID's alphabet only.
func TestSplitHead(t *testing.T) {
	good := []string{
		"AAAAAAAA.bbbbbbbb.1 1764620000000000 5 0 11",
		"h.e.18446744073709551615 1 1 1 1",
	}
	for _, head := range good {
		f, ok := splitHead(head)
		if want := strings.Fields(head); !ok || len(want) != 5 || f != [5]string(want) {
			t.Errorf("splitHead(%q) = %q, %v; want %q", head, f, ok, want)
		}
	}
	bad := []string{"", "a b c d", "a b c d e f", " a b c d e", "a b c d e ", "a  b c d e", "abcde"}
	for _, head := range bad {
		if f, ok := splitHead(head); ok {
			t.Errorf("splitHead(%q) = %q, true; want false", head, f)
		}
	}
}

// BenchmarkSplitHead is the head line's split per event of the feed.
func BenchmarkSplitHead(b *testing.B) {
	head := "AAAAAAAA.bbbbbbbb.12345 1764620000000000 5 0 22"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := splitHead(head); !ok {
			b.Fatal("not split")
		}
	}
}
