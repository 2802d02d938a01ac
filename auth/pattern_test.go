package auth

import "testing"

func TestCanSubscribePattern(t *testing.T) {
	tests := []struct {
		grants  []string
		pattern string
		want    bool
	}{
		{[]string{"orders/*"}, "orders/*", true},
		{[]string{"*"}, "orders/*", true},
		{[]string{"*"}, "*", true},
		{[]string{"orders/*"}, "orders/eu/*", true},
		{[]string{"orders/eu/*"}, "orders/*", false},
		{[]string{"orders/*"}, "*", false},
		{[]string{"orders/*"}, "orders*", false},
		{[]string{"orders/*"}, "order*", false},
		{[]string{"orders/1", "orders/2"}, "orders/*", false},
		{[]string{"orders/"}, "orders/*", false},
		{nil, "*", false},
		{[]string{"chat/*", "orders/*"}, "orders/x*", true},
		{[]string{"orders/*"}, "orders/1", false}, // not a pattern
	}
	for _, tt := range tests {
		p := &Principal{Permissions: Permissions{Subscribe: tt.grants}}
		if got := p.CanSubscribePattern(tt.pattern); got != tt.want {
			t.Errorf("grants %q: CanSubscribePattern(%q) = %v, want %v", tt.grants, tt.pattern, got, tt.want)
		}
	}
}
