package hub

import (
	"sync"
	"time"

	"github.com/sseguard/sseguard/store"
)

// Subscriber is one stream's registration with the hub. Its handler reads
// history, calls GoLive, then loops on Ready and Take until Take reports a
// cut, the client leaves, or the hub closes; Close unregisters it.
type Subscriber struct {
	// The fields every fan-out touches come first, to share cache lines:
	// a fan-out visits thousands of subscribers.
	mu     sync.Mutex
	live   bool // false while the handler replays history
	floor  bool // see cursor
	cut    bool
	closed bool
	bytes  int
	limit  int
	queue  []*Frame
	// ids holds, when not nil, the cursor of each queued frame whose id
	// line is not the event's ID ("" for those whose is): only readers of
	// several topics on stores without one sequence need it, so the hot
	// path queues frames alone.
	ids    []string
	notify chan struct{} // capacity 1: "the queue has something"
	onPush func()        // replaces notify when set; see SetNotify
	topics []string

	hub        *Hub
	registered bool // guarded by hub.mu

	// cursor is, for a reader of several topics, its cursor after the
	// last queued frame (see store.Store.Next); for one topic, the cursor
	// it went live at, which is all Seen needs (the first frame not Seen
	// clears floor). It starts where the replay ended.
	//
	// floor is set while a frame fanned out after GoLive may be one the
	// replay already delivered (its commit raced the replay read): such a
	// frame is Seen at cursor and dropped, not sent twice. Frames of one
	// topic arrive in order, so the first frame of a topic that is not
	// Seen clears that topic (uncleared counts the rest); the last clears
	// floor.
	cursor    string
	cleared   []bool // per topic, while floor is set; nil for one topic
	uncleared int
	label     string // names s in log lines; see SetLabel
	observed  int    // deliveries seen, for sampling latencies
}

// Subscribe registers a subscriber for topics, buffering live events until
// GoLive. It fails with ErrClosed once the hub is shutting down.
func (h *Hub) Subscribe(topics []string) (*Subscriber, error) {
	if err := checkPatterns(h.store, topics); err != nil {
		return nil, err
	}
	s := &Subscriber{
		hub:    h,
		topics: append([]string(nil), store.Reduce(topics)...),
		limit:  h.opts.QueueBytes,
		notify: make(chan struct{}, 1),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	h.register(s)
	s.registered = true
	h.subscribers.Add(1)
	return s, nil
}

type pushResult int

const (
	pushed      pushResult = iota
	pushDropped            // already cut or closed
	pushCut                // this push overflowed the queue
)

// push queues f, or cuts s off when f would overflow its bound.
func (s *Subscriber) push(f *Frame) pushResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut || s.closed {
		return pushDropped
	}
	size, cursor := len(f.Wire), ""
	if s.live {
		if s.floor && s.seen(f) {
			return pushed // the replay already sent it
		}
		if s.vector() {
			cursor = s.hub.store.Next(s.cursor, s.topics, f.Event)
			s.cursor = cursor
			size = Delivery{f, cursor}.size()
		}
	}
	if s.bytes > 0 && s.bytes+size > s.limit { // one event alone never counts as falling behind
		s.cutLocked()
		return pushCut
	}
	s.enqueue(f, cursor)
	s.bytes += size
	if s.live {
		s.signal()
	}
	return pushed
}

// enqueue queues f with the reader's cursor after it, "" when that is the
// event's ID; s.mu is held.
func (s *Subscriber) enqueue(f *Frame, cursor string) {
	if cursor == f.Event.ID {
		cursor = ""
	}
	if cursor != "" && s.ids == nil {
		s.ids = make([]string, len(s.queue), cap(s.queue))
	}
	s.queue = append(s.queue, f)
	if s.ids != nil {
		s.ids = append(s.ids, cursor)
	}
}

// delivery returns queued frame i with its cursor; s.mu is held.
func (s *Subscriber) delivery(i int) Delivery {
	d := Delivery{Frame: s.queue[i], Cursor: s.queue[i].Event.ID}
	if s.ids != nil && s.ids[i] != "" {
		d.Cursor = s.ids[i]
	}
	return d
}

// drop empties the queue, keeping its room (and that of ids, for a reader
// that needed them once); s.mu is held.
func (s *Subscriber) drop() {
	clear(s.queue)
	s.queue, s.bytes = s.queue[:0], 0
	if s.ids != nil {
		clear(s.ids)
		s.ids = s.ids[:0]
	}
}

// cutLocked cuts s off: its queue is dropped and its handler told; s.mu
// is held.
func (s *Subscriber) cutLocked() {
	s.cut = true
	s.queue, s.ids, s.bytes = nil, nil, 0
	s.signal()
}

// cutLoose cuts s off unless it is already cut or closed, and reports
// whether it did.
func (s *Subscriber) cutLoose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut || s.closed {
		return false
	}
	s.cutLocked()
	return true
}

// seen reports whether f is Seen at s's cursor, clearing f's topic from
// the floor when it is not; s.mu is held.
func (s *Subscriber) seen(f *Frame) bool {
	i := -1 // f's topic among s.topics, when several
	if s.cleared != nil {
		i = s.topicIndex(f.Event.Topic)
		if i < 0 || s.cleared[i] {
			return false // this topic's frames are past the cursor already
		}
	}
	if s.hub.store.Seen(s.cursor, s.topics, f.Event) {
		return true
	}
	if i < 0 {
		s.floor = false
		return false
	}
	if store.IsPattern(s.topics[i]) {
		return false // a pattern keeps the floor: see vector in pattern.go
	}
	s.cleared[i] = true
	if s.uncleared--; s.uncleared == 0 {
		s.floor, s.cleared = false, nil
	}
	return false
}

func (s *Subscriber) signal() {
	if s.onPush != nil {
		s.onPush()
		return
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// GoLive ends buffering at cursor, the cursor of the subscriber's topics
// after the replay: frames Seen at it, which the replay already delivered,
// are dropped, and Ready fires for the rest, each carrying its cursor. An
// empty cursor keeps every buffered frame.
func (s *Subscriber) GoLive(cursor string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = cursor
	s.floor = cursor != ""
	if s.floor && s.vector() {
		s.cleared, s.uncleared = make([]bool, len(s.topics)), len(s.topics)
	}
	buffered := s.queue
	s.queue, s.ids, s.bytes = buffered[:0], nil, 0
	for _, f := range buffered {
		if s.floor && s.seen(f) {
			continue
		}
		next, size := "", len(f.Wire)
		if s.vector() {
			next = s.hub.store.Next(s.cursor, s.topics, f.Event)
			s.cursor = next
			size = Delivery{f, next}.size()
		}
		s.enqueue(f, next)
		s.bytes += size
	}
	clear(buffered[len(s.queue):])
	s.live = true
	if len(s.queue) > 0 || s.cut {
		s.signal()
	}
}

// Ready fires when Take (or Pull) has frames or a cut to report.
func (s *Subscriber) Ready() <-chan struct{} { return s.notify }

// Take moves the queued deliveries into dst and returns it, and reports
// whether s was cut off for falling behind; a cut subscriber gets nothing
// more.
func (s *Subscriber) Take(dst []Delivery) ([]Delivery, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observe()
	for i := range s.queue {
		dst = append(dst, s.delivery(i))
	}
	s.drop()
	return dst, s.cut
}

// Close unregisters s. It is safe to call more than once.
func (s *Subscriber) Close() {
	h := s.hub
	h.mu.Lock()
	if s.registered {
		s.registered = false
		h.subscribers.Add(-1)
	}
	h.unregister(s)
	h.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue, s.ids, s.bytes = nil, nil, 0
	s.mu.Unlock()
}

// SetNotify makes s call fn, instead of firing Ready, whenever Take or Pull
// has something new. fn is called with s's lock held (see the lock order
// in the package doc): it must not block, and must not call back into s or
// the hub. It is how a parked stream (package park) is woken.
func (s *Subscriber) SetNotify(fn func()) {
	s.mu.Lock()
	s.onPush = fn
	s.mu.Unlock()
}

// Pull appends the queued frames' wire bytes to dst (shared: the caller
// must not modify them) and reports whether s was cut off. It implements
// park.Source and, with Ready, sse.Feed.
func (s *Subscriber) Pull(dst [][]byte) ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observe()
	for i, f := range s.queue {
		if s.ids == nil || s.ids[i] == "" {
			dst = append(dst, f.Wire)
			continue
		}
		dst = Delivery{f, s.ids[i]}.appendParts(dst)
	}
	s.drop()
	return dst, s.cut
}

// observeEvery samples delivery latencies: one delivery in this many is
// reported, which keeps the fan-out of one event to many streams from
// paying a metrics update per stream while still giving sound quantiles.
const observeEvery = 8

// observe reports a sample of the delivery latencies of the queued
// frames; s.mu is held.
func (s *Subscriber) observe() {
	o := s.hub.observer
	if o == nil || len(s.queue) == 0 {
		return
	}
	var now time.Time
	for _, f := range s.queue {
		if s.observed++; s.observed%observeEvery != 0 {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		o.Delivered(now.Sub(f.Event.Time))
	}
}

// Cut reports whether s was cut off for falling behind.
func (s *Subscriber) Cut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut
}

// SetLabel names s in the hub's log lines (the server uses the stream's
// request ID).
func (s *Subscriber) SetLabel(label string) {
	s.mu.Lock()
	s.label = label
	s.mu.Unlock()
}

func (s *Subscriber) getLabel() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.label
}
