package presence

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/lograte"
)

// Sharing the counts over Redis. Every key has the hash tag {presence},
// so that on a Cluster they share one slot and one script reaches them
// all:
//
//	<prefix>:{presence}:node:<node>  hash: "<topic>\x00<subject>" → count
//	                                 of this node's connections, and _seq,
//	                                 the sequence number of its last change;
//	                                 expires TTL after the last heartbeat
//	<prefix>:{presence}:nodes        set of the nodes with a hash
//	<prefix>:{presence}              pub/sub channel of the changes
//
// A flush runs one script (one round trip): it writes the changed
// entries, the new _seq and the expiry, and publishes the same changes
// with that seq, atomically, so that a node that reads the hash (a
// snapshot) sees it before or after a change, never half of it. Every
// node applies the changes of the others in seq order: a message with a
// seq past the next one (pub/sub lost some while a connection was down)
// makes it read the sender's hash again and apply what came after it.
//
// A heartbeat every TTL/3 (one script) refreshes this node's expiry,
// removes from the set the nodes whose hash expired, and returns the
// others with their _seq: the tracker drops the nodes gone (emitting
// their leaves), reads the new ones, and reads again a node whose _seq
// stayed ahead of what it applied for a whole heartbeat (a lost message
// with nothing after it). A node whose own hash expired (it could not
// reach Redis for TTL) writes its whole state again.
//
// Redis 7.0 has no expiry per hash field, hence a hash per node, which
// expires whole.

// message is one change of a node, as published.
type message struct {
	Node string `json:"n"`
	Seq  uint64 `json:"q"`
	// Full replaces the node's whole state with C.
	Full bool `json:"f,omitempty"`
	// Bye says that the node left: its entries are gone.
	Bye bool    `json:"b,omitempty"`
	C   []entry `json:"c,omitempty"`
}

// entry is one (topic, subject) count in a message.
type entry struct {
	T string `json:"t"`
	S string `json:"s,omitempty"`
	N int    `json:"n"`
}

// seqField is the hash field of a node's last seq; entry fields always
// hold a NUL, so they never collide with it.
const seqField = "_seq"

// maxPending bounds the changes of a node kept while its snapshot is read.
const maxPending = 1024

var flushScript = goredis.NewScript(`
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
for i = 7, #ARGV, 2 do
  if ARGV[i+1] == '0' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
end
redis.call('HSET', KEYS[1], '_seq', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`)

var heartbeatScript = goredis.NewScript(`
local out = {redis.call('PEXPIRE', KEYS[1], ARGV[1])}
redis.call('SADD', KEYS[2], ARGV[2])
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if n ~= ARGV[2] then
    local s = redis.call('HGET', ARGV[3] .. n, '_seq')
    if s then
      table.insert(out, n)
      table.insert(out, s)
    else
      redis.call('SREM', KEYS[2], n)
    end
  end
end
return out
`)

var byeScript = goredis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`)

// redisShare is the Redis side of a Tracker.
type redisShare struct {
	t          *Tracker
	c          goredis.UniversalClient
	nodePrefix string // <prefix>:{presence}:node:
	hash       string // this node's hash
	nodesKey   string
	channel    string
	seq        uint64 // the last seq flushed; only the flush loop uses it
	load       chan string
	logs       lograte.Limiter
	// timeout bounds one round trip.
	timeout time.Duration
}

func newRedisShare(t *Tracker) *redisShare {
	base := t.opts.Prefix + ":{presence}"
	return &redisShare{
		t:          t,
		c:          t.opts.Redis,
		nodePrefix: base + ":node:",
		hash:       base + ":node:" + t.opts.Node,
		nodesKey:   base + ":nodes",
		channel:    base,
		load:       make(chan string, 64),
		timeout:    max(t.opts.TTL/3, time.Second),
	}
}

func (r *redisShare) run(ctx context.Context) error {
	t := r.t
	// Subscribed before the first snapshot is read: no change published
	// after it is missed.
	ps := r.c.Subscribe(ctx, r.channel)
	defer ps.Close()
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	if _, err := ps.Receive(rctx); err != nil && ctx.Err() == nil {
		r.warn("presence: subscribing failed; retrying in the background", err)
	}
	cancel()
	msgs := ps.Channel(goredis.WithChannelSize(4096))
	// The other nodes' state first, so that the first transitions this
	// node computes count theirs; changes published meanwhile wait in
	// msgs.
	r.heartbeat(ctx)
	t.redirty(nil, true) // the first flush writes this node's (empty) state

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); t.flushLoop(ctx, r.flush) }()
	go func() { defer wg.Done(); r.receive(ctx, msgs) }()
	go func() { defer wg.Done(); r.heartbeats(ctx) }()
	wg.Wait()
	r.bye()
	return nil
}

func (r *redisShare) warn(msg string, err error) {
	if n, ok := r.logs.Allow(msg, time.Now()); ok {
		r.t.log.Warn(msg, "err", err, "suppressed", n)
	}
}

func (r *redisShare) observe(start time.Time, err error) {
	if o := r.t.opts.Observer; o != nil {
		o.Flushed(time.Since(start), err)
	}
}

// field is the hash field of k.
func field(k key) string { return k.topic + "\x00" + k.subject }

// flush writes and publishes changes in one script run, then applies
// them to the view; on failure they are flushed again later.
func (r *redisShare) flush(changes []change, full bool) {
	sortChanges(changes)
	r.seq++
	msg := message{Node: r.t.opts.Node, Seq: r.seq, Full: full, C: make([]entry, len(changes))}
	args := make([]any, 0, 6+2*len(changes))
	for i, c := range changes {
		msg.C[i] = entry{T: c.topic, S: c.subject, N: c.n}
	}
	body, _ := json.Marshal(msg) // plain strings and numbers
	fullArg := "0"
	if full {
		fullArg = "1"
	}
	args = append(args, r.t.opts.TTL.Milliseconds(), r.seq, fullArg, r.t.opts.Node, r.channel, body)
	for _, c := range changes {
		if full && c.n == 0 {
			continue
		}
		args = append(args, field(c.key), c.n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	start := time.Now()
	err := flushScript.Run(ctx, r.c, []string{r.hash, r.nodesKey}, args...).Err()
	cancel()
	r.observe(start, err)
	if err != nil {
		r.warn("presence: flushing to Redis failed; the other nodes see this node's counts once it succeeds", err)
		// A failed run may have left Redis with or without the change:
		// the whole state goes again, with a new seq.
		r.t.redirty(changes, true)
	}
	r.t.applyOwn(changes, full)
}

// receive applies the other nodes' changes until ctx ends.
func (r *redisShare) receive(ctx context.Context, msgs <-chan *goredis.Message) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			var msg message
			if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil || msg.Node == "" {
				r.warn("presence: a message on the channel is not one of a node", err)
				continue
			}
			if msg.Node != r.t.opts.Node {
				r.onMessage(msg)
			}
		}
	}
}

func (r *redisShare) onMessage(msg message) {
	t := r.t
	var reload bool
	t.apply(func(emit *[]Event) {
		if msg.Bye {
			t.dropLocked(msg.Node, emit)
			return
		}
		nv := t.node(msg.Node)
		switch {
		case !nv.loaded:
			if len(nv.pending) < maxPending {
				nv.pending = append(nv.pending, msg)
			}
			reload = true
		case msg.Seq <= nv.seq:
		case msg.Seq > nv.seq+1: // changes were lost
			nv.loaded = false
			nv.pending = append(nv.pending[:0], msg)
			reload = true
		default:
			applyMessageLocked(t, nv, msg, emit)
		}
	})
	if reload {
		select {
		case r.load <- msg.Node:
		default: // the next heartbeat loads it
		}
	}
}

func applyMessageLocked(t *Tracker, nv *nodeView, msg message, emit *[]Event) {
	changes := make([]change, len(msg.C))
	for i, e := range msg.C {
		changes[i] = change{key{e.T, e.S}, e.N}
	}
	if msg.Full {
		t.replaceLocked(nv, changes, emit)
	} else {
		for _, c := range changes {
			t.setLocked(nv, c, emit)
		}
	}
	nv.seq = msg.Seq
}

// heartbeats beats every TTL/3 and loads the nodes asked for, until ctx
// ends.
func (r *redisShare) heartbeats(ctx context.Context) {
	tick := time.NewTicker(r.t.opts.TTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.heartbeat(ctx)
		case node := <-r.load:
			r.loadNode(ctx, node)
		}
	}
}

// heartbeat refreshes this node's expiry and checks the others.
func (r *redisShare) heartbeat(ctx context.Context) {
	t := r.t
	hctx, cancel := context.WithTimeout(ctx, r.timeout)
	start := time.Now()
	res, err := heartbeatScript.Run(hctx, r.c, []string{r.hash, r.nodesKey}, t.opts.TTL.Milliseconds(), t.opts.Node, r.nodePrefix).Slice()
	cancel()
	r.observe(start, err)
	if err != nil || len(res) == 0 {
		if ctx.Err() == nil {
			r.warn("presence: heartbeat to Redis failed; this node's counts expire on the other nodes after presence.ttl", err)
		}
		return
	}
	if alive, _ := res[0].(int64); alive == 0 {
		// The hash expired (Redis was out of reach for TTL) or was never
		// written: write it whole.
		t.redirty(nil, true)
	}
	others := map[string]uint64{}
	for i := 1; i+1 < len(res); i += 2 {
		name, _ := res[i].(string)
		s, _ := res[i+1].(string)
		seq, _ := strconv.ParseUint(s, 10, 64)
		others[name] = seq
	}
	var toLoad []string
	t.apply(func(emit *[]Event) {
		for name := range t.nodes {
			if _, ok := others[name]; !ok && name != t.opts.Node {
				t.dropLocked(name, emit) // its hash expired: it died
			}
		}
		for name, seq := range others {
			nv := t.nodes[name]
			switch {
			case nv == nil || !nv.loaded:
				toLoad = append(toLoad, name)
			case seq > nv.seq && nv.suspect != 0 && nv.seq < nv.suspect:
				toLoad = append(toLoad, name) // behind for a whole heartbeat
			case seq > nv.seq:
				nv.suspect = seq
			default:
				nv.suspect = 0
			}
		}
	})
	slices.Sort(toLoad)
	for _, name := range toLoad {
		r.loadNode(ctx, name)
	}
}

// loadNode reads a node's hash and makes it the node's state in the view,
// then applies the changes that came after it.
func (r *redisShare) loadNode(ctx context.Context, name string) {
	t := r.t
	lctx, cancel := context.WithTimeout(ctx, r.timeout)
	start := time.Now()
	h, err := r.c.HGetAll(lctx, r.nodePrefix+name).Result()
	cancel()
	r.observe(start, err)
	if err != nil {
		if ctx.Err() == nil {
			r.warn("presence: reading a node's counts from Redis failed", err)
		}
		return
	}
	var reload bool
	t.apply(func(emit *[]Event) {
		if len(h) == 0 {
			t.dropLocked(name, emit) // expired or left
			return
		}
		seq, _ := strconv.ParseUint(h[seqField], 10, 64)
		entries := make([]change, 0, len(h))
		for f, v := range h {
			topic, subject, ok := strings.Cut(f, "\x00")
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n <= 0 {
				continue
			}
			entries = append(entries, change{key{topic, subject}, n})
		}
		sortChanges(entries)
		nv := t.node(name)
		t.replaceLocked(nv, entries, emit)
		nv.seq, nv.loaded, nv.suspect = seq, true, 0
		pending := nv.pending
		nv.pending = nil
		slices.SortFunc(pending, func(a, b message) int {
			switch {
			case a.Seq < b.Seq:
				return -1
			case a.Seq > b.Seq:
				return 1
			}
			return 0
		})
		for i, m := range pending {
			switch {
			case m.Seq <= nv.seq:
			case m.Seq == nv.seq+1:
				applyMessageLocked(t, nv, m, emit)
			default: // a gap after the snapshot: read it again
				nv.loaded = false
				nv.pending = append(nv.pending, pending[i:]...)
				reload = true
				return
			}
		}
	})
	if reload {
		select {
		case r.load <- name:
		default:
		}
	}
}

// bye removes this node's entries from Redis and tells the others, which
// emit the leaves at once.
func (r *redisShare) bye() {
	body, _ := json.Marshal(message{Node: r.t.opts.Node, Bye: true})
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := time.Now()
	err := byeScript.Run(ctx, r.c, []string{r.hash, r.nodesKey}, r.t.opts.Node, r.channel, body).Err()
	r.observe(start, err)
	if err != nil && !errors.Is(err, goredis.ErrClosed) {
		r.warn("presence: leaving Redis failed; this node's counts expire after presence.ttl", err)
	}
}
