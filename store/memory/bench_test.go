package memory_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// BenchmarkAppend measures one Append of a batch of the given size.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := memory.New(store.Retention{MaxEventsPerTopic: 10000})
			defer s.Close()
			recs := make([]store.Record, size)
			for i := range recs {
				recs[i] = store.Record{Topic: fmt.Sprint("topic-", i%4), Data: "payload"}
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRead measures a replay page: 100 events of 2 of 8 topics after a
// cursor, from 20000 events.
func BenchmarkRead(b *testing.B) {
	const (
		total  = 20000
		topics = 8
		limit  = 100
	)
	s := memory.New(store.Retention{})
	defer s.Close()
	ctx := context.Background()
	var ids []string
	for i := range total {
		got, err := s.Append(ctx, []store.Record{{Topic: fmt.Sprint("topic-", i%topics), Data: "payload"}})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, got[0].Event.ID)
	}
	want := []string{"topic-1", "topic-5"}
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		page, err := s.Read(ctx, want, ids[(i*997)%(total-limit*topics)], limit)
		if err != nil {
			b.Fatal(err)
		}
		n += len(page.Events)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
