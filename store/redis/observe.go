package redis

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ObserveRoundTrips makes the store report the time of every round trip
// to Redis to f: op is the command's name (evalsha, xrange, ping…), or
// "pipeline" for a pipelined batch (an Append). The server feeds it to
// the sseguard_store_roundtrip_seconds histogram. Pub/sub messages are
// not round trips and are not reported. Safe to call at any time; nil
// stops the reports.
func (s *Store) ObserveRoundTrips(f func(op string, d time.Duration)) {
	if f == nil {
		s.observe.Store(nil)
		return
	}
	s.observe.Store(&f)
	s.hookOnce.Do(func() {
		h := roundTripHook{&s.observe}
		if s.cluster != nil {
			// A ClusterClient's hooks see the commands of each node's
			// client too; its own see them once, which is what is wanted.
			s.cluster.AddHook(h)
			return
		}
		s.c.AddHook(h)
	})
}

// roundTripHook times commands and pipelines for ObserveRoundTrips.
type roundTripHook struct {
	f *atomic.Pointer[func(string, time.Duration)]
}

func (h roundTripHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h roundTripHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		f := h.f.Load()
		if f == nil {
			return next(ctx, cmd)
		}
		start := time.Now()
		err := next(ctx, cmd)
		(*f)(strings.ToLower(cmd.Name()), time.Since(start))
		return err
	}
}

func (h roundTripHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		f := h.f.Load()
		if f == nil {
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		(*f)("pipeline", time.Since(start))
		return err
	}
}

var _ goredis.Hook = roundTripHook{}
