package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/internal/seqid"
)

// Shared is a Store as several hub processes share one (store/redis does
// for real), for tests in one process: events are numbered per topic, a
// reader of several topics holds a vector cursor, and Follow (store.Feed)
// hands every committed event to every hub that follows it. Two hubs over
// one Shared behave as two nodes over one Redis.
//
// IDs are "<topic number>.<offset>" ("1.1", "1.2", "2.1", …): the topic's
// number in order of its first event, and the event's place in its topic.
// The cursor of a reader of several topics lists the positions it has
// reached, one per topic, by topic number, joined with "_" ("1.7_2.3");
// the cursor of a reader of one topic is the ID of its last event.
type Shared struct {
	*Store

	// FeedLimit is how many events one follower may have waiting before
	// it loses them and reports a gap for their topics (a node that fell
	// behind its feed). Zero means 65536. Set it before Follow.
	FeedLimit int

	mu        sync.Mutex // orders commits as followers see them
	followers map[*follower]struct{}
}

var (
	_ store.Store = (*Shared)(nil)
	_ store.Feed  = (*Shared)(nil)
)

// NewShared returns an empty shared store that applies r (see New).
func NewShared(r store.Retention) *Shared {
	st := New(r)
	st.perTopic = true
	return &Shared{Store: st, followers: map[*follower]struct{}{}}
}

// Append stores recs as Store.Append does and hands the new events to
// every follower, in commit order.
func (s *Shared) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.Store.Append(ctx, recs)
	if err != nil || len(s.followers) == 0 {
		return out, err
	}
	fresh := make([]store.Event, 0, len(out))
	for _, a := range out {
		if !a.Duplicate {
			fresh = append(fresh, a.Event)
		}
	}
	limit := s.FeedLimit
	if limit <= 0 {
		limit = 1 << 16
	}
	for f := range s.followers {
		f.add(fresh, limit)
	}
	return out, nil
}

// Follow delivers every event committed from its Started on to sink until
// ctx ends. A follower that lets more than FeedLimit events wait loses
// them, and sink.Gap hears of their topics.
func (s *Shared) Follow(ctx context.Context, sink store.FeedSink) error {
	f := &follower{wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.followers[f] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.followers, f)
		s.mu.Unlock()
	}()
	sink.Started()
	var batch []store.Event
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.wake:
		}
		var gaps []string
		batch, gaps = f.take(batch[:0])
		for _, t := range gaps {
			sink.Gap(t)
		}
		if len(batch) > 0 {
			sink.Deliver(batch)
		}
		clear(batch)
	}
}

// follower is one Follow's queue.
type follower struct {
	wake    chan struct{}
	mu      sync.Mutex
	pending []store.Event
	gaps    []string
}

func (f *follower) add(events []store.Event, limit int) {
	f.mu.Lock()
	if len(f.pending)+len(events) > limit {
		for _, e := range append(f.pending, events...) {
			if !slices.Contains(f.gaps, e.Topic) {
				f.gaps = append(f.gaps, e.Topic)
			}
		}
		f.pending = nil
	} else {
		f.pending = append(f.pending, events...)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *follower) take(dst []store.Event) ([]store.Event, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst = append(dst, f.pending...)
	gaps := f.gaps
	f.pending, f.gaps = f.pending[:0], nil
	return dst, gaps
}

// position is an event's place in its topic, with per-topic numbering.
type position struct{ num, off uint64 }

func (p position) String() string {
	return seqid.Format(p.num) + "." + seqid.Format(p.off)
}

func parsePosition(s string) (position, bool) {
	n, o, ok := strings.Cut(s, ".")
	if !ok {
		return position{}, false
	}
	num, ok1 := seqid.Parse(n)
	off, ok2 := seqid.Parse(o)
	if !ok1 || !ok2 || num == 0 {
		return position{}, false
	}
	return position{num, off}, true
}

// parseVector parses a cursor of positions in increasing topic numbers;
// "" and "0" (store.Store's cursor before every event) are the empty
// vector.
func parseVector(c string) ([]position, bool) {
	if c == "" || c == "0" {
		return nil, true
	}
	var vec []position
	for part := range strings.SplitSeq(c, "_") {
		p, ok := parsePosition(part)
		if !ok || len(vec) > 0 && p.num <= vec[len(vec)-1].num {
			return nil, false
		}
		vec = append(vec, p)
	}
	return vec, true
}

func formatVector(vec []position) string {
	var b strings.Builder
	for i, p := range vec {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// offset returns the offset vec holds for topic number num.
func offset(vec []position, num uint64) (uint64, bool) {
	i := sort.Search(len(vec), func(i int) bool { return vec[i].num >= num })
	if i < len(vec) && vec[i].num == num {
		return vec[i].off, true
	}
	return 0, false
}

func comparePositions(a, b string) int {
	pa, _ := parsePosition(a)
	pb, _ := parsePosition(b)
	switch {
	case pa.num != pb.num:
		return compareUint(pa.num, pb.num) // another topic: any consistent order
	default:
		return compareUint(pa.off, pb.off)
	}
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// nextVector returns cursor with e's position: hubs call it for every
// event a reader of several topics gets, so it walks the cursor in place
// and allocates only the result.
func nextVector(cursor string, e store.Event) string {
	p, ok := parsePosition(e.ID)
	if !ok {
		return cursor
	}
	if !validVector(cursor) {
		cursor = ""
	}
	var b strings.Builder
	b.Grow(len(cursor) + len(e.ID) + 1)
	placed := false
	put := func(s string) {
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		b.WriteString(s)
	}
	for rest := cursor; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "_")
		q, _ := parsePosition(part)
		switch {
		case q.num < p.num:
			put(part)
		case q.num == p.num:
			put(e.ID)
			placed = true
		default:
			if !placed {
				put(e.ID)
				placed = true
			}
			put(part)
		}
	}
	if !placed {
		put(e.ID)
	}
	return b.String()
}

// validVector reports whether c parses as a cursor, without allocating.
func validVector(c string) bool {
	var last uint64
	for rest, more := c, c != ""; more; {
		var part string
		part, rest, more = strings.Cut(rest, "_")
		p, ok := parsePosition(part)
		if !ok || p.num <= last {
			return false
		}
		last = p.num
	}
	return true
}

func seenVector(cursor string, e store.Event) bool {
	p, ok := parsePosition(e.ID)
	if !ok || !validVector(cursor) {
		return false
	}
	for rest := cursor; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "_")
		if q, _ := parsePosition(part); q.num == p.num {
			return p.off <= q.off
		}
	}
	return false
}

// readVector is Read with per-topic numbering: each topic the cursor
// names resumes after its position, the others from their oldest event.
func (s *Store) readVector(topics []string, after string, limit int) (store.Page, error) {
	vec, ok := parseVector(after)
	if !ok {
		return store.Page{}, fmt.Errorf("memory store: read: malformed cursor: %w", store.ErrUnknownCursor)
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.Page{}, store.ErrClosed
	}
	for _, p := range vec {
		if p.num > uint64(len(s.byNum)) || p.off > s.byNum[p.num-1].last {
			return store.Page{}, fmt.Errorf("memory store: read: cursor newer than head: %w", store.ErrUnknownCursor)
		}
	}
	page := store.Page{Events: make([]store.Event, 0, min(limit, 64))}
	heads := make([]head, 0, len(topics))
	seen := make(map[string]bool, len(topics))
	for _, name := range topics {
		if seen[name] {
			continue
		}
		seen[name] = true
		t := s.topics[name]
		if t == nil {
			continue
		}
		from, named := offset(vec, t.num)
		if named && t.trimmedOff > from || !named && after != "" && t.trimmedOff > 0 {
			page.Truncated = true // an unnamed topic may have lost what the reader was owed
		}
		offs := t.offs[t.start:]
		i := t.start + sort.Search(len(offs), func(i int) bool { return offs[i] > from })
		if i < len(t.events) {
			heads = append(heads, head{t: t, i: i})
		}
	}
	mergeHeads(&page, heads, limit)
	return page, nil
}

// headVector returns the positions of the last events of topics, giving
// a number to each topic that has none yet, so that the cursor names it
// at offset 0; s.mu is held for writing.
func (s *Store) headVector(topics []string) string {
	var vec []position
	for _, name := range topics {
		t := s.topics[name]
		if t == nil {
			t = &topic{}
			s.topics[name] = t
			s.byNum = append(s.byNum, t)
			t.num = uint64(len(s.byNum))
		}
		if _, dup := offset(vec, t.num); dup {
			continue
		}
		p := position{t.num, t.last}
		i := sort.Search(len(vec), func(i int) bool { return vec[i].num >= p.num })
		vec = slices.Insert(vec, i, p)
	}
	return formatVector(vec)
}
