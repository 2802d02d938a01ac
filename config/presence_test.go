package config

import (
	"strings"
	"testing"
)

// TestPresenceSection: presence is off by default, and each bad value is
// refused with an error that names its key.
func TestPresenceSection(t *testing.T) {
	if d := Default(); len(d.Presence.Topics) != 0 || d.Presence.TTL.D().String() != "15s" {
		t.Fatalf("default presence: %+v, want off with ttl 15s", d.Presence)
	}
	c, err := Parse([]byte("presence:\n  topics: [chat/*, lobby]\n  ttl: 3s\n  flush_interval: 100ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a valid presence section: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"pattern in the middle", "presence:\n  topics: [a*b]\n", "presence.topics[0]"},
		{"reserved", "presence:\n  topics: [\"sseguard:dashboard\"]\n", "presence.topics[0]"},
		{"empty topic", "presence:\n  topics: [\"\"]\n", "presence.topics[0]"},
		{"ttl too short", "presence:\n  ttl: 500ms\n", "presence.ttl"},
		{"flush too slow", "presence:\n  flush_interval: 10s\n  ttl: 60s\n", "presence.flush_interval"},
		{"flush beyond half the ttl", "presence:\n  flush_interval: 1s\n  ttl: 1s\n", "presence.flush_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want+":") {
				t.Fatalf("Validate: %v, want an error about %s", err, tc.want)
			}
		})
	}
}
