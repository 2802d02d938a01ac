package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

// Follow timing: how long a subscription may stay silent before Follow
// pings it, how long it waits for the answer, and the backoff between
// attempts while Redis is unreachable.
const (
	followIdle      = 5 * time.Second
	followPingWait  = 5 * time.Second
	followRetryMin  = 50 * time.Millisecond
	followRetryMax  = 2 * time.Second
	followFillBatch = 1000
)

// Follow subscribes to the store's channel, which every Append publishes
// to (the events themselves, so that following costs no read), and
// delivers each event once, in offset order per topic.
//
// It keeps each topic's last delivered position. An event whose offset is
// not the next one of its topic makes Follow read the missing ones from
// the stream first (XRANGE, by offset); one of another epoch, or missing
// ones that retention removed, make it report a gap. Pub/sub loses what is
// published while a connection is down, so on every (re)subscription
// Follow reads the epoch and last offset of every topic (the topic set) and
// catches up from its positions: topics it knew continue with no gap, a
// topic Redis lost is a gap, and a topic whose last offset went back
// (Redis restored an older state) gets a new epoch (see rollback). The
// first subscription only takes the positions: Follow delivers what is
// committed after it started, and then calls sink.Started.
//
// A topic whose shard cannot be read (a Cluster master down) is reported
// as a gap rather than holding up the others: its subscribers resume from
// the store when it is back. On a Cluster, Follow subscribes through one
// node (pub/sub messages reach every node) and through the next one when
// that fails.
//
// The positions cost memory per topic of the store (about 100 bytes each).
func (s *Store) Follow(ctx context.Context, sink store.FeedSink) error {
	f := &follower{s: s, sink: sink, at: map[string]seen{}}
	backoff := followRetryMin
	first := true
	for attempt := 0; ; attempt++ {
		if err := s.followErr(ctx); err != nil {
			return err
		}
		err := f.session(ctx, first, attempt)
		if errors.Is(err, errSubscribed) {
			first = false
			backoff = followRetryMin
			continue
		}
		if err := s.followErr(ctx); err != nil {
			return err
		}
		// Redis is unreachable: try again, less often.
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.closing:
			t.Stop()
			return store.ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, followRetryMax)
	}
}

// errSubscribed ends a session that had subscribed and caught up before it
// failed: the next one starts without waiting.
var errSubscribed = errors.New("subscription lost")

func (s *Store) followErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return store.ErrClosed
	default:
		return nil
	}
}

type follower struct {
	s    *Store
	sink store.FeedSink
	// at is the last position delivered (or, at the start, committed) of
	// each topic, with that event's commit time.
	at map[string]seen
	ix *followIndex // the indexes' positions; see feedindex.go
}

// seen is a topic's last delivered position and its event's commit time.
type seen struct {
	pos
	us int64
}

// subscribe subscribes to the feed: through the client on a single Redis,
// through the attempt's node on a Cluster.
func (s *Store) subscribe(ctx context.Context, attempt int) *goredis.PubSub {
	if s.cluster == nil {
		return s.c.Subscribe(ctx, s.channel())
	}
	var nodes []*goredis.Client
	ch := make(chan *goredis.Client, 64)
	_ = s.cluster.ForEachShard(ctx, func(_ context.Context, c *goredis.Client) error {
		select {
		case ch <- c:
		default:
		}
		return nil
	})
	close(ch)
	for c := range ch {
		nodes = append(nodes, c)
	}
	if len(nodes) == 0 {
		return s.c.Subscribe(ctx, s.channel())
	}
	// A stable order, so that attempts go round the nodes.
	for i := 1; i < len(nodes); i++ {
		for j := i; j > 0 && nodes[j].Options().Addr < nodes[j-1].Options().Addr; j-- {
			nodes[j], nodes[j-1] = nodes[j-1], nodes[j]
		}
	}
	return nodes[attempt%len(nodes)].Subscribe(ctx, s.channel())
}

// session subscribes, takes or catches up the positions, and delivers
// messages until the subscription fails (errSubscribed) or cannot be made.
func (f *follower) session(ctx context.Context, first bool, attempt int) error {
	s := f.s
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := s.subscribe(ctx, attempt)
	defer ps.Close()
	// Close unblocks a Receive when the session's context ends or the
	// store closes.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Wait for the subscription before reading positions, so that nothing
	// committed after them is missed.
	if _, err := ps.ReceiveTimeout(ctx, followPingWait); err != nil {
		return err
	}
	if err := f.catchUp(ctx, first); err != nil {
		return err
	}
	if first {
		f.sink.Started()
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, followIdle)
		if err != nil {
			if isNetTimeout(err) && !pinged {
				// Silence: is the connection alive?
				if err := ps.Ping(ctx); err != nil {
					return errSubscribed
				}
				pinged = true
				continue
			}
			return errSubscribed
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Message:
			f.message(ctx, m.Payload)
		case *goredis.Subscription:
			// go-redis reconnected and subscribed again: what was
			// published meanwhile was lost.
			if err := f.catchUp(ctx, false); err != nil {
				return errSubscribed
			}
		}
	}
}

// message handles one published message: the events one append script
// stored for a topic, each "<id> <µs> <len topic> <len type> <len
// data>\n" followed by topic, type and data. They are delivered together,
// after whatever a hole before them needed read.
func (f *follower) message(ctx context.Context, payload string) {
	var pending []store.Event
	flush := func() {
		if len(pending) > 0 {
			f.sink.Deliver(pending)
			pending = pending[:0]
		}
	}
	defer flush()
	for payload != "" {
		head, rest, ok := strings.Cut(payload, "\n")
		fields, okHead := splitHead(head)
		if !ok || !okHead {
			return // not ours
		}
		p, ok1 := parsePos(fields[0])
		us, err1 := strconv.ParseInt(fields[1], 10, 64)
		tl, err2 := strconv.Atoi(fields[2])
		yl, err3 := strconv.Atoi(fields[3])
		dl, err4 := strconv.Atoi(fields[4])
		if !ok1 || err1 != nil || err2 != nil || err3 != nil || err4 != nil || tl < 0 || yl < 0 || dl < 0 || tl+yl+dl > len(rest) {
			return
		}
		e := store.Event{ID: fields[0], Topic: rest[:tl], Type: rest[tl : tl+yl], Data: rest[tl+yl : tl+yl+dl], Time: time.UnixMicro(us).UTC()}
		payload = rest[tl+yl+dl:]
		f.indexed(ctx, fields[0], e.Topic, us, flush) // an index's hole first

		at, known := f.at[e.Topic]
		sameEpoch := known && at.epoch == p.epoch
		switch {
		case sameEpoch && p.offset <= at.offset && us <= at.us:
			continue // delivered already (by a catch-up)
		case sameEpoch && p.offset <= at.offset:
			// An offset delivered before, for an event committed after
			// the one delivered last: the topic went back (a replica
			// that lacked the newest events took over) and its offsets
			// are given again.
			flush()
			f.rollback(ctx, e.Topic, p.epoch, p.offset)
			continue
		case sameEpoch && p.offset == at.offset+1:
		default:
			// A hole before e: deliver what came before it, then read the
			// hole from the stream. A topic new to this process (made
			// after the positions were taken), or a new epoch of one, is
			// read from its first event.
			flush()
			from := at
			if !sameEpoch {
				if known {
					f.sink.Gap(e.Topic)
				}
				from = seen{pos: pos{hash: p.hash, epoch: p.epoch}}
			}
			f.fill(ctx, e.Topic, from, p.offset-1)
			if at := f.at[e.Topic]; at.epoch == p.epoch && p.offset <= at.offset {
				continue // the fill read it, or gave the topic up
			}
		}
		pending = append(pending, e)
		f.at[e.Topic] = seen{pos: p, us: us}
	}
}

// splitHead splits a message's head line, the five fields the append
// script joins with single spaces, without the slice per event that
// strings.Fields allocates; ok is false for any other shape.
func splitHead(head string) (f [5]string, ok bool) {
	for i := range 4 {
		var found bool
		if f[i], head, found = strings.Cut(head, " "); !found || f[i] == "" {
			return f, false
		}
	}
	if head == "" || strings.IndexByte(head, ' ') >= 0 {
		return f, false
	}
	f[4] = head
	return f, true
}

// fill delivers topic's events after from up to offset upTo (0: as many as
// there are), reporting a gap when they are not all there. When the topic
// cannot be read, it reports a gap and moves the position to upTo: the
// topic's subscribers resume from the store, which has the events.
func (f *follower) fill(ctx context.Context, topic string, from seen, upTo uint64) {
	for upTo == 0 || from.offset < upTo {
		page, err := f.s.Read(ctx, []string{topic}, cursorOf(from.pos), followFillBatch)
		if errors.Is(err, store.ErrUnknownCursor) {
			// The topic is behind the position: Redis lost it and it
			// started again. Everything of the new epoch is new.
			f.sink.Gap(topic)
			from = seen{pos: pos{hash: from.hash}}
			continue
		}
		if err != nil {
			f.sink.Gap(topic)
			f.at[topic] = seen{pos: pos{hash: from.hash, epoch: from.epoch, offset: max(upTo, from.offset)}, us: from.us}
			return
		}
		if page.Truncated && from.offset > 0 {
			f.sink.Gap(topic)
		}
		var evs []store.Event
		for _, e := range page.Events {
			p, _ := parsePos(e.ID)
			if upTo > 0 && p.epoch == from.epoch && p.offset > upTo {
				break
			}
			evs = append(evs, e)
			from = seen{pos: p, us: e.Time.UnixMicro()}
		}
		if len(evs) > 0 {
			f.sink.Deliver(evs)
			f.at[topic] = from
		} else if page.Truncated && from.offset > 0 {
			// Everything after the position is gone.
			f.at[topic] = seen{pos: pos{hash: from.hash}}
		}
		if !page.More || len(evs) < len(page.Events) {
			return
		}
	}
}

// cursorOf is the cursor of one topic at p ("" before its first event).
func cursorOf(p pos) string {
	if p.offset == 0 || p.epoch == "" {
		return ""
	}
	return p.String()
}

// catchUp reads every topic's epoch and last offset. The first time it
// only takes them as positions; later it delivers what each topic gained
// since its position, reports topics that Redis lost, and starts a new
// epoch for topics that went back. A topic it cannot read is reported as
// a gap; only a failure to read any is an error.
func (f *follower) catchUp(ctx context.Context, first bool) error {
	s := f.s
	f.catchUpIndexes(ctx, first) // in index order, before their topics
	var topics []string
	var cursor uint64
	for {
		keys, next, err := s.c.SScan(ctx, s.topicSet(), cursor, "", trimBatch).Result()
		if err != nil {
			if len(f.at) == 0 {
				return unavailable(err)
			}
			// The set's shard is down: the topics followed so far.
			topics = nil
			break
		}
		topics = append(topics, keys...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	// Topics this process followed that the set does not have: Redis lost
	// them with the set (or the set could not be read).
	inSet := make(map[string]bool, len(topics))
	for _, t := range topics {
		inSet[t] = true
	}
	for t := range f.at {
		if !inSet[t] {
			topics = append(topics, t)
		}
	}
	read := 0
	for i := 0; i < len(topics); i += trimBatch {
		batch := topics[i:min(i+trimBatch, len(topics))]
		cmds := make([]*goredis.SliceCmd, len(batch))
		_, _ = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j, t := range batch {
				cmds[j] = p.HMGet(ctx, s.keys(t).meta, "e", "n", "u")
			}
			return nil
		})
		for j, t := range batch {
			vals, err := cmds[j].Result()
			at, known := f.at[t]
			if err != nil || len(vals) != 3 {
				if known && !first {
					f.sink.Gap(t)
				}
				continue
			}
			read++
			if !first && f.caughtUpByIndex(t) {
				continue
			}
			epoch, last, us := metaHead(vals)
			head := seen{pos: pos{hash: topicHash(t), epoch: epoch, offset: last}, us: us}
			switch {
			case first:
				if epoch != "" {
					f.at[t] = head
				}
			case epoch == "":
				if known && at.offset > 0 {
					f.sink.Gap(t)
				}
				delete(f.at, t)
			case known && at.epoch == epoch && last < at.offset:
				// The topic went back: events this process delivered are
				// gone and their offsets would be reused.
				f.rollback(ctx, t, epoch, last)
			case known && at.epoch == epoch:
				if last > at.offset {
					f.fill(ctx, t, at, last)
				}
			default:
				if known && at.offset > 0 {
					f.sink.Gap(t)
				}
				f.fill(ctx, t, seen{pos: pos{hash: head.hash, epoch: epoch}}, last)
			}
		}
	}
	if read == 0 && len(topics) > 0 {
		return fmt.Errorf("%w: no topic's position could be read", ErrUnavailable)
	}
	return nil
}

// rollback starts a new epoch of topic, whose history went back to offset
// (or gives its offsets again) though this process delivered more of it,
// and reports the gap. Its retained events take the new epoch's IDs, so
// that readers holding IDs of the lost ones get Truncated; they are not
// delivered again (the hub's subscribers resume from the store).
func (f *follower) rollback(ctx context.Context, topic, epoch string, offset uint64) {
	k := f.s.keys(topic)
	f.sink.Gap(topic)
	now, err := epochScript.Run(ctx, f.s.c, []string{k.meta}, epoch, newEpoch()).Text()
	if err != nil {
		// Left as it was: the next catch-up or message tries again.
		return
	}
	// The topic may have gone on since; the next message fills from here.
	f.at[topic] = seen{pos: pos{hash: topicHash(topic), epoch: now, offset: offset}, us: time.Now().UnixMicro()}
}

// String is for test failures.
func (f *follower) String() string { return fmt.Sprint(f.at) }

// metaHead reads a topic's or an index's meta fields e, n and u (HMGET
// in that order): its epoch ("" when it has none), last offset and last
// commit time in µs.
func metaHead(vals []any) (epoch string, last uint64, us int64) {
	epoch, _ = vals[0].(string)
	n, _ := vals[1].(string)
	u, _ := vals[2].(string)
	last, _ = strconv.ParseUint(n, 10, 64)
	us, _ = strconv.ParseInt(u, 10, 64)
	return epoch, last, us
}
