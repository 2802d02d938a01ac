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

// Trim walks the topic set and runs the trim script on each topic,
// trimBatch topics per pipeline: count retention (exact), age retention
// (by the commit time in each entry ID), and idempotency keys older than
// the window at now. Times are compared with Redis's clock, which stamped
// the events.
func (s *Store) Trim(ctx context.Context, now time.Time) (int, error) {
	end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	maxLen := "0"
	if s.r.MaxEventsPerTopic > 0 {
		maxLen = strconv.Itoa(s.r.MaxEventsPerTopic)
	}
	ageCut := "0"
	if s.r.MaxAge > 0 {
		ageCut = strconv.FormatInt(now.Add(-s.r.MaxAge).UnixMicro(), 10)
	}
	keyCut := strconv.FormatInt(now.Add(-s.window).UnixMicro(), 10)

	removed := 0
	var cursor uint64
	for {
		topics, next, err := s.c.SScan(ctx, s.topicSet(), cursor, "", trimBatch).Result()
		if err != nil {
			return removed, fmt.Errorf("redis store: trim: %w", unavailable(err))
		}
		n, err := s.trimTopics(ctx, topics, maxLen, ageCut, keyCut)
		removed += n
		if err != nil {
			return removed, fmt.Errorf("redis store: trim: %w", err)
		}
		if cursor = next; cursor == 0 {
			return removed, nil
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
	}
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
