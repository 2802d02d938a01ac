package store

import (
	"errors"
	"fmt"
	"strings"
)

// Topic patterns. A topic given to Read, Head, Next or Seen of a store
// whose Patterns method reports true may be a pattern: a prefix followed
// by one '*' ("orders/*", or "*" alone), which stands for every topic that
// starts with the prefix, including topics that appear after a cursor was
// issued (they are read from their first retained event). A topic that
// starts with ReservedPrefix belongs to sseguard itself and matches no
// pattern, only its own name. Topic names never contain '*'.
//
// A store.Feed may report a Gap for a pattern rather than a topic: events
// of some topics it matches were lost to the feed (store/redis reports
// one for a prefix index), and the hub cuts loose every subscriber whose
// topics overlap it.

// ReservedPrefix starts the topics that belong to sseguard itself (the
// dashboard's "sseguard:dashboard"); no pattern matches them.
const ReservedPrefix = "sseguard:"

// IsPattern reports whether t is a topic pattern (ends in '*').
func IsPattern(t string) bool { return strings.HasSuffix(t, "*") }

// Match reports whether topic matches t, a topic name or a pattern:
// exactly, or by prefix when t is a pattern and topic is not reserved.
func Match(t, topic string) bool {
	if t == topic {
		return true
	}
	prefix, ok := strings.CutSuffix(t, "*")
	return ok && !strings.HasPrefix(topic, ReservedPrefix) && strings.HasPrefix(topic, prefix)
}

// Covers reports whether every topic that b matches is matched by a: the
// same name, or a pattern whose prefix starts b's (a pattern's or a
// name's). A name covers only itself.
func Covers(a, b string) bool {
	if a == b {
		return true
	}
	prefix, ok := strings.CutSuffix(a, "*")
	if !ok {
		return false
	}
	if !IsPattern(b) && strings.HasPrefix(b, ReservedPrefix) {
		return false
	}
	return strings.HasPrefix(b, prefix)
}

// Reduce returns topics without duplicates and without any entry another
// entry covers (see Covers), in their first order, so that every topic
// matches at most one entry of the result. It returns topics itself when
// there is nothing to drop.
func Reduce(topics []string) []string {
	drop := func(i int) bool {
		for j, o := range topics {
			if j == i {
				continue
			}
			// Of two equal entries, the first stays.
			if o == topics[i] && j < i || o != topics[i] && Covers(o, topics[i]) {
				return true
			}
		}
		return false
	}
	var out []string
	for i := range topics {
		if drop(i) {
			if out == nil {
				out = append(make([]string, 0, len(topics)), topics[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, topics[i])
		}
	}
	if out == nil {
		return topics
	}
	return out
}

// HasPattern reports whether one of topics is a pattern.
func HasPattern(topics []string) bool {
	for _, t := range topics {
		if IsPattern(t) {
			return true
		}
	}
	return false
}

// Patterns is implemented by stores that read topic patterns (see the
// package doc). Its method reports whether this store does; a store that
// does not implement it, or reports false, refuses no pattern but reads it
// as a topic name, so callers check first (SupportsPatterns).
type Patterns interface {
	Patterns() bool
}

// SupportsPatterns reports whether s reads topic patterns (some of
// them: see CheckPattern).
func SupportsPatterns(s Store) bool {
	p, ok := s.(Patterns)
	return ok && p.Patterns()
}

// PatternChecker is implemented by stores that read some topic patterns
// and not others: store/redis reads a pattern only under the prefixes it
// indexes. A store that reads patterns without implementing it reads
// every pattern.
type PatternChecker interface {
	// PatternOK returns nil when Read, Head, Next and Seen take pattern,
	// else an error wrapping ErrPatternNotServed whose text says why (and
	// which setting would serve it), fit for a client.
	PatternOK(pattern string) error
}

// ErrPatternNotServed means a store does not read a topic pattern: it
// reads none (SupportsPatterns is false), or not this one (PatternChecker).
var ErrPatternNotServed = errors.New("store: topic pattern not served")

// CheckPattern returns nil when s reads pattern, else an error wrapping
// ErrPatternNotServed. Callers check each pattern of a subscription with
// it before reading.
func CheckPattern(s Store, pattern string) error {
	if !SupportsPatterns(s) {
		return fmt.Errorf("%w: this server's store does not serve topic patterns; name the topics", ErrPatternNotServed)
	}
	if c, ok := s.(PatternChecker); ok {
		return c.PatternOK(pattern)
	}
	return nil
}
