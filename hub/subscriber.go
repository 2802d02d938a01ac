package hub

import (
	"sync"
	"time"
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
	queue []*Frame
	bytes int
	live  bool // false while the handler replays history
	// floor is the last ID the replay delivered: a frame at or before it
	// that is fanned out after GoLive (its commit raced the replay read) is
	// dropped, not sent twice. Cleared by the first frame after it, since
	// frames arrive in ID order.
	floor    string
	cut      bool
	closed   bool
	notify   chan struct{} // capacity 1: "the queue has something"
	onPush   func()        // replaces notify when set; see SetNotify
	label    string        // names s in log lines; see SetLabel
	observed int           // deliveries seen, for sampling latencies
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
	if s.floor != "" {
		if s.hub.store.Compare(f.Event.ID, s.floor) <= 0 {
			return pushed // the replay already sent it
		}
		s.floor = ""
	}
	if s.bytes > 0 && s.bytes+len(f.Wire) > s.limit { // one event alone never counts as falling behind
		s.cut = true
		s.queue, s.bytes = nil, 0
		s.signal()
		return pushCut
	}
	s.queue = append(s.queue, f)
	s.bytes += len(f.Wire)
	if s.live {
		s.signal()
	}
	return pushed
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

// GoLive ends buffering: frames with IDs at or before lastID, which the
// replay already delivered, are dropped, and Ready fires for the rest. An
// empty lastID keeps every buffered frame.
func (s *Subscriber) GoLive(lastID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lastID != "" {
		keep := s.queue[:0]
		for _, f := range s.queue {
			if s.hub.store.Compare(f.Event.ID, lastID) > 0 {
				keep = append(keep, f)
			} else {
				s.bytes -= len(f.Wire)
			}
		}
		clear(s.queue[len(keep):])
		s.queue = keep
	}
	s.live = true
	if len(s.queue) == 0 { // else the queued frames are newer, and so is all that follows
		s.floor = lastID
	}
	if len(s.queue) > 0 || s.cut {
		s.signal()
	}
}

// Ready fires when Take (or Pull) has frames or a cut to report.
func (s *Subscriber) Ready() <-chan struct{} { return s.notify }

// Take moves the queued frames into dst and returns it, and reports whether
// s was cut off for falling behind; a cut subscriber gets nothing more.
func (s *Subscriber) Take(dst []*Frame) ([]*Frame, bool) {
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
	for _, f := range s.queue {
		dst = append(dst, f.Wire)
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
