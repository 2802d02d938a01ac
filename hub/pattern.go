package hub

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sseguard/sseguard/store"
)

// ErrPatterns is returned by Subscribe for topic patterns when the hub's
// store does not read them (store.CheckPattern): it wraps the store's
// error, which says why.
var ErrPatterns = errors.New("hub: the store does not read topic patterns")

// checkPatterns returns an error wrapping ErrPatterns when st does not
// read one of the patterns among topics.
func checkPatterns(st store.Store, topics []string) error {
	for _, t := range topics {
		if !store.IsPattern(t) {
			continue
		}
		if err := store.CheckPattern(st, t); err != nil {
			return fmt.Errorf("%w: %w", ErrPatterns, err)
		}
	}
	return nil
}

// vector reports whether s needs the store's Next for each frame's
// cursor: a reader of several topics, or of a pattern (one entry that is
// a set of topics; for a store with one sequence Next gives the event's
// ID, for store/redis a position in the pattern's index).
//
// A pattern's entry also keeps the floor (see Subscriber.cursor): its
// frames may come from several sequences (store/redis reads a pattern
// from one index per prefix it spans), each in order but not together,
// so the first frame past the cursor does not prove the next ones are;
// every frame is checked with Seen.
func (s *Subscriber) vector() bool {
	return len(s.topics) > 1 || len(s.topics) == 1 && store.IsPattern(s.topics[0])
}

// patternIndex holds the subscribers of topic patterns beside the exact
// topic map, keyed by prefix ("orders/" for "orders/*"). A fan-out looks
// up the prefixes of the event's topic of the lengths some pattern has,
// so its cost is one map lookup per distinct prefix length, not one check
// per pattern. It is guarded by Hub.mu.
type patternIndex struct {
	byPrefix map[string]map[*Subscriber]struct{}
	lens     map[int]int // prefix length → how many prefixes have it
	sorted   []int       // the keys of lens, ascending
}

func (p *patternIndex) add(pattern string, s *Subscriber) {
	prefix := strings.TrimSuffix(pattern, "*")
	if p.byPrefix == nil {
		p.byPrefix, p.lens = map[string]map[*Subscriber]struct{}{}, map[int]int{}
	}
	subs := p.byPrefix[prefix]
	if subs == nil {
		subs = map[*Subscriber]struct{}{}
		p.byPrefix[prefix] = subs
		if p.lens[len(prefix)]++; p.lens[len(prefix)] == 1 {
			p.resort()
		}
	}
	subs[s] = struct{}{}
}

func (p *patternIndex) remove(pattern string, s *Subscriber) {
	prefix := strings.TrimSuffix(pattern, "*")
	subs := p.byPrefix[prefix]
	if subs == nil {
		return
	}
	delete(subs, s)
	if len(subs) > 0 {
		return
	}
	delete(p.byPrefix, prefix)
	if p.lens[len(prefix)]--; p.lens[len(prefix)] == 0 {
		delete(p.lens, len(prefix))
		p.resort()
	}
}

func (p *patternIndex) resort() {
	p.sorted = p.sorted[:0]
	for n := range p.lens {
		p.sorted = append(p.sorted, n)
	}
	for i := 1; i < len(p.sorted); i++ {
		for j := i; j > 0 && p.sorted[j] < p.sorted[j-1]; j-- {
			p.sorted[j], p.sorted[j-1] = p.sorted[j-1], p.sorted[j]
		}
	}
}

// match returns the subscribers of the i-th shortest prefix length that
// some pattern has, when a pattern of that length matches topic, and
// whether there are longer ones to try. Subscribe reduced each
// subscriber's topics (store.Reduce), so no subscriber is in two of the
// sets, nor in the topic's exact set.
func (p *patternIndex) match(topic string, i int) (map[*Subscriber]struct{}, bool) {
	if i >= len(p.sorted) || p.sorted[i] > len(topic) || strings.HasPrefix(topic, store.ReservedPrefix) {
		return nil, false
	}
	return p.byPrefix[topic[:p.sorted[i]]], true
}

// matches reports whether some pattern matches topic.
func (p *patternIndex) matches(topic string) bool {
	for i := 0; ; i++ {
		subs, more := p.match(topic, i)
		if !more {
			return false
		}
		if len(subs) > 0 {
			return true
		}
	}
}

// deliverPatterns queues f to the subscribers of the patterns that match
// its topic; h.mu is held for reading.
func (h *Hub) deliverPatterns(f *Frame, fo *fanOut) {
	for i := 0; ; i++ {
		subs, more := h.patterns.match(f.Event.Topic, i)
		if !more {
			return
		}
		h.pushAll(subs, f, fo)
	}
}

// register adds s under each of its topics; h.mu is held for writing.
func (h *Hub) register(s *Subscriber) {
	for _, t := range s.topics {
		if store.IsPattern(t) {
			h.patterns.add(t, s)
			continue
		}
		subs := h.topics[t]
		if subs == nil {
			subs = make(map[*Subscriber]struct{})
			h.topics[t] = subs
		}
		subs[s] = struct{}{}
	}
}

// unregister removes s from each of its topics; h.mu is held for writing.
func (h *Hub) unregister(s *Subscriber) {
	for _, t := range s.topics {
		if store.IsPattern(t) {
			h.patterns.remove(t, s)
			continue
		}
		if subs := h.topics[t]; subs != nil {
			delete(subs, s)
			if len(subs) == 0 {
				delete(h.topics, t)
			}
		}
	}
}

// cutLoosePatterns cuts loose the pattern subscribers that match one of
// topics (all of them when topics is nil). An entry of topics may be a
// pattern (a store.Feed's Gap of a prefix index): it cuts the patterns
// that overlap it, one covering the other. h.mu is held for reading.
func (h *Hub) cutLoosePatterns(topics []string, cuts *cutOffs) {
	for prefix, subs := range h.patterns.byPrefix {
		hit := topics == nil
		for _, t := range topics {
			p := prefix + "*"
			hit = hit || store.Match(p, t) || store.IsPattern(t) && (store.Covers(t, p) || store.Covers(p, t))
		}
		if !hit {
			continue
		}
		for s := range subs {
			if s.cutLoose() {
				h.cutOff.Add(1)
				cuts.add(s, prefix+"*")
			}
		}
	}
}

// topicIndex returns the index in s.topics of the entry that matches
// topic, or -1.
func (s *Subscriber) topicIndex(topic string) int {
	for j, t := range s.topics {
		if store.Match(t, topic) {
			return j
		}
	}
	return -1
}
