package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
)

// benchData is a typical small JSON payload.
var benchData = `{"symbol":"ACME","price":123.45,"note":"` + strings.Repeat("x", 80) + `"}`

// BenchmarkAppend measures one Append (one transaction, one fsync) of a
// batch of the given size; events/s is what one writer gets.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), store.Retention{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			recs := make([]store.Record, size)
			for i := range recs {
				recs[i] = store.Record{Topic: fmt.Sprint("topic-", i%4), Type: "price", Data: benchData}
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
// cursor, from a file of 20000 events.
func BenchmarkRead(b *testing.B) {
	const (
		total  = 20000
		topics = 8
		limit  = 100
	)
	s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), store.Retention{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var ids []string
	recs := make([]store.Record, 250)
	for len(ids) < total {
		for i := range recs {
			recs[i] = store.Record{Topic: fmt.Sprint("topic-", (len(ids)+i)%topics), Data: benchData}
		}
		got, err := s.Append(ctx, recs)
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range got {
			ids = append(ids, g.Event.ID)
		}
	}
	want := []string{"topic-1", "topic-5"}
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		after := ids[(i*997)%(total-limit*topics)]
		page, err := s.Read(ctx, want, after, limit)
		if err != nil {
			b.Fatal(err)
		}
		if len(page.Events) != limit {
			b.Fatalf("page of %d events, want %d", len(page.Events), limit)
		}
		n += len(page.Events)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOpen measures Open and Close of a file of 100k events (100
// bytes of data each, with idempotency keys, over 50 topics), with the
// consistency check and without it. The file stays in the OS cache; a
// cold cache adds the time to read the file once.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "events.db")
	s, err := bolt.Open(path, store.Retention{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]store.Record, 500)
	for n := 0; n < 100_000; n += len(recs) {
		for i := range recs {
			recs[i] = store.Record{Topic: fmt.Sprint("topic-", (n+i)%50), Data: benchData, IdempotencyKey: fmt.Sprint("key-", n+i)}
		}
		if _, err := s.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		b.Run(fmt.Sprintf("skipcheck=%v", skip), func(b *testing.B) {
			for b.Loop() {
				s, err := bolt.Open(path, store.Retention{}, &bolt.Options{SkipCheck: skip})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
