package redis

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sseguard/sseguard/store"
)

// # Pattern prefixes and their indexes
//
// A topic pattern ("orders/*") is read through an index: for each prefix
// of Config.PatternPrefixes, one stream of the events of every topic that
// starts with it, in commit order, with contiguous offsets and an epoch
// of its own, like a topic's. A topic belongs to the longest declared
// prefix it starts with (reserved topics to none), and its keys take that
// prefix's hash tag instead of its own, so that the topic and the index
// share one Cluster slot and one script appends to both atomically:
//
//	<prefix>:{p:<P>}:im                the index's meta: e, n, u as a
//	                                   topic's, c (its topics, for retention)
//	<prefix>:{p:<P>}:ix                the index stream, entry IDs
//	                                   <offset>-<µs>, fields p (topic),
//	                                   e and o (the topic's epoch and
//	                                   offset), d and t as a topic's
//	<prefix>:{p:<P>}:t<len>:<topic>:…  the topic's own keys (m, s, k:…);
//	                                   the length keeps topics apart
//
// The index holds a copy of each event, not a pointer to the topic's
// entry: a pattern's replay is then one range read of the index, where a
// pointer would cost a read of the topic's stream per event (measured in
// docs/benchmarks.md, "Pattern replay"), at twice the memory for the
// indexed topics' events.
//
// The ID of an indexed event adds its index position to its topic's:
// "<topic hash>.<epoch>.<offset>.<index epoch>.<index offset>", so that
// Next and Seen place it in a pattern's cursor without I/O. A pattern's
// cursor position is one entry of the vector cursor per index it reads,
// keyed by a hash of the pattern and the index ("<key>.<index epoch>.<index
// offset>"): a cursor of one pattern names nothing of another, which a
// Read then takes from its oldest retained event (Truncated when the
// index lost some), never from the other pattern's position.
//
// A pattern P* is read from the index of the longest declared prefix of
// P, filtered by P, and from the index of each longer declared prefix that
// starts with P (whose topics P matches but which are indexed there).
// Any other pattern is refused (PatternOK).

// MaxPatternPrefixes bounds Config.PatternPrefixes: a pattern's cursor
// holds a position per index it reads, and a cursor fits store.MaxCursor.
const MaxPatternPrefixes = 16

// ixPos is an indexed event's position in its prefix's index.
type ixPos struct {
	epoch  string
	offset uint64
}

// setPrefixes checks and keeps the declared prefixes, longest first.
func (s *Store) setPrefixes(pfx []string) error {
	if len(pfx) > MaxPatternPrefixes {
		return fmt.Errorf("redis store: %d pattern prefixes, at most %d", len(pfx), MaxPatternPrefixes)
	}
	for i, p := range pfx {
		switch {
		case strings.Contains(p, "*"):
			return fmt.Errorf("redis store: pattern prefix %q contains '*'", p)
		case strings.HasPrefix(p, store.ReservedPrefix):
			return fmt.Errorf("redis store: pattern prefix %q starts with the reserved %q", p, store.ReservedPrefix)
		case slices.Contains(pfx[:i], p):
			return fmt.Errorf("redis store: pattern prefix %q given twice", p)
		}
	}
	s.pfx = slices.Clone(pfx)
	slices.SortStableFunc(s.pfx, func(a, b string) int { return len(b) - len(a) })
	return nil
}

// Patterns reports whether the store reads topic patterns: some prefix is
// declared (store.Patterns). Which patterns: PatternOK.
func (s *Store) Patterns() bool { return len(s.pfx) > 0 }

// PatternOK returns nil when pattern lies under a declared prefix
// (store.PatternChecker).
func (s *Store) PatternOK(pattern string) error {
	_, err := s.patternIndexes(pattern)
	return err
}

// indexOf returns the declared prefix whose index holds topic: the
// longest one it starts with. Reserved topics have none.
func (s *Store) indexOf(topic string) (string, bool) {
	if len(s.pfx) == 0 || strings.HasPrefix(topic, store.ReservedPrefix) {
		return "", false
	}
	for _, p := range s.pfx { // longest first
		if strings.HasPrefix(topic, p) {
			return p, true
		}
	}
	return "", false
}

// patternIndexes returns the indexes that hold the topics pattern
// matches (see the comment at the top of this file).
func (s *Store) patternIndexes(pattern string) ([]string, error) {
	pp, ok := strings.CutSuffix(pattern, "*")
	if !ok || strings.Contains(pp, "*") {
		return nil, fmt.Errorf("%w: %q is not a topic pattern", store.ErrPatternNotServed, pattern)
	}
	if strings.HasPrefix(pp, store.ReservedPrefix) {
		return nil, fmt.Errorf("%w: no pattern matches sseguard's own topics", store.ErrPatternNotServed)
	}
	best, ok := s.indexOf(pp)
	if !ok {
		return nil, fmt.Errorf("%w: the Redis store reads a pattern only under a prefix declared in store.redis.pattern_prefixes, and %q is not", store.ErrPatternNotServed, pattern)
	}
	out := []string{best}
	for _, p := range s.pfx {
		if len(p) > len(pp) && strings.HasPrefix(p, pp) {
			out = append(out, p)
		}
	}
	return out, nil
}

// indexKeys are the names of an index's keys.
type indexKeys struct{ meta, stream string }

func (s *Store) indexTag(ix string) string { return s.prefix + ":{p:" + tag(ix) + "}" }

func (s *Store) index(ix string) indexKeys {
	t := s.indexTag(ix)
	return indexKeys{meta: t + ":im", stream: t + ":ix"}
}

// indexedKeys are the keys of a topic indexed under ix.
func (s *Store) indexedKeys(topic, ix string) topicKeys {
	base := s.indexTag(ix) + ":t" + strconv.Itoa(len(topic)) + ":" + topic
	return topicKeys{base: base, meta: base + ":m", stream: base + ":s"}
}

// posKeyOf is a key of Store.posKeys.
type posKeyOf struct{ pattern, ix string }

// maxPosKeys bounds the cache of pattern position keys; past it the cache
// starts over (patterns come from clients).
const maxPosKeys = 4096

// posKey is the key of a pattern's position in index ix in a cursor: a
// hash of both, which no topic's hash equals (topics have no '*').
func (s *Store) posKey(pattern, ix string) string {
	k := posKeyOf{pattern, ix}
	if v, ok := s.posKeys.Load(k); ok {
		return v.(string)
	}
	h := topicHash(pattern + "\n" + ix)
	if s.posN.Add(1) > maxPosKeys {
		s.posKeys.Clear()
		s.posN.Store(1)
	}
	s.posKeys.Store(k, h)
	return h
}

// widest returns the pattern of topics that a reader of topics reads
// topic through: the widest one that matches it (store.Reduce keeps that
// one), or "" when none does.
func widest(topics []string, topic string) string {
	w := ""
	for _, t := range topics {
		if store.IsPattern(t) && store.Match(t, topic) && (w == "" || len(t) < len(w)) {
			w = t
		}
	}
	return w
}

// idWith is the ID of an indexed event at p in its topic and ix in its
// index.
func (p pos) idWith(ix ixPos) string {
	return p.String() + "." + ix.epoch + "." + strconv.FormatUint(ix.offset, 10)
}

// parseID parses an event ID or a cursor position: a topic's position,
// and for an indexed event its index position (zero otherwise).
func parseID(s string) (pos, ixPos, bool) {
	// An indexed ID has four dots; the first three parts are the topic's.
	dots, cut := 0, -1
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			if dots++; dots == 3 {
				cut = i
			}
		}
	}
	if dots != 4 {
		p, ok := parsePos3(s)
		return p, ixPos{}, ok
	}
	p, ok := parsePos3(s[:cut])
	rest := s[cut+1:]
	if !ok || p.epoch == "" || len(rest) < epochLen+2 || rest[epochLen] != '.' || !isB64(rest[:epochLen]) {
		return pos{}, ixPos{}, false
	}
	off, ok := parseOffset(rest[epochLen+1:])
	if !ok {
		return pos{}, ixPos{}, false
	}
	return p, ixPos{epoch: rest[:epochLen], offset: off}, true
}

// parseOffset parses a decimal offset from 1 without leading zeros.
func parseOffset(o string) (uint64, bool) {
	if o == "" || o[0] == '0' || len(o) > 16 {
		return 0, false
	}
	off, err := strconv.ParseUint(o, 10, 64)
	if err != nil || off > maxOffset {
		return 0, false
	}
	return off, true
}

// position returns the cursor entry that a reader of topics keeps for e,
// and e's place in it: the topic's hash and e's topic position, or, when
// e is indexed and a pattern of topics matches it, the pattern's key in
// e's index and e's index position.
func (s *Store) position(topics []string, e store.Event) (pos, bool) {
	p, ix, ok := parseID(e.ID)
	if !ok || ix.epoch == "" {
		return p, ok
	}
	w := widest(topics, e.Topic)
	if w == "" {
		return p, true
	}
	idx, ok := s.indexOf(e.Topic)
	if !ok {
		return p, true
	}
	return pos{hash: s.posKey(w, idx), epoch: ix.epoch, offset: ix.offset}, true
}

// wanted returns the cursor keys a reader of topics keeps: each name's
// hash and each pattern's key in each of its indexes.
func (s *Store) wanted(topics []string) map[string]bool {
	want := map[string]bool{}
	for _, t := range topics {
		if !store.IsPattern(t) {
			want[topicHash(t)] = true
			continue
		}
		ixs, _ := s.patternIndexes(t)
		for _, ix := range ixs {
			want[s.posKey(t, ix)] = true
		}
	}
	return want
}
