package lograte

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"short stays", "https://app.example", 0, "https://app.example"},
		{"exactly max stays", "abcd", 4, "abcd"},
		{"long is cut and marked", "abcdef", 4, "abcd…"},
		{"cut at a character boundary", "ab€d", 3, "ab…"},
		{"default bound", strings.Repeat("x", 1000), 0, strings.Repeat("x", MaxValue) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clip(tc.in, tc.max)
			if got != tc.want || !utf8.ValidString(got) {
				t.Fatalf("Clip(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
}
