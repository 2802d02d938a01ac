package redis

import (
	"context"
	"errors"

	"github.com/sseguard/sseguard/store"
)

// Follow and the indexes. A pattern subscriber's cursor is a position in
// an index, so the feed must hand over each index's events in index
// order, with no hole: a subscriber given offset 7 and then 6 would skip
// 6 on resume. Messages come in that order (one shard runs an index's
// scripts one at a time and publishes from each), so Follow tracks each
// index's last delivered position beside each topic's, and fills a hole
// in an index from the index stream, in order, before the event after it.
// A topic's own hole check then finds its events delivered. After a new
// subscription the indexes catch up first, and their topics are not
// caught up one by one (which would deliver them out of index order):
// what came after the index's catch-up arrives as messages.
//
// A hole an index cannot fill (retention passed it, Redis lost the index)
// is reported as a Gap of the pattern "<prefix>*", which cuts loose the
// subscribers of every pattern that overlaps it.

// followIndex is a follower's state of the indexes.
type followIndex struct {
	at map[string]seen // by prefix: the last delivered index position (hash unused)
	ok map[string]bool // prefixes whose index the last catch-up read
}

func (f *follower) indexes() *followIndex {
	if f.ix == nil {
		f.ix = &followIndex{at: map[string]seen{}, ok: map[string]bool{}}
	}
	return f.ix
}

// indexed handles the index position of a message's event (id, of topic,
// committed at µs us), before its topic's checks: it fills a hole in the
// index before it, or starts a new epoch of an index that went back.
// flush hands over the events of the message taken so far.
func (f *follower) indexed(ctx context.Context, id, topic string, us int64, flush func()) {
	_, xp, ok := parseID(id)
	if !ok || xp.epoch == "" {
		return
	}
	ix, ok := f.s.indexOf(topic)
	if !ok {
		return
	}
	fi := f.indexes()
	at, known := fi.at[ix]
	same := known && at.epoch == xp.epoch
	switch {
	case same && xp.offset <= at.offset && us <= at.us:
		return // delivered already (by a catch-up); the topic's check agrees
	case same && xp.offset <= at.offset:
		// The index went back (a replica that lacked the newest events
		// took over): its offsets are given again.
		flush()
		f.rollbackIndex(ctx, ix, xp.epoch, xp.offset)
		return
	case same && xp.offset == at.offset+1:
	default:
		flush()
		from := at
		if !same {
			if known && at.offset > 0 {
				f.sink.Gap(ix + "*")
			}
			from = seen{pos: pos{epoch: xp.epoch}}
		}
		f.fillIndex(ctx, ix, from, xp.offset-1)
	}
	fi.at[ix] = seen{pos: pos{epoch: xp.epoch, offset: xp.offset}, us: us}
}

// fillIndex delivers the events of index ix after from up to offset upTo
// (0: as many as there are), in index order, skipping those their topic's
// position says were delivered, and reporting a gap when they are not all
// there. It reports whether it delivered them all, without a gap.
func (f *follower) fillIndex(ctx context.Context, ix string, from seen, upTo uint64) (whole bool) {
	fi := f.indexes()
	whole = true
	for upTo == 0 || from.offset < upTo {
		r := indexRead{pattern: ix + "*", ix: ix, at: from.pos, named: true}
		evs, truncated, err := f.s.readIndex(ctx, r, true, followFillBatch)
		if errors.Is(err, store.ErrUnknownCursor) {
			// The index is behind the position: Redis lost it.
			f.sink.Gap(ix + "*")
			from, whole = seen{}, false
			continue
		}
		if err != nil {
			f.sink.Gap(ix + "*")
			fi.at[ix] = seen{pos: pos{epoch: from.epoch, offset: max(upTo, from.offset)}, us: from.us}
			return false
		}
		if truncated && from.offset > 0 {
			f.sink.Gap(ix + "*")
			whole = false
		}
		var out []store.Event
		stopped := false
		for _, e := range evs {
			p, xp, _ := parseID(e.ID)
			if upTo > 0 && xp.epoch == from.epoch && xp.offset > upTo {
				stopped = true
				break
			}
			from = seen{pos: pos{epoch: xp.epoch, offset: xp.offset}, us: e.Time.UnixMicro()}
			at, known := f.at[e.Topic]
			if known && at.epoch == p.epoch && p.offset <= at.offset {
				continue
			}
			if known && at.epoch != p.epoch && at.offset > 0 {
				f.sink.Gap(e.Topic)
			}
			out = append(out, e)
			f.at[e.Topic] = seen{pos: p, us: e.Time.UnixMicro()}
		}
		if len(out) > 0 {
			f.sink.Deliver(out)
		}
		if len(evs) > 0 {
			fi.at[ix] = from
		}
		if stopped || len(evs) < followFillBatch {
			return whole
		}
	}
	return whole
}

// catchUpIndexes reads every index's epoch and last offset: the first time
// it takes them as positions, later it delivers what each gained (see
// catchUp, which it precedes).
func (f *follower) catchUpIndexes(ctx context.Context, first bool) {
	fi := f.indexes()
	clear(fi.ok)
	for _, ix := range f.s.pfx {
		vals, err := f.s.c.HMGet(ctx, f.s.index(ix).meta, "e", "n", "u").Result()
		at, known := fi.at[ix]
		if err != nil || len(vals) != 3 {
			if known && !first {
				f.sink.Gap(ix + "*")
			}
			continue
		}
		epoch, last, us := metaHead(vals)
		// ok only when the index caught up whole: after a loss its topics
		// catch up one by one too (its pattern subscribers were cut).
		switch {
		case first:
			if epoch != "" {
				fi.at[ix] = seen{pos: pos{epoch: epoch, offset: last}, us: us}
			}
		case epoch == "":
			if known && at.offset > 0 {
				f.sink.Gap(ix + "*")
				delete(fi.at, ix)
				continue
			}
			delete(fi.at, ix)
		case known && at.epoch == epoch && last < at.offset:
			f.rollbackIndex(ctx, ix, epoch, last)
			continue
		case known && at.epoch == epoch:
			if last > at.offset && !f.fillIndex(ctx, ix, at, last) {
				continue
			}
		default:
			whole := f.fillIndex(ctx, ix, seen{pos: pos{epoch: epoch}}, last)
			if known && at.offset > 0 {
				f.sink.Gap(ix + "*")
				continue
			}
			if !whole {
				continue
			}
		}
		fi.ok[ix] = true
	}
}

// caughtUpByIndex reports whether topic's events were caught up through
// its index, so that catchUp leaves it to the messages that follow.
func (f *follower) caughtUpByIndex(topic string) bool {
	ix, ok := f.s.indexOf(topic)
	return ok && f.ix != nil && f.ix.ok[ix]
}

// rollbackIndex starts a new epoch of index ix, whose history went back
// to offset, and reports the gap (see rollback). The index's entries keep
// the topic epochs they were stored with: an event kept from before a
// topic's own rollback reads through the index with its old topic epoch
// (its index position, what a pattern cursor holds, is the new epoch's).
func (f *follower) rollbackIndex(ctx context.Context, ix, epoch string, offset uint64) {
	f.sink.Gap(ix + "*")
	now, err := epochScript.Run(ctx, f.s.c, []string{f.s.index(ix).meta}, epoch, newEpoch()).Text()
	if err != nil {
		return
	}
	f.indexes().at[ix] = seen{pos: pos{epoch: now, offset: offset}}
}
