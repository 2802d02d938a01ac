package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

var errEmptyTopic = errors.New("empty topic")

// keySlack keeps an idempotency key in Redis a little past the window: the
// append script decides by the key's time whether it is still in the
// window, and Redis's expiry only frees it.
const keySlack = time.Minute

// Append runs one script call for the whole batch (on a Cluster one per
// hash slot of its topics), all in one pipeline, and with MinReplicas a
// WAIT after them on the same connection. See the package doc for what an
// error means for the batch.
func (s *Store) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range recs {
		if recs[i].Topic == "" {
			return nil, fmt.Errorf("redis store: append: record %d: %w", i, errEmptyTopic)
		}
	}
	end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	if len(recs) == 0 {
		return []store.Appended{}, nil
	}
	calls := s.appendCalls(recs)
	fresh := s.unknownTopics(recs)
	if err := s.runAppends(ctx, calls, fresh); err != nil {
		s.reload(err)
		return nil, fmt.Errorf("redis store: append: %w", err)
	}
	out := make([]store.Appended, len(recs))
	var created []string
	failed := 0
	var firstErr error
	for i := range calls {
		isNew, err := calls[i].results(recs, out)
		if err != nil {
			s.reload(err)
			err = fmt.Errorf("redis store: append %q: %w", calls[i].topics[0].topic, err)
			if s.cluster == nil {
				return nil, err
			}
			// A Cluster's shards fail alone: this slot's records fail,
			// the other slots' are stored and answered.
			for _, t := range calls[i].topics {
				for _, j := range t.idx {
					out[j] = store.Appended{Err: err}
				}
			}
			failed++
			firstErr = err
			continue
		}
		for _, t := range isNew {
			if !contains(fresh, t) {
				created = append(created, t)
			}
		}
	}
	if failed == len(calls) {
		return nil, firstErr
	}
	// A topic this process knew but whose epoch the script created again:
	// Redis lost it, and the topic set with it.
	if len(created) > 0 {
		if err := s.c.SAdd(ctx, s.topicSet(), toAny(created)...).Err(); err != nil {
			return nil, fmt.Errorf("redis store: append: %w", unavailable(err))
		}
	}
	return out, nil
}

// appendCall is one script call: the records of one or more topics of a
// batch, which share a hash slot on a Cluster, and, once run, its reply.
type appendCall struct {
	topics []callTopic
	keys   []string
	args   []any
	cmd    *goredis.Cmd
	// indexed calls run indexAppendScript for the one topic (under
	// pattern prefix ix) of the call, with its own arguments (indexappend.go).
	indexed bool
	ix      string
}

// callTopic is one topic's part of a call: its records are recs[idx[i]].
type callTopic struct {
	topic, hash string
	idx         []int
}

// appendCalls groups recs by topic, in the order of each topic's first
// record, keeping each topic's records in order, and the topics into
// calls: one on a single Redis, where a script may touch any key, one per
// hash slot on a Cluster, where it must not leave its slot. One call for
// many topics pays the script's fixed cost (TIME, the reply, the PUBLISH)
// once.
func (s *Store) appendCalls(recs []store.Record) []appendCall {
	var topics []callTopic
	byTopic := make(map[string]int, 4)
	for i, rec := range recs {
		j, ok := byTopic[rec.Topic]
		if !ok {
			j = len(topics)
			byTopic[rec.Topic] = j
			topics = append(topics, callTopic{topic: rec.Topic, hash: topicHash(rec.Topic)})
		}
		topics[j].idx = append(topics[j].idx, i)
	}
	maxLen := "0"
	if s.r.MaxEventsPerTopic > 0 {
		maxLen = strconv.Itoa(s.r.MaxEventsPerTopic)
	}
	channel := s.channel()
	if s.silent {
		channel = ""
	}
	window := strconv.FormatInt(s.window.Microseconds(), 10)
	ttl := strconv.FormatInt((s.window + keySlack).Milliseconds(), 10)
	// A topic under a pattern prefix has a call of its own, which also
	// appends to the prefix's index (indexappend.go).
	var calls []appendCall
	plain := topics[:0:0]
	for _, t := range topics {
		if ix, ok := s.indexOf(t.topic); ok {
			calls = append(calls, s.indexedCall(recs, t, ix, maxLen, window, channel, ttl))
		} else {
			plain = append(plain, t)
		}
	}
	first := len(calls)
	switch {
	case len(plain) == 0:
	case s.cluster == nil:
		calls = append(calls, appendCall{topics: plain})
	default:
		bySlot := map[uint16]int{}
		for _, t := range plain {
			slot := keySlot(tag(t.topic))
			j, ok := bySlot[slot]
			if !ok {
				j = len(calls)
				bySlot[slot] = j
				calls = append(calls, appendCall{})
			}
			calls[j].topics = append(calls[j].topics, t)
		}
	}
	for c := first; c < len(calls); c++ {
		call := &calls[c]
		n := 0
		for _, t := range call.topics {
			n += len(t.idx)
		}
		call.keys = make([]string, 0, 2*len(call.topics))
		call.args = make([]any, 0, 4+5*len(call.topics)+4*n)
		call.args = append(call.args, maxLen, window, channel, ttl)
		for _, t := range call.topics {
			k := s.keys(t.topic)
			call.keys = append(call.keys, k.meta, k.stream)
			nkeys := 0
			for _, i := range t.idx {
				if recs[i].IdempotencyKey != "" {
					nkeys++
				}
			}
			call.args = append(call.args, newEpoch(), t.hash, t.topic, len(t.idx), nkeys)
			nk := 0
			for _, i := range t.idx {
				rec := &recs[i]
				fp, ki := "", 0
				if rec.IdempotencyKey != "" {
					call.keys = append(call.keys, k.idem(rec.IdempotencyKey))
					nk++
					ki = nk
					sum := store.Fingerprint(*rec)
					fp = hex.EncodeToString(sum[:])
				}
				call.args = append(call.args, rec.Type, rec.Data, fp, ki)
			}
		}
	}
	return calls
}

// unknownTopics returns the topics of recs this process has not put in the
// topic set yet, and marks them known.
func (s *Store) unknownTopics(recs []store.Record) []string {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	var out []string
	for _, rec := range recs {
		if s.known[rec.Topic] {
			continue
		}
		if len(s.known) >= maxKnown {
			clear(s.known)
		}
		s.known[rec.Topic] = true
		out = append(out, rec.Topic)
	}
	return out
}

func (s *Store) forget(topics []string) {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	for _, t := range topics {
		delete(s.known, t)
	}
}

// runAppends sends the calls (and an SADD of fresh topics first) and
// leaves each call's reply in its cmd; calls that Redis refused with
// NOSCRIPT (it restarted and forgot the scripts, and ran nothing) are sent
// once more after loading them. It returns an error for the whole batch
// when Redis could not be reached or the WAIT came short.
func (s *Store) runAppends(ctx context.Context, calls []appendCall, fresh []string) (err error) {
	defer func() {
		if err != nil {
			s.forget(fresh)
		}
	}()
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	if err := s.send(ctx, calls, all, fresh); err != nil {
		return err
	}
	var again []int
	for i := range calls {
		if isNoScript(calls[i].cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return nil
	}
	if err := s.loadScripts(ctx); err != nil {
		return unavailable(err)
	}
	return s.send(ctx, calls, again, nil)
}

// send runs calls[idx] in one pipeline (one per master on a Cluster with
// MinReplicas), each followed by a WAIT with MinReplicas.
func (s *Store) send(ctx context.Context, calls []appendCall, idx []int, fresh []string) error {
	if len(fresh) > 0 && s.cluster != nil {
		// The topic set's slot is another shard's, most likely.
		if err := s.c.SAdd(ctx, s.topicSet(), toAny(fresh)...).Err(); err != nil {
			return unavailable(err)
		}
		fresh = nil
	}
	if s.cluster == nil || s.minRepl == 0 {
		return s.pipeline(ctx, s.c, calls, idx, fresh)
	}
	// WAIT counts the writes of its own connection, so it must follow
	// them on the connection that made them: one pipeline per master.
	groups := map[*goredis.Client][]int{}
	for _, i := range idx {
		m, err := s.cluster.MasterForKey(ctx, calls[i].keys[0])
		if err != nil {
			return unavailable(err)
		}
		groups[m] = append(groups[m], i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for m, group := range groups {
		wg.Go(func() {
			if err := s.pipeline(ctx, m, calls, group, nil); err != nil {
				errs <- fmt.Errorf("%s: %w", m.Options().Addr, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// pipeline runs an SADD of fresh topics, calls[idx] and, with MinReplicas,
// a WAIT, in one pipeline of c.
func (s *Store) pipeline(ctx context.Context, c goredis.Cmdable, calls []appendCall, idx []int, fresh []string) error {
	var wait *goredis.Cmd
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if len(fresh) > 0 {
			p.SAdd(ctx, s.topicSet(), toAny(fresh)...)
		}
		for _, i := range idx {
			calls[i].cmd = p.EvalSha(ctx, calls[i].scriptHash(), calls[i].keys, calls[i].args...)
		}
		if s.minRepl > 0 {
			wait = p.Do(ctx, "WAIT", s.minRepl, s.replTO.Milliseconds())
		}
		return nil
	})
	if err != nil && !isRedisError(err) && (s.cluster == nil || wait != nil) {
		return unavailable(err)
	}
	// On a Cluster without WAIT each call keeps its own shard's error,
	// which Append reports per record.
	if wait != nil {
		if err := wait.Err(); err != nil {
			return unavailable(err)
		}
		if n, _ := wait.Int64(); n < int64(s.minRepl) {
			return fmt.Errorf("%w (%d of %d within %v): %w", ErrNotReplicated, n, s.minRepl, s.replTO, ErrUnavailable)
		}
	}
	return nil
}

func isRedisError(err error) bool {
	var re goredis.Error
	return errors.As(err, &re)
}

// results fills out with the results of the call's records, and returns
// the topics whose epoch the script made.
func (c *appendCall) results(recs []store.Record, out []store.Appended) (created []string, err error) {
	if c.indexed {
		isNew, err := c.indexResults(recs, out)
		if isNew {
			created = []string{c.topics[0].topic}
		}
		return created, err
	}
	vals, err := c.cmd.Slice()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(vals) != len(c.topics) {
		return nil, fmt.Errorf("%w: append script replied %d values for %d topics", ErrUnavailable, len(vals), len(c.topics))
	}
	for ti, t := range c.topics {
		v, _ := vals[ti].([]any)
		if len(v) < 4 || (len(v)-4)%5 != 0 || (len(v)-4)/5 > len(t.idx) {
			return nil, fmt.Errorf("%w: append script replied %d values for topic %q", ErrUnavailable, len(v), t.topic)
		}
		flag, _ := v[0].(int64)
		epoch, _ := v[1].(string)
		last, _ := v[2].(int64)
		us, _ := v[3].(int64)
		if flag == 1 {
			created = append(created, t.topic)
		}
		at := time.UnixMicro(us).UTC()
		dups := v[4:]
		for j, i := range t.idx {
			if len(dups) > 0 {
				if d, _ := dups[0].(int64); d == int64(j+1) {
					off, _ := dups[1].(int64)
					dus, _ := dups[2].(int64)
					conflict, _ := dups[3].(int64)
					ev := store.Event{
						ID:    pos{hash: t.hash, epoch: epoch, offset: uint64(off)}.String(),
						Topic: t.topic,
						Time:  time.UnixMicro(dus).UTC(),
					}
					if fields, ok := dups[4].([]any); ok {
						ev.Type, ev.Data = entryFields(fields)
					}
					out[i] = store.Appended{Event: ev, Duplicate: true, Conflict: conflict == 1}
					dups = dups[5:]
					continue
				}
			}
			// Records stored take the topic's next offsets, in order.
			last++
			out[i] = store.Appended{Event: store.Event{
				ID:    pos{hash: t.hash, epoch: epoch, offset: uint64(last)}.String(),
				Topic: t.topic,
				Type:  recs[i].Type,
				Data:  recs[i].Data,
				Time:  at,
			}}
		}
		if len(dups) > 0 {
			return nil, fmt.Errorf("%w: append script replied duplicates past topic %q's records", ErrUnavailable, t.topic)
		}
	}
	return created, nil
}

// entryFields reads a stream entry's type and data.
func entryFields(fields []any) (typ, data string) {
	for i := 0; i+1 < len(fields); i += 2 {
		name, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch name {
		case "t":
			typ = val
		case "d":
			data = val
		}
	}
	return typ, data
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// keySlot is the Redis Cluster hash slot of a key whose hash tag is tag:
// CRC16 (XMODEM) mod 16384, as Redis computes it.
func keySlot(tag string) uint16 {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc & 16383
}
