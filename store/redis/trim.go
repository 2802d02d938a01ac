package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// trimBatch is how many topics one Trim round trip covers.
const trimBatch = 256

// maxTrimTopics bounds the topics one Trim call covers, so that a store
// of a million topics trims them over successive calls (the hub calls Trim
// every minute) instead of loading Redis with them all at once.
const maxTrimTopics = 16384

// Trim walks the topic set and runs the trim script on each topic,
// trimBatch topics per pipeline: count retention (exact), age retention
// (by the commit time in each entry ID), and idempotency keys older than
// the window at now. Times are compared with Redis's clock, which stamped
// the events. One call covers at most maxTrimTopics topics; the next call
// goes on where it stopped, and one that reaches the end of the set starts
// again from its beginning.
func (s *Store) Trim(ctx context.Context, now time.Time) (int, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	maxLen := "0"
	if s.r.MaxEventsPerTopic > 0 {
		maxLen = strconv.Itoa(s.r.MaxEventsPerTopic)
	}
	ageCut := "0"
	if s.r.MaxAge > 0 {
		ageCut = strconv.FormatInt(now.Add(-s.r.MaxAge).UnixMicro(), 10)
	}
	keyCut := strconv.FormatInt(now.Add(-s.window).UnixMicro(), 10)

	// The indexes: a few keys, trimmed on every call, whose retention
	// follows their topics'. One that fails (its shard down) does not
	// hold up the topics; its error comes back at the end.
	ixErr := s.trimIndexes(ctx, maxLen, ageCut)
	removed, covered := 0, 0
	limit := s.trimLimit
	if limit <= 0 {
		limit = maxTrimTopics
	}
	for covered < limit {
		topics, next, err := s.c.SScan(ctx, s.topicSet(), s.trimCursor, "", trimBatch).Result()
		if err != nil {
			err = unavailable(err)
			s.reload(err)
			return removed, fmt.Errorf("redis store: trim: %w", err)
		}
		n, err := s.trimTopics(ctx, topics, maxLen, ageCut, keyCut)
		removed += n
		if err != nil {
			s.reload(err)
			return removed, fmt.Errorf("redis store: trim: %w", err)
		}
		covered += len(topics)
		if s.trimCursor = next; next == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
	}
	if ixErr != nil {
		return removed, fmt.Errorf("redis store: trim: %w", ixErr)
	}
	return removed, nil
}

func (s *Store) trimTopics(ctx context.Context, topics []string, maxLen, ageCut, keyCut string) (int, error) {
	if len(topics) == 0 {
		return 0, nil
	}
	cmds := make([]*goredis.Cmd, len(topics))
	run := func() error {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, t := range topics {
				k := s.keys(t)
				cmds[i] = p.EvalSha(ctx, trimScript.Hash(), []string{k.stream, k.meta}, maxLen, ageCut, keyCut)
			}
			return nil
		})
		return err
	}
	err := run()
	if isNoScript(err) {
		if err = s.loadScripts(ctx); err == nil {
			err = run()
		}
	}
	removed := 0
	for _, c := range cmds {
		n, _ := c.Int()
		removed += n
	}
	if err != nil {
		return removed, unavailable(err)
	}
	return removed, nil
}
