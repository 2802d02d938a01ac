package presence

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
)

// churnConns is how many connections the churn benchmark holds.
const churnConns = 10000

// countingObserver counts a tracker's Redis round trips.
type countingObserver struct{ roundTrips, failed atomic.Int64 }

func (o *countingObserver) Updated(int) {}
func (o *countingObserver) Flushed(_ time.Duration, err error) {
	o.roundTrips.Add(1)
	if err != nil {
		o.failed.Add(1)
	}
}
func (o *countingObserver) Emitted(bool) {}

// BenchmarkChurn measures presence updates per second (a join or a
// leave of one connection on one topic) with 10k connections held on 100
// topics by 2000 subjects (5 connections each), two goroutines replacing
// connections as fast as they can, with the default flush interval
// (250 ms). On "redis" a second tracker, another node in the same
// process, follows the first through a real Redis; after the churn
// a tenth of the connections leave at once, and the benchmark
// reports how long the other node took to count that (converge_ms: the
// flush interval, one round trip and the pub/sub hop), with the round
// trips to Redis per second of churn.
//
//	go test -run '^$' -bench BenchmarkChurn -benchtime 1000000x -count 5 ./presence/
func BenchmarkChurn(b *testing.B) {
	b.Run("one-node", func(b *testing.B) { benchChurn(b, false) })
	b.Run("redis", func(b *testing.B) { benchChurn(b, true) })
}

func benchChurn(b *testing.B, onRedis bool) {
	var events atomic.Int64
	obs := &countingObserver{}
	opts := Options{Topics: []string{"room/*"}, Observer: obs, OnEvents: func(es []Event) { events.Add(int64(len(es))) }}
	var other *Tracker
	if onRedis {
		srv := startRedis(b)
		opts.Redis, opts.Prefix = redisClient(b, srv.Addr), "bench"
		other = New(Options{Topics: []string{"room/*"}, Redis: redisClient(b, srv.Addr), Prefix: "bench"})
		run(b, other)
	}
	tr := New(opts)
	run(b, tr)
	if other != nil {
		waitNodes(b, 2, tr, other)
	}
	topics := make([][]string, 100)
	for i := range topics {
		topics[i] = []string{fmt.Sprintf("room/%d", i)}
	}
	subjects := make([]string, 2000)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("user%d", i)
	}
	conns := make([]*Conn, churnConns)
	for i := range conns {
		conns[i] = tr.Join(topics[i%100], subjects[i%2000])
	}
	const workers = 2
	b.ReportAllocs()
	trips0, events0 := obs.roundTrips.Load(), events.Load()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Worker w owns the connections i with i%workers == w.
			j := w
			for n := w; n < b.N/2; n += workers {
				i := j % churnConns
				conns[i].Leave()
				conns[i] = tr.Join(topics[i%100], subjects[i%2000])
				j += workers * 7919 // a stride prime to the count: every connection in turn, scattered
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "updates/s")
	b.ReportMetric(float64(events.Load()-events0)/elapsed.Seconds(), "events/s")
	if onRedis {
		b.ReportMetric(float64(obs.roundTrips.Load()-trips0)/elapsed.Seconds(), "roundtrips/s")
		// A tenth of the connections leave at once: how long until the
		// other node counts 90 on every room.
		left := time.Now()
		for i := range churnConns / 10 {
			conns[i].Leave()
		}
		eventually.True(b, 30*time.Second, func() bool {
			for _, tp := range topics {
				n, s := other.Count(tp[0])
				if n != 90 || len(s) != 20 {
					return false
				}
			}
			return true
		}, "the other node counts 90 connections of 20 subjects on each room")
		b.ReportMetric(float64(time.Since(left).Milliseconds()), "converge_ms")
		if f := obs.failed.Load(); f > 0 {
			b.Fatalf("%d round trips to Redis failed", f)
		}
	}
	for _, c := range conns {
		c.Leave()
	}
}
