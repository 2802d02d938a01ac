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

// Append runs one script per topic of the batch, all in one pipeline, and
// with MinReplicas a WAIT after them on the same connection. See the
// package doc for what an error means for the batch.
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
			err = fmt.Errorf("redis store: append %q: %w", calls[i].topic, err)
			if s.cluster == nil {
				return nil, err
			}
			// A Cluster's shards fail alone: this topic's records fail,
			// the other shards' are stored and answered.
			for _, j := range calls[i].idx {
				out[j] = store.Appended{Err: err}
			}
			failed++
			firstErr = err
			continue
		}
		if isNew && !contains(fresh, calls[i].topic) {
			created = append(created, calls[i].topic)
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

// appendCall is one script call: the records of one topic in a batch
// (recs[idx[i]]), and, once run, its reply.
type appendCall struct {
	topic string
	idx   []int
	keys  []string
	args  []any
	cmd   *goredis.Cmd
	// indexed calls run indexAppendScript for a topic under prefix ix.
	indexed bool
	ix      string
}

// appendCalls groups recs by topic, in the order of each topic's first
// record, keeping each topic's records in order.
func (s *Store) appendCalls(recs []store.Record) []appendCall {
	var calls []appendCall
	byTopic := map[string]int{}
	for i, rec := range recs {
		j, ok := byTopic[rec.Topic]
		if !ok {
			j = len(calls)
			byTopic[rec.Topic] = j
			calls = append(calls, s.newCall(rec.Topic))
		}
		c := &calls[j]
		c.idx = append(c.idx, i)
		k, fp := 0, ""
		if rec.IdempotencyKey != "" {
			c.keys = append(c.keys, s.keys(rec.Topic).idem(rec.IdempotencyKey))
			k = len(c.keys)
			sum := store.Fingerprint(rec)
			fp = hex.EncodeToString(sum[:])
		}
		c.args = append(c.args, rec.Type, rec.Data, fp, k)
	}
	return calls
}

func (s *Store) newCall(topic string) appendCall {
	k := s.keys(topic)
	maxLen := "0"
	if s.r.MaxEventsPerTopic > 0 {
		maxLen = strconv.Itoa(s.r.MaxEventsPerTopic)
	}
	channel := s.channel()
	if s.silent {
		channel = ""
	}
	c := appendCall{
		topic: topic,
		keys:  []string{k.meta, k.stream},
		args: []any{
			newEpoch(), topicHash(topic), maxLen, strconv.FormatInt(s.window.Microseconds(), 10), channel,
			strconv.FormatInt((s.window + keySlack).Milliseconds(), 10), topic,
		},
	}
	if ix, ok := s.indexOf(topic); ok {
		return s.indexed(c, ix)
	}
	return c
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

// results fills out with the results of the call's records; created
// reports that the script made the topic's epoch.
func (c *appendCall) results(recs []store.Record, out []store.Appended) (created bool, err error) {
	if c.indexed {
		return c.indexResults(recs, out)
	}
	vals, err := c.cmd.Slice()
	if err != nil {
		return false, unavailable(err)
	}
	if len(vals) != 2+5*len(c.idx) {
		return false, fmt.Errorf("%w: append script replied %d values for %d records", ErrUnavailable, len(vals), len(c.idx))
	}
	flag, _ := vals[0].(int64)
	epoch, _ := vals[1].(string)
	hash := topicHash(c.topic)
	for j, i := range c.idx {
		v := vals[2+5*j:]
		status, _ := v[0].(int64)
		off, _ := v[1].(int64)
		us, _ := v[2].(int64)
		conflict, _ := v[3].(int64)
		ev := store.Event{
			ID:    pos{hash: hash, epoch: epoch, offset: uint64(off)}.String(),
			Topic: c.topic,
			Time:  time.UnixMicro(us).UTC(),
		}
		if status == 0 {
			ev.Type, ev.Data = recs[i].Type, recs[i].Data
			out[i] = store.Appended{Event: ev}
			continue
		}
		if fields, ok := v[4].([]any); ok {
			ev.Type, ev.Data = entryFields(fields)
		}
		out[i] = store.Appended{Event: ev, Duplicate: true, Conflict: conflict == 1}
	}
	return flag == 1, nil
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
