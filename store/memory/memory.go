// Package memory is a store.Store that keeps events in process memory, for
// tests and ephemeral hubs: nothing survives a restart, and a cursor from
// before a restart is unknown to the new store.
//
// Each topic is a slice of events in sequence order; retention drops from
// its front. IDs are the decimal global sequence ("1", "2", …), the same
// format as store/bolt. Package memory is not for data that must outlive the
// process (use store/bolt).
//
// Shared (NewShared) is the same store as several hub processes would
// share it: it numbers events per topic, gives readers of several topics
// vector cursors, and implements store.Feed, so that two hubs in one
// process over one Shared behave as two nodes over store/redis. It is for
// tests of the hub and the server.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/internal/merge"
	"github.com/sseguard/sseguard/store/internal/seqid"
)

// DefaultReadLimit is the page size of a Read whose limit is zero or less.
const DefaultReadLimit = 1000

// compactAfter is how many dropped slots a slice may carry at its front
// before it is copied down, so that retention is amortized O(1) per event.
const compactAfter = 1024

var errEmptyTopic = errors.New("empty topic")

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	r      store.Retention
	window time.Duration

	mu     sync.RWMutex
	closed bool
	seq    uint64    // last assigned sequence number
	last   time.Time // time of the last commit; event times never go back
	topics map[string]*topic
	keys   map[string]keyEntry
	// order lists idempotency keys in commit order (so by time), for Trim
	// to forget the expired ones from the front; entries whose key was
	// re-used since are skipped by seq.
	order      []keyRef
	orderStart int

	// perTopic numbers events per topic (Shared): IDs are "<topic
	// number>.<offset>", cursors lists of them (see vector). byNum[n-1]
	// is topic number n.
	perTopic bool
	byNum    []*topic
}

type topic struct {
	events  []store.Event
	seqs    []uint64 // seqs[i] is the sequence number of events[i]
	start   int      // events[:start] were removed
	trimmed uint64   // highest sequence number removed by retention

	// With per-topic numbering (Shared) only:
	num        uint64   // the topic's number in IDs, from 1
	offs       []uint64 // offs[i] is the offset of events[i] in the topic, from 1
	last       uint64   // the last offset assigned
	trimmedOff uint64   // highest offset removed by retention
}

// keyEntry is what an idempotency key remembers: not the event itself, so
// that retention frees its data.
type keyEntry struct {
	id    string // the event's ID
	seq   uint64
	topic string
	at    time.Time
	sum   [16]byte // store.Fingerprint of the record
}

type keyRef struct {
	key string
	seq uint64
}

var _ store.Store = (*Store)(nil)

// New returns an empty store that applies r. A MaxEventsPerTopic or MaxAge
// of zero or less means no limit; an IdempotencyWindow of zero or less means
// store.DefaultIdempotencyWindow.
func New(r store.Retention) *Store {
	w := r.IdempotencyWindow
	if w <= 0 {
		w = store.DefaultIdempotencyWindow
	}
	return &Store{
		r:      r,
		window: w,
		topics: map[string]*topic{},
		keys:   map[string]keyEntry{},
	}
}

// Append stores recs in order. Count retention is applied at once; age
// retention and the idempotency window wait for Trim, except that a key
// older than the window at the time of Append is treated as new. A
// duplicate whose first event was since removed by retention returns that
// event's ID, topic and time only.
func (s *Store) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range recs {
		if recs[i].Topic == "" {
			return nil, fmt.Errorf("memory store: append: record %d: %w", i, errEmptyTopic)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	now := time.Now().Round(0).UTC()
	if now.Before(s.last) {
		now = s.last
	}
	s.last = now
	out := make([]store.Appended, len(recs))
	for i, rec := range recs {
		if rec.IdempotencyKey != "" {
			if k, ok := s.keys[rec.IdempotencyKey]; ok && !expired(k.at, now, s.window) {
				out[i] = store.Appended{Event: s.remembered(k), Duplicate: true, Conflict: k.sum != store.Fingerprint(rec)}
				continue
			}
		}
		s.seq++
		t := s.topics[rec.Topic]
		if t == nil {
			t = &topic{}
			s.topics[rec.Topic] = t
			if s.perTopic {
				s.byNum = append(s.byNum, t)
				t.num = uint64(len(s.byNum))
			}
		}
		id := seqid.Format(s.seq)
		if s.perTopic {
			t.last++
			t.offs = append(t.offs, t.last)
			id = position{t.num, t.last}.String()
		}
		ev := store.Event{ID: id, Topic: rec.Topic, Type: rec.Type, Data: rec.Data, Time: now}
		t.events = append(t.events, ev)
		t.seqs = append(t.seqs, s.seq)
		if limit := s.r.MaxEventsPerTopic; limit > 0 {
			for t.len() > limit {
				t.drop()
			}
		}
		if rec.IdempotencyKey != "" {
			s.keys[rec.IdempotencyKey] = keyEntry{id: id, seq: s.seq, topic: rec.Topic, at: now, sum: store.Fingerprint(rec)}
			s.order = append(s.order, keyRef{key: rec.IdempotencyKey, seq: s.seq})
		}
		out[i] = store.Appended{Event: ev}
	}
	return out, nil
}

// Read returns the events of topics after the cursor in ID order. It costs
// O(log n) per topic to find the cursor and O(k) per event returned for k
// topics.
func (s *Store) Read(ctx context.Context, topics []string, after string, limit int) (store.Page, error) {
	if err := ctx.Err(); err != nil {
		return store.Page{}, err
	}
	if s.perTopic {
		return s.readVector(topics, after, limit)
	}
	cursor, err := seqid.Cursor("memory store", after)
	if err != nil {
		return store.Page{}, err
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.Page{}, store.ErrClosed
	}
	if cursor > s.seq {
		return store.Page{}, fmt.Errorf("memory store: read: cursor newer than head: %w", store.ErrUnknownCursor)
	}

	page := store.Page{Events: make([]store.Event, 0, min(limit, 64))}
	heads := make([]head, 0, len(topics))
	seen := make(map[string]bool, len(topics))
	for _, name := range s.expand(topics) {
		if seen[name] {
			continue
		}
		seen[name] = true
		t := s.topics[name]
		if t == nil {
			continue
		}
		if after != "" && t.trimmed > cursor {
			page.Truncated = true
		}
		seqs := t.seqs[t.start:]
		i := t.start + sort.Search(len(seqs), func(i int) bool { return seqs[i] > cursor })
		if i < len(t.events) {
			heads = append(heads, head{t: t, i: i})
		}
	}
	mergeHeads(&page, heads, limit)
	return page, nil
}

// head is where a Read is in one topic.
type head struct {
	t *topic
	i int
}

// mergeHeads appends the events after heads to page in sequence order, at
// most limit in all.
func mergeHeads(page *store.Page, heads []head, limit int) {
	if len(heads) > heapFrom {
		mergeHeap(page, heads, limit)
		return
	}
	for len(heads) > 0 {
		if len(page.Events) == limit {
			page.More = true
			break
		}
		lo := 0
		for j := 1; j < len(heads); j++ {
			if heads[j].t.seqs[heads[j].i] < heads[lo].t.seqs[heads[lo].i] {
				lo = j
			}
		}
		h := &heads[lo]
		page.Events = append(page.Events, h.t.events[h.i])
		h.i++
		if h.i == len(h.t.events) {
			heads = append(heads[:lo], heads[lo+1:]...)
		}
	}
}

// heapFrom is the number of topics above which a read merges them with a
// heap (a pattern's topics) rather than by scanning them for each event.
const heapFrom = 16

// mergeHeap is mergeHeads in O(log k) per event for k heads.
func mergeHeap(page *store.Page, heads []head, limit int) {
	h := merge.Heap[head]{Items: heads, Seq: func(x *head) uint64 { return x.t.seqs[x.i] }}
	h.Init()
	for len(h.Items) > 0 {
		if len(page.Events) == limit {
			page.More = true
			return
		}
		top := &h.Items[0]
		page.Events = append(page.Events, top.t.events[top.i])
		if top.i++; top.i == len(top.t.events) {
			h.Pop()
		} else {
			h.Fix()
		}
	}
}

// Head returns the ID of the newest event of any topic, or "" when none
// was appended: one sequence positions every topic set.
func (s *Store) Head(ctx context.Context, topics []string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if s.perTopic {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return "", store.ErrClosed
		}
		return s.headVector(topics), nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return "", store.ErrClosed
	}
	if s.seq == 0 {
		return "", nil
	}
	return seqid.Format(s.seq), nil
}

// Compare orders two IDs numerically.
func (s *Store) Compare(a, b string) int {
	if s.perTopic {
		return comparePositions(a, b)
	}
	return seqid.Compare(a, b)
}

// Next returns e.ID: one sequence orders every topic, so an event's ID is
// the cursor of any topic set.
func (s *Store) Next(cursor string, topics []string, e store.Event) string {
	if s.perTopic && len(topics) > 1 {
		return nextVector(cursor, e)
	}
	return e.ID
}

// Patterns reports whether Read takes topic patterns (store.Patterns):
// a Store made by New does, reading them from the one sequence; a Shared
// one, whose readers of several topics hold vector cursors, does not.
func (s *Store) Patterns() bool { return !s.perTopic }

// expand replaces the patterns among topics by the topics they match that
// have events; s.mu is held. It walks every topic once per pattern.
func (s *Store) expand(topics []string) []string {
	if !store.HasPattern(topics) {
		return topics
	}
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		if !store.IsPattern(t) {
			out = append(out, t)
			continue
		}
		for name := range s.topics {
			if store.Match(t, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// Seen reports whether e's ID is at or before cursor.
func (s *Store) Seen(cursor string, _ []string, e store.Event) bool {
	if s.perTopic {
		return seenVector(cursor, e)
	}
	return seqid.Seen(cursor, e.ID)
}

// Trim drops events older than MaxAge at now, applies MaxEventsPerTopic,
// and forgets idempotency keys older than the window at now.
func (s *Store) Trim(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	removed := 0
	for _, t := range s.topics {
		for t.len() > 0 {
			over := s.r.MaxEventsPerTopic > 0 && t.len() > s.r.MaxEventsPerTopic
			old := s.r.MaxAge > 0 && expired(t.events[t.start].Time, now, s.r.MaxAge)
			if !over && !old {
				break
			}
			t.drop()
			removed++
		}
	}
	for s.orderStart < len(s.order) {
		ref := s.order[s.orderStart]
		k, ok := s.keys[ref.key]
		if ok && k.seq == ref.seq {
			if !expired(k.at, now, s.window) {
				break
			}
			delete(s.keys, ref.key)
		}
		s.order[s.orderStart] = keyRef{}
		s.orderStart++
	}
	if s.orderStart > compactAfter && s.orderStart*2 > len(s.order) {
		s.order = append([]keyRef(nil), s.order[s.orderStart:]...)
		s.orderStart = 0
	}
	return removed, nil
}

// Ping reports ErrClosed after Close, and nil before.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// Close releases the events. A second Close returns store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.topics, s.keys, s.order, s.byNum = nil, nil, nil, nil
	return nil
}

// remembered returns the event a key points at. When retention removed it
// since, only its ID, topic and time are known.
func (s *Store) remembered(k keyEntry) store.Event {
	if t := s.topics[k.topic]; t != nil {
		seqs := t.seqs[t.start:]
		i := sort.Search(len(seqs), func(i int) bool { return seqs[i] >= k.seq })
		if i < len(seqs) && seqs[i] == k.seq {
			return t.events[t.start+i]
		}
	}
	return store.Event{ID: k.id, Topic: k.topic, Time: k.at}
}

// expired reports whether something made at t is older than limit at now.
func expired(t, now time.Time, limit time.Duration) bool {
	return now.Sub(t) > limit
}

func (t *topic) len() int { return len(t.events) - t.start }

// drop removes the oldest retained event.
func (t *topic) drop() {
	t.trimmed = t.seqs[t.start]
	if t.offs != nil {
		t.trimmedOff = t.offs[t.start]
	}
	t.events[t.start] = store.Event{}
	t.start++
	if t.start > compactAfter && t.start*2 > len(t.events) {
		t.events = append([]store.Event(nil), t.events[t.start:]...)
		t.seqs = append([]uint64(nil), t.seqs[t.start:]...)
		if t.offs != nil {
			t.offs = append([]uint64(nil), t.offs[t.start:]...)
		}
		t.start = 0
	}
}
