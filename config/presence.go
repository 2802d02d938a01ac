package config

import (
	"fmt"
	"strings"
	"time"
)

// Presence configures who-is-listening counts and join/leave events
// (GET /api/presence, presence=1 on /events and /ws). Off while Topics
// is empty, the default.
type Presence struct {
	// Topics are the topic names and patterns ("chat/*") whose
	// subscribers are counted. Default []: presence off. Reserved topics
	// (sseguard:*) are never counted.
	Topics []string `yaml:"topics"`
	// TTL is how long the counts of a node that died keep counting on the
	// other nodes (store.driver redis). Default 15s; at least 1s.
	TTL Duration `yaml:"ttl"`
	// FlushInterval is the longest a join or leave waits before it is
	// counted and announced (batched, and on Redis shared in one round
	// trip). Default 250ms; 10ms to 5s.
	FlushInterval Duration `yaml:"flush_interval"`
}

// Fill sets the defaults of the presence section.
func (p *Presence) Fill() {
	nilIfEmpty(&p.Topics)
	setDur(&p.TTL, 15*time.Second)
	setDur(&p.FlushInterval, 250*time.Millisecond)
}

// Validate checks the section.
func (p *Presence) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	for i, t := range p.Topics {
		if t == "" || strings.ContainsAny(t, " \t\r\n") || (strings.Contains(t, "*") && !strings.HasSuffix(t, "*")) || strings.Count(t, "*") > 1 {
			pr.add(fmt.Sprintf("topics[%d]", i), "want a topic or a prefix ending in *, got %q", t)
		}
		if strings.HasPrefix(t, "sseguard:") {
			pr.add(fmt.Sprintf("topics[%d]", i), "sseguard's own topics (sseguard:*) are never tracked, got %q", t)
		}
	}
	if p.TTL.D() < time.Second {
		pr.add("ttl", "at least 1s, got %s", p.TTL.D())
	}
	if p.FlushInterval.D() < 10*time.Millisecond || p.FlushInterval.D() > 5*time.Second {
		pr.add("flush_interval", "want 10ms to 5s, got %s", p.FlushInterval.D())
	}
	if p.FlushInterval.D()*2 > p.TTL.D() {
		pr.add("flush_interval", "at most half of ttl (%s), got %s", p.TTL.D(), p.FlushInterval.D())
	}
	return pr.err()
}
