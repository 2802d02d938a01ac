package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// BenchmarkAppend appends batches of small records (64-byte data, 16
// topics, no idempotency key, then one key each) to a redis-server with
// the AOF fsynced every second, the setting docs/cluster.md recommends,
// and reports events/s. Run:
//
//	go test -run '^$' -bench Append -benchtime 2s -count 5 ./store/redis/
func BenchmarkAppend(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{AppendOnly: true, Fsync: "everysec"})
	data := strings.Repeat("x", 64)
	for _, keyed := range []bool{false, true} {
		for _, batch := range []int{64, 512} {
			b.Run(fmt.Sprintf("batch=%d/keys=%v", batch, keyed), func(b *testing.B) {
				s := openStore(b, Config{Client: testClient(srv.Addr), Retention: store.Retention{MaxEventsPerTopic: 10000}})
				recs := make([]store.Record, batch)
				ctx := context.Background()
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					for i := range recs {
						recs[i] = store.Record{Topic: fmt.Sprint("topic-", i%16), Data: data}
						if keyed {
							recs[i].IdempotencyKey = fmt.Sprint("k", n)
						}
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
}

// latencySink records when each event reaches the follower.
type latencySink struct {
	mu   sync.Mutex
	got  map[string]time.Time
	n    atomic.Int64
	seen chan struct{}
}

func (k *latencySink) Started()   {}
func (k *latencySink) Gap(string) {}
func (k *latencySink) Deliver(evs []store.Event) {
	now := time.Now()
	k.mu.Lock()
	for _, e := range evs {
		k.got[e.ID] = now
	}
	k.mu.Unlock()
	k.n.Add(int64(len(evs)))
	select {
	case k.seen <- struct{}{}:
	default:
	}
}

// startFollower runs s.Follow into a latencySink until b ends.
func startFollower(b *testing.B, s *Store) *latencySink {
	k := &latencySink{got: map[string]time.Time{}, seen: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Follow(ctx, startedSink{k, started})
	}()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		b.Fatal("Follow did not start")
	}
	return k
}

type startedSink struct {
	*latencySink
	started chan struct{}
}

func (s startedSink) Started() { close(s.started) }

// BenchmarkFeed measures what one process's Follow receives of another's
// appends: throughput with batches of 512 (events/s delivered), and the
// delay from an Append's call (what a publish adds to it is the hub's) to
// the follower's Deliver at a steady 1000 events/s (p50 and p99, in ms).
// Run:
//
//	go test -run '^$' -bench Feed -benchtime 5000x ./store/redis/
func BenchmarkFeed(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{AppendOnly: true, Fsync: "everysec"})
	data := strings.Repeat("x", 64)
	b.Run("throughput", func(b *testing.B) {
		prefix := nextPrefix()
		a := openStore(b, Config{Client: testClient(srv.Addr), Prefix: prefix, Retention: store.Retention{MaxEventsPerTopic: 10000}})
		f := openStore(b, Config{Client: testClient(srv.Addr), Prefix: prefix})
		k := startFollower(b, f)
		recs := make([]store.Record, 512)
		for i := range recs {
			recs[i] = store.Record{Topic: fmt.Sprint("topic-", i%16), Data: data}
		}
		ctx := context.Background()
		sent := int64(0)
		start := time.Now()
		for b.Loop() {
			if _, err := a.Append(ctx, recs); err != nil {
				b.Fatal(err)
			}
			sent += int64(len(recs))
		}
		deadline := time.After(time.Minute)
		for k.n.Load() < sent {
			select {
			case <-k.seen:
			case <-deadline:
				b.Fatalf("follower has %d of %d events after a minute", k.n.Load(), sent)
			}
		}
		b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "delivered/s")
	})
	b.Run("latency at 1k/s", func(b *testing.B) {
		prefix := nextPrefix()
		a := openStore(b, Config{Client: testClient(srv.Addr), Prefix: prefix})
		f := openStore(b, Config{Client: testClient(srv.Addr), Prefix: prefix})
		k := startFollower(b, f)
		ctx := context.Background()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		acked := map[string]time.Time{}
		i := 0
		for b.Loop() {
			<-tick.C
			t0 := time.Now()
			got, err := a.Append(ctx, []store.Record{{Topic: fmt.Sprint("topic-", i%16), Data: data}})
			if err != nil {
				b.Fatal(err)
			}
			acked[got[0].Event.ID] = t0
			i++
		}
		deadline := time.After(time.Minute)
		for k.n.Load() < int64(len(acked)) {
			select {
			case <-k.seen:
			case <-deadline:
				b.Fatalf("follower has %d of %d events after a minute", k.n.Load(), len(acked))
			}
		}
		k.mu.Lock()
		var lat []time.Duration
		for id, t0 := range acked {
			lat = append(lat, max(0, k.got[id].Sub(t0)))
		}
		k.mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})
}
