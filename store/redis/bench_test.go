package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
