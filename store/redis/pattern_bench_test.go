package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/storetest"
)

// BenchmarkPatternReplay: see storetest.BenchPatternReplay; orders/ is the
// declared prefix, so orders/* is read from its index. Run beside memory
// and bolt:
//
//	go test -run '^$' -bench BenchmarkPatternReplay -count 6 ./store/memory ./store/bolt ./store/redis
func BenchmarkPatternReplay(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s := openStore(b, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/"}})
	storetest.BenchPatternReplay(b, s)
}

// pointerReadScript reads count entries of an index after an offset the
// way an index of pointers would: each entry names a topic and an offset
// (fields p and o), and the event is read from the topic's stream. It is
// for BenchmarkPatternReplayPointer only: it reads keys it was not given,
// which a Cluster would refuse.
//
// KEYS: index stream. ARGV: 1 first offset, 2 count, 3 the index's tag
// ("<prefix>:{p:<P>}").
var pointerReadScript = goredis.NewScript(`
local ents = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, ent in ipairs(ents) do
  local f = ent[2]
  local topic, off = f[2], f[6]
  local k = ARGV[3] .. ':t' .. #topic .. ':' .. topic .. ':s'
  local ev = redis.call('XRANGE', k, off, off)
  out[#out+1] = {ent[1], topic, ev[1]}
end
return out
`)

// BenchmarkPatternReplayPointer compares the index of copies this store
// keeps with an index of pointers, on BenchPatternReplay's data: the
// Redis side of a read of 200 and of 1000 events (of 128 bytes) after a
// cursor (copies:
// one XRANGE of the index; pointers: an XRANGE of the index and one of a
// topic stream per event, in one script, so no round trip is counted),
// and the memory per index entry (MEMORY USAGE of the index, and of a
// stream of the same entries without the event's data and type).
func BenchmarkPatternReplayPointer(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s := openStore(b, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/"}})
	ctx := context.Background()
	data := strings.Repeat("x", 128) // a small JSON document
	var recs []store.Record
	for range 2 {
		for i := range storetest.PatternTopics {
			recs = append(recs, store.Record{Topic: "orders/" + strconv.Itoa(i), Data: data})
			if len(recs) == 500 {
				if _, err := s.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
				recs = recs[:0]
			}
		}
	}
	ix := s.index("orders/")
	n, err := s.c.XLen(ctx, ix.stream).Result()
	if err != nil || n != 2*storetest.PatternTopics {
		b.Fatalf("index has %d entries (%v), want %d", n, err, 2*storetest.PatternTopics)
	}
	epoch, _ := s.c.HGet(ctx, ix.meta, "e").Result()
	for _, count := range []int{200, 1000} {
		start := strconv.FormatInt(n-int64(count)+1, 10)
		run := func(name string, read func() (int, error)) {
			b.Run(name+"/events="+strconv.Itoa(count), func(b *testing.B) {
				for b.Loop() {
					if got, err := read(); err != nil || got != count {
						b.Fatalf("%d entries, %v", got, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/read")
			})
		}
		from, _ := strconv.ParseUint(start, 10, 64)
		// What Read does for orders/*: a MULTI of HMGET and XRANGE.
		run("copies", func() (int, error) {
			vals, err := s.indexTx(ctx, ix, epoch, from, count)
			if err != nil {
				return 0, err
			}
			return len(vals[5].([]any)), nil
		})
		// What Read does for a narrower pattern (orders/1*, here matching
		// every entry so that the counts agree): the filtering script.
		run("copies-filtered", func() (int, error) {
			vals, err := s.runScript(ctx, indexReadScript, []string{ix.meta, ix.stream}, epoch, start, count, "orders/", indexBudget)
			if err != nil {
				return 0, err
			}
			return len(vals[5].([]any)), nil
		})
		run("pointers", func() (int, error) {
			got, err := pointerReadScript.Run(ctx, s.c, []string{ix.stream}, start, count, s.indexTag("orders/")).Slice()
			return len(got), err
		})
	}
	// The same entries without d and t: what an index of pointers holds.
	ptr := s.indexTag("orders/") + ":bench-pointers"
	if err := goredis.NewScript(`
local ents = redis.call('XRANGE', KEYS[1], '-', '+')
for _, ent in ipairs(ents) do
  local f = ent[2]
  redis.call('XADD', KEYS[2], ent[1], f[1], f[2], f[3], f[4], f[5], f[6])
end
return #ents`).Run(ctx, s.c, []string{ix.stream, ptr}).Err(); err != nil {
		b.Fatal(err)
	}
	b.Run("memory", func(b *testing.B) {
		var copies, pointers int64
		for b.Loop() {
			copies, _ = s.c.MemoryUsage(ctx, ix.stream, 0).Result()
			pointers, _ = s.c.MemoryUsage(ctx, ptr, 0).Result()
		}
		b.ReportMetric(float64(copies)/float64(n), "B/entry-copies")
		b.ReportMetric(float64(pointers)/float64(n), "B/entry-pointers")
	})
}

// BenchmarkAppendIndexed is BenchmarkAppend's batch of 64 records of 16
// topics (64-byte data, no key, AOF fsynced every second) with and
// without their prefix declared: what the index's second XADD costs a
// publish.
//
//	go test -run '^$' -bench AppendIndexed -benchtime 2s -count 6 ./store/redis/
func BenchmarkAppendIndexed(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{AppendOnly: true, Fsync: "everysec"})
	data := strings.Repeat("x", 64)
	for _, indexed := range []bool{false, true} {
		b.Run("indexed="+strconv.FormatBool(indexed), func(b *testing.B) {
			c := Config{Client: testClient(srv.Addr), Retention: store.Retention{MaxEventsPerTopic: 10000}}
			if indexed {
				c.PatternPrefixes = []string{"t/"}
			}
			s := openStore(b, c)
			recs := make([]store.Record, 64)
			ctx := context.Background()
			n := 0
			for b.Loop() {
				for i := range recs {
					recs[i] = store.Record{Topic: "t/" + strconv.Itoa(i%16), Data: data}
					n++
				}
				if _, err := s.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
