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
	hub    *Hub
	topics []string
	limit  int

	registered bool // guarded by hub.mu

	mu    sync.Mutex
	queue []Delivery
	bytes int
	live  bool // false while the handler replays history
	// cursor is the subscriber's cursor after the last queued frame (see
	// store.Store.Next); it starts where the replay ended.
	cursor string
	// floor is set while a frame fanned out after GoLive may be one the
	// replay already delivered (its commit raced the replay read): such a
	// frame is Seen at cursor and dropped, not sent twice. Frames of one
	// topic arrive in order, so the first frame of a topic that is not
	// Seen clears that topic (uncleared counts the rest); the last clears
	// floor.
	floor     bool
	cleared   []bool // per topic, while floor is set; nil for one topic
	uncleared int
	cut       bool
	closed    bool
	notify    chan struct{} // capacity 1: "the queue has something"
	onPush    func()        // replaces notify when set; see SetNotify
	label     string        // names s in log lines; see SetLabel
	observed  int           // deliveries seen, for sampling latencies
}

// Subscribe registers a subscriber for topics, buffering live events until
// GoLive. It fails with ErrClosed once the hub is shutting down.
func (h *Hub) Subscribe(topics []string) (*Subscriber, error) {
	s := &Subscriber{
		hub:    h,
		topics: append([]string(nil), topics...),
		limit:  h.opts.QueueBytes,
		notify: make(chan struct{}, 1),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	for _, t := range s.topics {
		subs := h.topics[t]
		if subs == nil {
			subs = make(map[*Subscriber]struct{})
			h.topics[t] = subs
		}
		subs[s] = struct{}{}
	}
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
	d := Delivery{Frame: f}
	if s.live {
		if s.floor && s.seen(f) {
			return pushed // the replay already sent it
		}
		d.Cursor = s.next(f.Event)
	}
	size := d.size()
	if s.bytes > 0 && s.bytes+size > s.limit { // one event alone never counts as falling behind
		s.cutLocked()
		return pushCut
	}
	s.queue = append(s.queue, d)
	s.bytes += size
	if s.live {
		s.cursor = d.Cursor
		s.signal()
	}
	return pushed
}

// cutLocked cuts s off: its queue is dropped and its handler told; s.mu
// is held.
func (s *Subscriber) cutLocked() {
	s.cut = true
	s.queue, s.bytes = nil, 0
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

// next returns the cursor after f for s; s.mu is held. A reader of one
// topic has the event's ID as its cursor (store.Store.Next says so), which
// saves the store call on the hot path.
func (s *Subscriber) next(e store.Event) string {
	if len(s.topics) == 1 {
		return e.ID
	}
	return s.hub.store.Next(s.cursor, s.topics, e)
}

// seen reports whether f is Seen at s's cursor, clearing f's topic from
// the floor when it is not; s.mu is held.
func (s *Subscriber) seen(f *Frame) bool {
	if s.hub.store.Seen(s.cursor, s.topics, f.Event) {
		return true
	}
	if s.cleared == nil {
		s.floor = false
		return false
	}
	for i, t := range s.topics {
		if t == f.Event.Topic && !s.cleared[i] {
			s.cleared[i] = true
			if s.uncleared--; s.uncleared == 0 {
				s.floor, s.cleared = false, nil
			}
			break
		}
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
	if s.floor && len(s.topics) > 1 {
		s.cleared, s.uncleared = make([]bool, len(s.topics)), len(s.topics)
	}
	keep := s.queue[:0]
	s.bytes = 0
	for _, d := range s.queue {
		if s.floor && s.seen(d.Frame) {
			continue
		}
		d.Cursor = s.next(d.Frame.Event)
		s.cursor = d.Cursor
		keep = append(keep, d)
		s.bytes += d.size()
	}
	clear(s.queue[len(keep):])
	s.queue = keep
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
	dst = append(dst, s.queue...)
	clear(s.queue)
	s.queue, s.bytes = s.queue[:0], 0
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
	for _, t := range s.topics {
		if subs := h.topics[t]; subs != nil {
			delete(subs, s)
			if len(subs) == 0 {
				delete(h.topics, t)
			}
		}
	}
	h.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue, s.bytes = nil, 0
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
	for _, d := range s.queue {
		dst = d.appendParts(dst)
	}
	clear(s.queue)
	s.queue, s.bytes = s.queue[:0], 0
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
	for _, d := range s.queue {
		if s.observed++; s.observed%observeEvery != 0 {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		o.Delivered(now.Sub(d.Frame.Event.Time))
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
