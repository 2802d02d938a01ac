package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/lograte"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/presence"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/telemetry"
)

// Presence (presence.topics): every open stream and WebSocket subscribed
// by name to a tracked topic is counted (package presence), GET
// /api/presence answers the count, and a subscriber that asks with
// presence=1 gets join and leave events on its tracked topics.
// docs/presence.md is the contract.

// Event types of presence, which publishers may not use (the sseguard.
// prefix is reserved, see checkType).
const (
	PresenceJoinEvent  = "sseguard.join"
	PresenceLeaveEvent = "sseguard.leave"
)

// presenceHub is the server's side of presence: the tracker, and the
// subscribers that asked for join and leave events, by topic.
type presenceHub struct {
	tracker *presence.Tracker
	limit   int // bytes of events one subscriber may have waiting

	// mu guards listeners. Lock order: mu, then a presenceQueue's mu,
	// then what its notify function takes (a leaf).
	mu        sync.RWMutex
	listeners map[string]map[*presenceQueue]struct{}
}

// presenceStore is a store that lends its Redis client (store/redis).
type presenceStore interface {
	Client() (goredis.UniversalClient, string)
}

// newPresenceHub returns the presence of a server with cfg, or nil when
// presence.topics is empty. Over a Redis store the counts are shared
// through its client.
func newPresenceHub(cfg *config.Config, st store.Store, reg *telemetry.Presence, log *slog.Logger) *presenceHub {
	if len(cfg.Presence.Topics) == 0 {
		return nil
	}
	ph := &presenceHub{limit: cfg.Stream.QueueBytes, listeners: map[string]map[*presenceQueue]struct{}{}}
	opts := presence.Options{
		Topics:        cfg.Presence.Topics,
		TTL:           cfg.Presence.TTL.D(),
		FlushInterval: cfg.Presence.FlushInterval.D(),
		OnEvents:      ph.deliver,
		Observer:      reg,
		Logger:        log,
	}
	if rs, ok := st.(presenceStore); ok {
		opts.Redis, opts.Prefix = rs.Client()
	}
	ph.tracker = presence.New(opts)
	return ph
}

// presenceFormat is how a listener's transport frames an event.
type presenceFormat int

const (
	presenceSSE presenceFormat = iota
	presenceWS
)

// presenceQueue holds the join and leave events waiting for one
// subscriber, bounded like its event queue (stream.queue_bytes): one
// that does not read them is cut off, as it is for events.
type presenceQueue struct {
	format presenceFormat
	claim  bool // the subscriber may see subjects
	topics []string

	mu      sync.Mutex
	pending [][]byte
	bytes   int
	limit   int
	cut     bool

	notify atomic.Pointer[func()] // replaces ready when set
	ready  chan struct{}          // capacity 1
}

func (q *presenceQueue) push(b []byte) {
	q.mu.Lock()
	if q.cut {
		q.mu.Unlock()
		return
	}
	if q.bytes > 0 && q.bytes+len(b) > q.limit {
		q.cut, q.pending, q.bytes = true, nil, 0
	} else {
		q.pending = append(q.pending, b)
		q.bytes += len(b)
	}
	q.mu.Unlock()
	q.signal()
}

func (q *presenceQueue) signal() {
	if fn := q.notify.Load(); fn != nil {
		(*fn)()
		return
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take appends the waiting events to dst (shared bytes: not to be
// modified) and reports whether q was cut off.
func (q *presenceQueue) take(dst [][]byte) ([][]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.pending...)
	clear(q.pending)
	q.pending, q.bytes = q.pending[:0], 0
	return dst, q.cut
}

// presenceConn is one stream's or socket's part in presence: its place
// in the counts, and its queue of events when it asked for them.
type presenceConn struct {
	ph    *presenceHub
	conn  *presence.Conn
	queue *presenceQueue // nil unless presence=1
}

// presenceMode reads the presence parameter of /events and /ws: "1" asks
// for join and leave events, which needs a tracked topic among topics.
func (s *Server) presenceMode(r *http.Request, topics []string) (bool, *policy.Problem) {
	q := r.URL.Query()
	if !q.Has("presence") {
		return false, nil
	}
	switch v := q.Get("presence"); v {
	case "0":
		return false, nil
	case "1":
	default:
		return false, policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "presence must be 1 or absent, got %q", lograte.Clip(v, 32))
	}
	if s.presence != nil {
		for _, t := range topics {
			if s.presence.tracker.Tracked(t) {
				return true, nil
			}
		}
	}
	return false, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest,
		"presence=1 needs a topic that presence.topics tracks, named (not a pattern); none of this subscription's is")
}

// joinPresence counts a connection of p on the tracked topics among
// topics and, when watch is set, registers it for their events. It
// returns nil when presence is off or no topic is tracked.
func (s *Server) joinPresence(topics []string, p *auth.Principal, watch bool, format presenceFormat) *presenceConn {
	ph := s.presence
	if ph == nil {
		return nil
	}
	var tracked []string
	for _, t := range topics {
		if ph.tracker.Tracked(t) {
			tracked = append(tracked, t)
		}
	}
	if len(tracked) == 0 {
		return nil
	}
	pc := &presenceConn{ph: ph}
	if watch {
		// Listening before counting: the subscriber sees its own join.
		q := &presenceQueue{format: format, claim: p.Presence, topics: tracked, limit: ph.limit, ready: make(chan struct{}, 1)}
		ph.mu.Lock()
		for _, t := range q.topics {
			ls := ph.listeners[t]
			if ls == nil {
				ls = map[*presenceQueue]struct{}{}
				ph.listeners[t] = ls
			}
			ls[q] = struct{}{}
		}
		ph.mu.Unlock()
		pc.queue = q
	}
	pc.conn = ph.tracker.Join(tracked, presenceSubject(p))
	return pc
}

// presenceSubject is how presence lists p: a token's sub. A client
// certificate's name is not listed (presence never reveals certificates),
// nor is an anonymous principal; both are counted.
func presenceSubject(p *auth.Principal) string {
	if p.Source != auth.SourceJWT {
		return ""
	}
	return p.Subject
}

// leave ends c's part in presence. Safe on nil and more than once.
func (c *presenceConn) leave() {
	if c == nil {
		return
	}
	if q := c.queue; q != nil {
		c.ph.mu.Lock()
		for _, t := range q.topics {
			if ls := c.ph.listeners[t]; ls != nil {
				delete(ls, q)
				if len(ls) == 0 {
					delete(c.ph.listeners, t)
				}
			}
		}
		c.ph.mu.Unlock()
	}
	c.conn.Leave()
}

// events returns c's event queue, or nil.
func (c *presenceConn) events() *presenceQueue {
	if c == nil {
		return nil
	}
	return c.queue
}

// deliver queues each event to the listeners of its topic, encoded once
// per framing and per visibility of the subject. It runs on the
// tracker's goroutine and never blocks.
func (ph *presenceHub) deliver(events []presence.Event) {
	ph.mu.RLock()
	defer ph.mu.RUnlock()
	for _, e := range events {
		ls := ph.listeners[e.Topic]
		if len(ls) == 0 {
			continue
		}
		var enc [2][2][]byte // [format][claim]
		for q := range ls {
			claim := 0
			if q.claim {
				claim = 1
			}
			b := enc[q.format][claim]
			if b == nil {
				b = encodePresence(e, q.format, q.claim)
				enc[q.format][claim] = b
			}
			q.push(b)
		}
	}
}

// presenceData is the data of a join or leave event.
type presenceData struct {
	Topic string `json:"topic"`
	Count int    `json:"count"`
	Sub   string `json:"sub,omitempty"`
}

// encodePresence frames e for a listener: an SSE event without id (it is
// not history and does not move the cursor), or a WebSocket message
// without id; the subject only for a holder of the presence claim.
func encodePresence(e presence.Event, format presenceFormat, claim bool) []byte {
	typ := PresenceLeaveEvent
	if e.Join {
		typ = PresenceJoinEvent
	}
	d := presenceData{Topic: e.Topic, Count: e.Count}
	if claim {
		d.Sub = e.Subject
	}
	data, _ := json.Marshal(d) // strings and a number
	if format == presenceWS {
		b, _ := json.Marshal(struct {
			Type  string          `json:"type"`
			Topic string          `json:"topic"`
			Data  json.RawMessage `json:"data"`
		}{typ, e.Topic, data})
		return b
	}
	return appendSSEEvent(nil, typ, data)
}

// appendSSEEvent appends an event with type typ and one line of data,
// without id: data is JSON, which has no newline.
func appendSSEEvent(dst []byte, typ string, data []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, data...)
	return append(dst, '\n', '\n')
}

// presenceFeed is a stream's subscription together with its presence
// events: the feed of sse.Stream.Serve, or the source of a parked stream.
type presenceFeed struct {
	sub    *hub.Subscriber
	q      *presenceQueue
	notify atomic.Pointer[func()]
	ready  chan struct{}
}

func newPresenceFeed(sub *hub.Subscriber, q *presenceQueue) *presenceFeed {
	f := &presenceFeed{sub: sub, q: q, ready: make(chan struct{}, 1)}
	sig := f.signal
	sub.SetNotify(sig) // a leaf: never blocks
	q.notify.Store(&sig)
	f.signal() // for what q got before it signalled f
	return f
}

func (f *presenceFeed) signal() {
	if fn := f.notify.Load(); fn != nil {
		(*fn)()
		return
	}
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// SetNotify implements park.Source: fn replaces Ready.
func (f *presenceFeed) SetNotify(fn func()) { f.notify.Store(&fn) }

// Ready implements sse.Feed.
func (f *presenceFeed) Ready() <-chan struct{} { return f.ready }

// Pull implements sse.Feed and park.Source: the subscription's events,
// then the presence events.
func (f *presenceFeed) Pull(dst [][]byte) ([][]byte, bool) {
	dst, cut := f.sub.Pull(dst)
	dst, qcut := f.q.take(dst)
	return dst, cut || qcut
}

// presenceSource is a parked stream's source with presence events.
type presenceSource struct {
	*streamSource
	feed *presenceFeed
}

// Pull implements park.Source.
func (p presenceSource) Pull(dst [][]byte) ([][]byte, bool) { return p.feed.Pull(dst) }

// SetNotify implements park.Source.
func (p presenceSource) SetNotify(fn func()) { p.feed.SetNotify(fn) }

// presenceAnswer is the body of GET /api/presence.
type presenceAnswer struct {
	Topic string `json:"topic"`
	Count int    `json:"count"`
	// Subjects is only for a principal with the presence claim.
	Subjects []string `json:"subjects,omitzero"`
}

// handlePresence serves GET /api/presence?topic=T: the number of open
// streams and WebSockets on T across the hub's nodes, and their subjects
// for a holder of the presence claim, to whoever may subscribe to T.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query()["topic"]
	if len(raw) != 1 {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "name one topic: ?topic=NAME"))
		return
	}
	if strings.Contains(raw[0], "*") {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "presence counts one topic name, not a pattern"))
		return
	}
	// The identity and permission checks of subscribing to the topic.
	topics, principal, ok := s.authorizeRead(w, r, readPoll)
	if !ok {
		return
	}
	topic := topics[0]
	if s.presence == nil || !s.presence.tracker.Tracked(topic) {
		policy.WriteProblem(w, r, policy.Errorf(http.StatusNotFound, policy.CodePresenceOff, "topic %q is not tracked by presence.topics", topic))
		return
	}
	count, subjects := s.presence.tracker.Count(topic)
	ans := presenceAnswer{Topic: topic, Count: count}
	if principal.Presence {
		ans.Subjects = subjects
	}
	writeJSON(w, http.StatusOK, ans)
}
