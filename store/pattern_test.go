package store

import (
	"slices"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		t, topic string
		want     bool
	}{
		{"orders/*", "orders/1", true},
		{"orders/*", "orders/eu/1", true},
		{"orders/*", "orders/", true},
		{"orders/*", "orders", false},
		{"orders/*", "ordersX", false},
		{"*", "anything", true},
		{"*", ReservedPrefix + "dashboard", false},
		{ReservedPrefix + "*", ReservedPrefix + "dashboard", false},
		{ReservedPrefix + "dashboard", ReservedPrefix + "dashboard", true},
		{"orders/1", "orders/1", true},
		{"orders/1", "orders/10", false},
	}
	for _, tt := range tests {
		if got := Match(tt.t, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.t, tt.topic, got, tt.want)
		}
	}
}

// TestReduce: what Reduce keeps matches exactly the topics the whole set
// matches, and no topic matches two entries of it.
func TestReduce(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"a", "b"}, []string{"a", "b"}},
		{[]string{"a", "a"}, []string{"a"}},
		{[]string{"orders/1", "orders/*"}, []string{"orders/*"}},
		{[]string{"orders/eu/*", "orders/*", "o*"}, []string{"o*"}},
		{[]string{"orders/*", "orders/*", "x"}, []string{"orders/*", "x"}},
		{[]string{"*", ReservedPrefix + "dashboard"}, []string{"*", ReservedPrefix + "dashboard"}},
		{[]string{"orders/*", "orders*"}, []string{"orders*"}},
	}
	topics := []string{"a", "b", "x", "o", "orders", "orders/1", "orders/eu/2", "ordersX", ReservedPrefix + "dashboard"}
	for _, tt := range tests {
		got := Reduce(tt.in)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Reduce(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, topic := range topics {
			var in, out int
			for _, e := range tt.in {
				if Match(e, topic) {
					in++
				}
			}
			for _, e := range got {
				if Match(e, topic) {
					out++
				}
			}
			if (in > 0) != (out > 0) || out > 1 {
				t.Errorf("Reduce(%q): %q matches %d entries of the input and %d of the result", tt.in, topic, in, out)
			}
		}
	}
}
