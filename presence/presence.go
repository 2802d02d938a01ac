// Package presence counts who is subscribed to the topics that
// presence.topics tracks, on one hub node or across the nodes of a
// cluster, and reports when a subject joins or leaves a topic.
//
// Each node counts its own open streams and WebSockets per topic and per
// subject (Tracker.Join, Conn.Leave): a map update under one lock, never
// a round trip. Changes are batched: every Options.FlushInterval at most,
// the topics and subjects that changed since the last flush are applied
// to the node's view of the cluster, and on Redis also written and shared
// in one pipelined round trip, whatever the number of subscribers (see
// redis.go for the keys and the protocol). Every node derives the same
// join and leave transitions (0 -> 1 and 1 -> 0 of a subject's count
// summed over the nodes) from the same changes, and hands them to
// Options.OnEvents for its own listeners; no node sends events to
// another's subscribers.
//
// A node that dies stops counting when its entries expire in Redis
// (Options.TTL after its last heartbeat), and the nodes that see them
// gone emit the leaves; a node that stops gracefully removes its entries
// at once (Tracker.Run).
//
// Package presence does not speak HTTP, authenticate, or decide who may
// see subjects (package server does).
package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

// Defaults of Options.
const (
	DefaultTTL           = 15 * time.Second
	DefaultFlushInterval = 250 * time.Millisecond
	DefaultPrefix        = "sseguard"
)

// Observer receives the tracker's counts for metrics. Its methods must
// not block.
type Observer interface {
	// Updated counts n joins and leaves of connections on this node.
	Updated(n int)
	// Flushed reports one flush (or heartbeat) round trip to Redis.
	Flushed(d time.Duration, err error)
	// Emitted counts one join (or leave) event handed to OnEvents.
	Emitted(join bool)
}

// Options configure a Tracker. Zero values mean the documented defaults.
type Options struct {
	// Topics are the topic names and patterns (store.Match) whose
	// subscribers are counted. Reserved topics (store.ReservedPrefix) are
	// never counted, whatever the patterns.
	Topics []string
	// TTL is how long the entries of a node that stopped without leaving
	// (it died, or lost Redis) keep counting. Heartbeats refresh them
	// every TTL/3. Default DefaultTTL.
	TTL time.Duration
	// FlushInterval is the longest a change waits before it counts in
	// the view (and, on Redis, on the other nodes). Default
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Redis, when set, shares the counts between the nodes that use the
	// same Redis and Prefix. Nil: this node alone.
	Redis goredis.UniversalClient
	// Prefix starts the Redis keys and channel. Default DefaultPrefix.
	Prefix string
	// Node names this node in Redis. Default: random.
	Node string
	// OnEvents receives the join and leave events of each applied change,
	// in order, from one goroutine at a time. It must not block and must
	// not call back into the Tracker.
	OnEvents func([]Event)
	// Observer, when set, receives counts for metrics.
	Observer Observer
	// Logger receives Redis failures (one line a minute at most). Nil:
	// slog.Default().
	Logger *slog.Logger
}

// Event is a subject joining or leaving a topic, cluster-wide.
type Event struct {
	Topic string
	// Join is true for a join, false for a leave.
	Join bool
	// Subject is the principal's sub; empty for an anonymous connection
	// (or a token without sub), whose every change is announced.
	Subject string
	// Count is the topic's connection count after the change.
	Count int
}

// key is one counted (topic, subject) pair; subject "" counts the
// connections that have none.
type key struct{ topic, subject string }

// Tracker counts connections per topic and subject. Create it with New;
// Run flushes and, on Redis, shares the counts.
type Tracker struct {
	opts Options
	log  *slog.Logger

	// mu guards the local counts, which Join and Leave update.
	mu    sync.Mutex
	local map[key]int
	dirty map[key]struct{}
	// full makes the next flush rewrite the whole state: Redis lost this
	// node's entries.
	full bool
	wake chan struct{} // capacity 1: something is dirty

	// emitMu serializes applying changes to the view and handing their
	// events to OnEvents, so that events leave in the order of the view.
	// It is taken before vmu.
	emitMu sync.Mutex
	// vmu guards the view: every node's applied entries and their sums.
	vmu    sync.RWMutex
	topics map[string]*topicView
	nodes  map[string]*nodeView

	rd *redisShare // nil on one node
}

// topicView is a topic's counts summed over the nodes.
type topicView struct {
	subjects map[string]int // named subjects only
	total    int
}

// nodeView is what the view holds of one node.
type nodeView struct {
	entries map[key]int
	// seq is the sequence number of the last change applied (Redis);
	// loaded is false until a snapshot of the node was read, and again
	// after a gap in its changes.
	seq     uint64
	loaded  bool
	pending []message // changes that came before the snapshot
	// suspect is a seq that Redis had when the view was behind it, for
	// the heartbeat's check that changes were not lost.
	suspect uint64
}

// New returns a tracker for opts. It starts nothing: Run does.
func New(opts Options) *Tracker {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Node == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Node = hex.EncodeToString(b[:])
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &Tracker{
		opts:   opts,
		log:    log,
		local:  map[key]int{},
		dirty:  map[key]struct{}{},
		wake:   make(chan struct{}, 1),
		topics: map[string]*topicView{},
		nodes:  map[string]*nodeView{},
	}
	if opts.Redis != nil {
		t.rd = newRedisShare(t)
	}
	return t
}

// Node returns the name of this node in Redis.
func (t *Tracker) Node() string { return t.opts.Node }

// Tracked reports whether topic's subscribers are counted: it is a name
// (not a pattern), not reserved, and matched by Options.Topics.
func (t *Tracker) Tracked(topic string) bool {
	if t == nil || store.IsPattern(topic) || strings.HasPrefix(topic, store.ReservedPrefix) {
		return false
	}
	for _, p := range t.opts.Topics {
		if store.Match(p, topic) {
			return true
		}
	}
	return false
}

// Conn is one connection's place in the counts; Leave removes it.
type Conn struct {
	t       *Tracker
	topics  []string
	subject string
	once    sync.Once
}

// Join counts a connection of subject ("" for one without) on each
// tracked topic of topics, and returns it, or nil when none is tracked.
// It costs a map update per tracked topic, never a round trip.
func (t *Tracker) Join(topics []string, subject string) *Conn {
	if t == nil {
		return nil
	}
	var tracked []string
	for _, topic := range topics {
		if t.Tracked(topic) && !slices.Contains(tracked, topic) {
			tracked = append(tracked, topic)
		}
	}
	if len(tracked) == 0 {
		return nil
	}
	t.add(tracked, subject, 1)
	return &Conn{t: t, topics: tracked, subject: subject}
}

// Leave uncounts c. It is safe to call more than once, and on nil.
func (c *Conn) Leave() {
	if c == nil {
		return
	}
	c.once.Do(func() { c.t.add(c.topics, c.subject, -1) })
}

// Topics returns the tracked topics c counts on.
func (c *Conn) Topics() []string {
	if c == nil {
		return nil
	}
	return c.topics
}

func (t *Tracker) add(topics []string, subject string, d int) {
	t.mu.Lock()
	for _, topic := range topics {
		k := key{topic, subject}
		if n := t.local[k] + d; n > 0 {
			t.local[k] = n
		} else {
			delete(t.local, k)
		}
		t.dirty[k] = struct{}{}
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	if o := t.opts.Observer; o != nil {
		o.Updated(len(topics))
	}
}

// Count returns topic's connection count across the nodes, and its
// named subjects, sorted, as the view holds them (at most one flush
// interval behind this node's own connections).
func (t *Tracker) Count(topic string) (int, []string) {
	t.vmu.RLock()
	defer t.vmu.RUnlock()
	tv := t.topics[topic]
	if tv == nil {
		return 0, []string{}
	}
	subjects := make([]string, 0, len(tv.subjects))
	for s := range tv.subjects {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	return tv.total, subjects
}

// change is one entry's new count on a node.
type change struct {
	key
	n int
}

// takeDirty returns the changed entries with their counts now, and
// whether the whole state is to be rewritten (then it returns every
// entry, and the keys that were dirty with count 0 are dropped).
func (t *Tracker) takeDirty() ([]change, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	full := t.full
	t.full = false
	var out []change
	if full {
		out = make([]change, 0, len(t.local))
		for k, n := range t.local {
			out = append(out, change{k, n})
		}
	} else {
		out = make([]change, 0, len(t.dirty))
		for k := range t.dirty {
			out = append(out, change{k, t.local[k]})
		}
	}
	clear(t.dirty)
	sortChanges(out) // events in a stable order
	return out, full
}

// redirty marks changes to be flushed again after a failed write.
func (t *Tracker) redirty(changes []change, full bool) {
	t.mu.Lock()
	for _, c := range changes {
		t.dirty[c.key] = struct{}{}
	}
	t.full = t.full || full
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run flushes the changes until ctx ends and, on Redis, shares them with
// the other nodes, follows theirs and checks that they are alive. When
// ctx ends it removes this node's entries from Redis (the other nodes
// then emit the leaves at once) and returns nil; a node that dies
// without getting there is removed by the others after Options.TTL.
func (t *Tracker) Run(ctx context.Context) error {
	if t.rd != nil {
		return t.rd.run(ctx)
	}
	t.flushLoop(ctx, func(changes []change, full bool) { t.applyOwn(changes, full) })
	return nil
}

// flushLoop calls flush with the dirty changes at most once a flush
// interval, and only when some are dirty, until ctx ends.
func (t *Tracker) flushLoop(ctx context.Context, flush func([]change, bool)) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		}
		if wait := t.opts.FlushInterval - time.Since(last); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		last = time.Now()
		changes, full := t.takeDirty()
		if len(changes) > 0 || full {
			flush(changes, full)
		}
	}
}

// applyOwn applies this node's flushed changes to the view.
func (t *Tracker) applyOwn(changes []change, full bool) {
	t.apply(func(emit *[]Event) {
		nv := t.node(t.opts.Node)
		nv.loaded = true
		if full {
			t.replaceLocked(nv, changes, emit)
			return
		}
		for _, c := range changes {
			t.setLocked(nv, c, emit)
		}
	})
}

// apply runs f on the view under its lock and hands the events f
// collected to OnEvents, in order with every other apply's.
func (t *Tracker) apply(f func(emit *[]Event)) {
	t.emitMu.Lock()
	defer t.emitMu.Unlock()
	var events []Event
	t.vmu.Lock()
	f(&events)
	t.vmu.Unlock()
	if len(events) == 0 {
		return
	}
	if o := t.opts.Observer; o != nil {
		for _, e := range events {
			o.Emitted(e.Join)
		}
	}
	if t.opts.OnEvents != nil {
		t.opts.OnEvents(events)
	}
}

// node returns the view of node, adding it; vmu is held.
func (t *Tracker) node(name string) *nodeView {
	nv := t.nodes[name]
	if nv == nil {
		nv = &nodeView{entries: map[key]int{}}
		t.nodes[name] = nv
	}
	return nv
}

// setLocked sets one entry of a node and appends the transitions it
// causes; vmu is held.
func (t *Tracker) setLocked(nv *nodeView, c change, emit *[]Event) {
	old := nv.entries[c.key]
	if c.n < 0 {
		c.n = 0
	}
	if old == c.n {
		return
	}
	if c.n == 0 {
		delete(nv.entries, c.key)
	} else {
		nv.entries[c.key] = c.n
	}
	tv := t.topics[c.topic]
	if tv == nil {
		tv = &topicView{subjects: map[string]int{}}
		t.topics[c.topic] = tv
	}
	tv.total += c.n - old
	if c.subject == "" {
		// Connections without a subject cannot be told apart: each
		// change of their number is announced.
		*emit = append(*emit, Event{Topic: c.topic, Join: c.n > old, Count: tv.total})
	} else {
		before := tv.subjects[c.subject]
		after := before + c.n - old
		if after > 0 {
			tv.subjects[c.subject] = after
		} else {
			delete(tv.subjects, c.subject)
		}
		switch {
		case before == 0 && after > 0:
			*emit = append(*emit, Event{Topic: c.topic, Join: true, Subject: c.subject, Count: tv.total})
		case before > 0 && after == 0:
			*emit = append(*emit, Event{Topic: c.topic, Subject: c.subject, Count: tv.total})
		}
	}
	if tv.total <= 0 && len(tv.subjects) == 0 {
		delete(t.topics, c.topic)
	}
}

// replaceLocked makes entries the whole state of a node; vmu is held.
func (t *Tracker) replaceLocked(nv *nodeView, entries []change, emit *[]Event) {
	keep := make(map[key]bool, len(entries))
	for _, c := range entries {
		keep[c.key] = true
	}
	var gone []change
	for k := range nv.entries {
		if !keep[k] {
			gone = append(gone, change{k, 0})
		}
	}
	sortChanges(gone)
	for _, c := range gone {
		t.setLocked(nv, c, emit)
	}
	for _, c := range entries {
		t.setLocked(nv, c, emit)
	}
}

// dropLocked removes a node and its entries, emitting the leaves; vmu is
// held.
func (t *Tracker) dropLocked(name string, emit *[]Event) {
	nv := t.nodes[name]
	if nv == nil {
		return
	}
	t.replaceLocked(nv, nil, emit)
	delete(t.nodes, name)
}

// sortChanges orders changes by topic and subject, so that the events of
// a snapshot or a node's expiry come out in a stable order.
func sortChanges(cs []change) {
	slices.SortFunc(cs, func(a, b change) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		switch {
		case a.subject < b.subject:
			return -1
		case a.subject > b.subject:
			return 1
		}
		return 0
	})
}

// Nodes returns the names of the nodes whose entries the view holds,
// this one included once it has flushed, sorted.
func (t *Tracker) Nodes() []string {
	t.vmu.RLock()
	defer t.vmu.RUnlock()
	out := make([]string, 0, len(t.nodes))
	for n := range t.nodes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
