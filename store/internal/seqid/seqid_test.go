package seqid

import (
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want uint64
		ok   bool
	}{
		{name: "zero", id: "0", want: 0, ok: true},
		{name: "one", id: "1", want: 1, ok: true},
		{name: "large", id: "18446744073709551615", want: math.MaxUint64, ok: true},
		{name: "empty", id: ""},
		{name: "leading zero", id: "01"},
		{name: "sign", id: "+1"},
		{name: "negative", id: "-1"},
		{name: "space", id: " 1"},
		{name: "fraction", id: "1.5"},
		{name: "letters", id: "abc"},
		{name: "overflow", id: "18446744073709551616"},
		{name: "too long", id: "123456789012345678901"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.id)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.id, got, ok, tt.want, tt.ok)
			}
			if ok && Format(got) != tt.id {
				t.Errorf("Format(%d) = %q, want %q", got, Format(got), tt.id)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{name: "equal", a: "7", b: "7", want: 0},
		{name: "less same length", a: "7", b: "8", want: -1},
		{name: "greater same length", a: "19", b: "10", want: 1},
		{name: "shorter is smaller", a: "9", b: "10", want: -1},
		{name: "longer is greater", a: "100", b: "99", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(tt.a, tt.b); got != tt.want {
				t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func FuzzCompare(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(9), uint64(10))
	f.Add(uint64(0), uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		want := 0
		if a < b {
			want = -1
		} else if a > b {
			want = 1
		}
		if got := Compare(Format(a), Format(b)); got != want {
			t.Errorf("Compare(%d, %d) = %d, want %d", a, b, got, want)
		}
	})
}

func TestSeen(t *testing.T) {
	tests := []struct {
		name, cursor, id string
		want             bool
	}{
		{name: "empty cursor has seen nothing", cursor: "", id: "1", want: false},
		{name: "malformed cursor has seen nothing", cursor: "x", id: "1", want: false},
		{name: "zero cursor has seen nothing", cursor: "0", id: "1", want: false},
		{name: "own ID", cursor: "7", id: "7", want: true},
		{name: "older ID", cursor: "10", id: "9", want: true},
		{name: "newer ID", cursor: "9", id: "10", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Seen(tt.cursor, tt.id); got != tt.want {
				t.Errorf("Seen(%q, %q) = %v, want %v", tt.cursor, tt.id, got, tt.want)
			}
		})
	}
}
