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
// to (the whole event, so that following costs no read), and delivers
// each event once, in offset order per topic.
//
// It keeps each topic's last delivered position. An event whose offset is
// not the next one of its topic makes Follow read the missing ones from
// the stream first (XRANGE, by offset); one of another epoch, or missing
// ones that retention removed, make it call gap. Pub/sub loses what is
// published while a connection is down, so on every (re)subscription
// Follow reads the epoch and last offset of every topic (the topic set) and
// catches up from its positions: topics it knew continue with no gap, and
// a topic Redis lost is a gap. The first subscription only takes the
// positions: Follow delivers what is committed after it started.
//
// Follow calls sink.Started once, after the first subscription and
// positions.
//
// The positions cost memory per topic of the store (about 100 bytes each).
func (s *Store) Follow(ctx context.Context, sink store.FeedSink) error {
	f := &follower{s: s, sink: sink, at: map[string]pos{}}
	backoff := followRetryMin
	first := true
	for {
		if err := s.followErr(ctx); err != nil {
			return err
		}
		err := f.session(ctx, first)
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
	// each topic.
	at map[string]pos
}

// session subscribes, takes or catches up the positions, and delivers
// messages until the subscription fails (errSubscribed) or cannot be made.
func (f *follower) session(ctx context.Context, first bool) error {
	s := f.s
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := s.c.Subscribe(ctx, s.channel())
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
			if err := f.message(ctx, m.Payload); err != nil {
				return errSubscribed
			}
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
func (f *follower) message(ctx context.Context, payload string) error {
	var pending []store.Event
	for payload != "" {
		head, rest, ok := strings.Cut(payload, "\n")
		fields := strings.Fields(head)
		if !ok || len(fields) != 5 {
			break // not ours
		}
		p, ok1 := parsePos(fields[0])
		us, err1 := strconv.ParseInt(fields[1], 10, 64)
		tl, err2 := strconv.Atoi(fields[2])
		yl, err3 := strconv.Atoi(fields[3])
		dl, err4 := strconv.Atoi(fields[4])
		if !ok1 || err1 != nil || err2 != nil || err3 != nil || err4 != nil || tl < 0 || yl < 0 || dl < 0 || tl+yl+dl > len(rest) {
			break
		}
		e := store.Event{ID: fields[0], Topic: rest[:tl], Type: rest[tl : tl+yl], Data: rest[tl+yl : tl+yl+dl], Time: time.UnixMicro(us).UTC()}
		payload = rest[tl+yl+dl:]

		at, known := f.at[e.Topic]
		if known && at.epoch == p.epoch && p.offset <= at.offset {
			continue // delivered already (by a catch-up)
		}
		if !known || at.epoch != p.epoch || p.offset != at.offset+1 {
			// A hole before e: deliver what came before it, then read the
			// hole from the stream.
			if len(pending) > 0 {
				f.sink.Deliver(pending)
				pending = pending[:0]
			}
			if known && at.epoch == p.epoch {
				if err := f.fill(ctx, e.Topic, at, p.offset-1); err != nil {
					return err
				}
			} else {
				// A topic new to this process (made after the positions
				// were taken), or a new epoch of one: its events from the
				// first.
				if known {
					f.sink.Gap(e.Topic)
				}
				if err := f.fill(ctx, e.Topic, pos{hash: p.hash, epoch: p.epoch}, p.offset-1); err != nil {
					return err
				}
			}
			if at := f.at[e.Topic]; at.epoch == p.epoch && p.offset <= at.offset {
				continue // the fill read it
			}
		}
		pending = append(pending, e)
		f.at[e.Topic] = p
	}
	if len(pending) > 0 {
		f.sink.Deliver(pending)
	}
	return nil
}

// fill delivers topic's events after from up to offset upTo (0: as many as
// there are), reporting a gap when they are not all there.
func (f *follower) fill(ctx context.Context, topic string, from pos, upTo uint64) error {
	for upTo == 0 || from.offset < upTo {
		page, err := f.s.Read(ctx, []string{topic}, cursorOf(from), followFillBatch)
		if errors.Is(err, store.ErrUnknownCursor) {
			// The topic is behind the position: Redis lost it and it
			// started again. Everything of the new epoch is new.
			f.sink.Gap(topic)
			from = pos{hash: from.hash}
			continue
		}
		if err != nil {
			return err
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
			from = p
		}
		if len(evs) > 0 {
			f.sink.Deliver(evs)
			f.at[topic] = from
		} else if page.Truncated && len(page.Events) == 0 && from.offset > 0 {
			// Everything after the position is gone.
			f.at[topic] = pos{hash: from.hash}
		}
		if !page.More || len(evs) < len(page.Events) {
			return nil
		}
	}
	return nil
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
// since its position, and reports topics that Redis lost.
func (f *follower) catchUp(ctx context.Context, first bool) error {
	s := f.s
	var topics []string
	var cursor uint64
	for {
		keys, next, err := s.c.SScan(ctx, s.topicSet(), cursor, "", trimBatch).Result()
		if err != nil {
			return unavailable(err)
		}
		topics = append(topics, keys...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	// Topics this process followed that the set no longer has: Redis lost
	// them with the set.
	inSet := make(map[string]bool, len(topics))
	for _, t := range topics {
		inSet[t] = true
	}
	for t := range f.at {
		if !inSet[t] {
			topics = append(topics, t)
		}
	}
	for i := 0; i < len(topics); i += trimBatch {
		batch := topics[i:min(i+trimBatch, len(topics))]
		cmds := make([]*goredis.SliceCmd, len(batch))
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j, t := range batch {
				cmds[j] = p.HMGet(ctx, s.keys(t).meta, "e", "n")
			}
			return nil
		})
		if err != nil {
			return unavailable(err)
		}
		for j, t := range batch {
			vals := cmds[j].Val()
			epoch, _ := vals[0].(string)
			n, _ := vals[1].(string)
			last, _ := strconv.ParseUint(n, 10, 64)
			head := pos{hash: topicHash(t), epoch: epoch, offset: last}
			at, known := f.at[t]
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
				if err := f.rollback(ctx, t, head); err != nil {
					return err
				}
			case known && at.epoch == epoch:
				if last > at.offset {
					if err := f.fill(ctx, t, at, last); err != nil {
						return err
					}
				}
			default:
				if known && at.offset > 0 {
					f.sink.Gap(t)
				}
				if err := f.fill(ctx, t, pos{hash: head.hash, epoch: epoch}, last); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// rollback starts a new epoch of topic, which is at head though this
// process delivered more of it, and reports the gap. Its retained events
// take the new epoch's IDs, so that readers holding IDs of the lost ones
// get Truncated; they are not delivered again (the hub's subscribers
// resume from the store).
func (f *follower) rollback(ctx context.Context, topic string, head pos) error {
	k := f.s.keys(topic)
	epoch, err := epochScript.Run(ctx, f.s.c, []string{k.meta}, head.epoch, newEpoch()).Text()
	if err != nil {
		return unavailable(err)
	}
	f.sink.Gap(topic)
	f.at[topic] = pos{hash: head.hash, epoch: epoch, offset: head.offset}
	return nil
}

// String is for test failures.
func (f *follower) String() string { return fmt.Sprint(f.at) }
