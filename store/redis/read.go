package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

// Read reads each topic with one script call (its epoch, last offset and
// the events after the cursor's position, atomically), all in one
// pipeline, and merges the topics by commit time. A position of another
// epoch than the topic's (Redis lost the topic), or of a topic Redis no
// longer has, reads the topic from its oldest event with Truncated; a
// position after the topic's last offset is ErrUnknownCursor. A topic the
// cursor does not name is read from its oldest event, Truncated when the
// cursor is not empty and retention removed some of the topic: the reader
// may have been owed them, and a false reset is better than a silent gap.
func (s *Store) Read(ctx context.Context, topics []string, after string, limit int) (store.Page, error) {
	if err := ctx.Err(); err != nil {
		return store.Page{}, err
	}
	ps, ok := parseCursor(after)
	if !ok {
		return store.Page{}, fmt.Errorf("redis store: read: malformed cursor: %w", store.ErrUnknownCursor)
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	end, err := s.begin(ctx)
	if err != nil {
		return store.Page{}, err
	}
	defer end()
	var patterns []string
	if store.HasPattern(topics) {
		topics = store.Reduce(topics)
		var names []string
		for _, t := range topics {
			if store.IsPattern(t) {
				patterns = append(patterns, t)
			} else {
				names = append(names, t)
			}
		}
		topics = names
	}

	type topicRead struct {
		topic string
		hash  string
		at    pos
		named bool
		cmd   *goredis.Cmd
	}
	var reads []topicRead
	seen := map[string]bool{}
	for _, t := range topics {
		if seen[t] {
			continue
		}
		seen[t] = true
		r := topicRead{topic: t, hash: topicHash(t)}
		for _, p := range ps {
			if p.hash == r.hash {
				r.at, r.named = p, true
			}
		}
		reads = append(reads, r)
	}
	run := func() error {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range reads {
				r := &reads[i]
				k := s.keys(r.topic)
				r.cmd = p.EvalSha(ctx, readScript.Hash(), []string{k.meta, k.stream},
					r.at.epoch, strconv.FormatUint(r.at.offset+1, 10), limit+1)
			}
			return nil
		})
		return err
	}
	if len(reads) > 0 {
		err = run()
		if isNoScript(err) {
			if err = s.loadScripts(ctx); err == nil {
				err = run()
			}
		}
	}
	if err != nil {
		err = unavailable(err)
		s.reload(err)
		return store.Page{}, fmt.Errorf("redis store: read: %w", err)
	}

	var page store.Page
	lists := make([][]store.Event, 0, len(reads))
	if len(patterns) > 0 {
		ixLists, truncated, err := s.readIndexes(ctx, patterns, ps, limit)
		if err != nil {
			return store.Page{}, err
		}
		lists = append(lists, ixLists...)
		page.Truncated = truncated
	}
	for _, r := range reads {
		vals, err := r.cmd.Slice()
		if err != nil || len(vals) != 4 {
			err = unavailable(err)
			s.reload(err)
			return store.Page{}, fmt.Errorf("redis store: read %q: %w", r.topic, err)
		}
		epoch, _ := vals[0].(string)
		last, _ := vals[1].(int64)
		entries, _ := vals[3].([]any)
		evs, err := s.events(r.topic, r.hash, epoch, entries)
		if err != nil {
			return store.Page{}, fmt.Errorf("redis store: read %q: %w", r.topic, err)
		}
		switch {
		case !r.named:
			// A reader that was given events of its other topics but none
			// of this one is owed all of it: if retention removed some,
			// they may have been its (no clock can say, across shards).
			if len(ps) > 0 && (len(evs) > 0 && offsetOf(evs[0]) > 1 || len(evs) == 0 && last > 0) {
				page.Truncated = true
			}
		case r.at.epoch == "":
			// Positioned before the topic's first event: owed all of it.
			if len(evs) > 0 && offsetOf(evs[0]) > 1 || len(evs) == 0 && last > 0 {
				page.Truncated = true
			}
		case epoch == "" || epoch != r.at.epoch:
			// The topic was lost (and maybe started again) since the
			// cursor's epoch.
			page.Truncated = true
		case r.at.offset > uint64(last):
			return store.Page{}, fmt.Errorf("redis store: read %q: cursor after the last event: %w", r.topic, store.ErrUnknownCursor)
		case len(evs) > 0 && offsetOf(evs[0]) > r.at.offset+1,
			len(evs) == 0 && uint64(last) > r.at.offset:
			page.Truncated = true
		}
		if len(evs) > 0 {
			lists = append(lists, evs)
		}
	}
	page.Events, page.More = merge(lists, limit)
	return page, nil
}

// events decodes a topic's stream entries.
func (s *Store) events(topic, hash, epoch string, entries []any) ([]store.Event, error) {
	evs := make([]store.Event, 0, len(entries))
	for _, x := range entries {
		ent, ok := x.([]any)
		if !ok || len(ent) != 2 {
			return nil, fmt.Errorf("%w: stream entry %v", ErrUnavailable, x)
		}
		eid, _ := ent[0].(string)
		off, us, ok := parseEntryID(eid)
		if !ok {
			return nil, fmt.Errorf("%w: stream entry ID %q", ErrUnavailable, eid)
		}
		fields, _ := ent[1].([]any)
		typ, data := entryFields(fields)
		id := pos{hash: hash, epoch: epoch, offset: off}.String()
		if x := entryField(fields, "x"); x != "" {
			id += "." + x // an indexed topic's: see indexAppendScript
		}
		evs = append(evs, store.Event{
			ID:    id,
			Topic: topic, Type: typ, Data: data,
			Time: time.UnixMicro(us).UTC(),
		})
	}
	return evs, nil
}

// entryField returns the value of a stream entry's field name, or "".
func entryField(fields []any, name string) string {
	for i := 0; i+1 < len(fields); i += 2 {
		if n, _ := fields[i].(string); n == name {
			v, _ := fields[i+1].(string)
			return v
		}
	}
	return ""
}

// parseEntryID splits a stream entry ID <offset>-<µs>.
func parseEntryID(id string) (off uint64, us int64, ok bool) {
	a, b, ok := strings.Cut(id, "-")
	if !ok {
		return 0, 0, false
	}
	off, err1 := strconv.ParseUint(a, 10, 64)
	us, err2 := strconv.ParseInt(b, 10, 64)
	return off, us, err1 == nil && err2 == nil
}

func offsetOf(e store.Event) uint64 {
	p, _ := parsePos(e.ID)
	return p.offset
}

// merge interleaves per-topic lists (each in offset order) by commit time,
// and cuts the result at limit. Each list came with one event more than
// limit when there were more, so more is exact.
func merge(lists [][]store.Event, limit int) (out []store.Event, more bool) {
	if len(lists) == 1 {
		l := lists[0]
		if len(l) > limit {
			return l[:limit], true
		}
		return l, false
	}
	heads := make([]int, len(lists))
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	out = make([]store.Event, 0, min(total, limit))
	for len(out) < limit {
		best := -1
		for i, l := range lists {
			if heads[i] == len(l) {
				continue
			}
			if best < 0 || l[heads[i]].Time.Before(lists[best][heads[best]].Time) {
				best = i
			}
		}
		if best < 0 {
			return out, false
		}
		out = append(out, lists[best][heads[best]])
		heads[best]++
	}
	return out, total > limit
}

// Head returns the position of each topic: its last offset (which goes on
// after retention removed everything), or before its first event when it
// has none.
func (s *Store) Head(ctx context.Context, topics []string) (string, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer end()
	var uniq, patterns []string
	for _, t := range store.Reduce(topics) {
		if store.IsPattern(t) {
			patterns = append(patterns, t)
		} else if !contains(uniq, t) {
			uniq = append(uniq, t)
		}
	}
	for _, pat := range patterns {
		if err := s.PatternOK(pat); err != nil {
			return "", fmt.Errorf("redis store: head: %w", err)
		}
	}
	cmds := make([]*goredis.SliceCmd, len(uniq))
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, t := range uniq {
			cmds[i] = p.HMGet(ctx, s.keys(t).meta, "e", "n")
		}
		return nil
	})
	if err != nil {
		err = unavailable(err)
		s.reload(err)
		return "", fmt.Errorf("redis store: head: %w", err)
	}
	var ps []pos
	for i, t := range uniq {
		vals := cmds[i].Val()
		epoch, _ := vals[0].(string)
		n, _ := vals[1].(string)
		off, err := strconv.ParseUint(n, 10, 64)
		if epoch == "" || err != nil || off == 0 {
			ps = append(ps, pos{hash: topicHash(t)})
			continue
		}
		ps = append(ps, pos{hash: topicHash(t), epoch: epoch, offset: off})
	}
	if len(patterns) > 0 {
		ips, err := s.headIndexes(ctx, patterns)
		if err != nil {
			err = unavailable(err)
			s.reload(err)
			return "", fmt.Errorf("redis store: head: %w", err)
		}
		ps = append(ps, ips...)
	}
	return formatCursor(ps), nil
}
