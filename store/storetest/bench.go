package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/sseguard/sseguard/store"
)

// PatternTopics is how many topics BenchPatternReplay spreads its events
// over under the pattern it reads, with as many other topics beside them.
const PatternTopics = 10_000

// BenchPatternReplay measures the replay of a reader of "orders/*" on a
// store of 2×PatternTopics topics: PatternTopics under "orders/" with two
// events each, and as many others with one event each. Its cases read one
// page (the store's default limit) after a cursor that is 200 events of
// the pattern behind ("behind=200", a reconnect), from the start
// ("from=start"), and, for reference, 200 events of one exact topic
// ("exact"). s must be empty and read patterns.
func BenchPatternReplay(b *testing.B, s store.Store) {
	ctx := context.Background()
	var orders []store.Event
	var recs []store.Record
	flush := func() {
		got, err := s.Append(ctx, recs)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range got {
			if store.Match("orders/*", a.Event.Topic) {
				orders = append(orders, a.Event)
			}
		}
		recs = recs[:0]
	}
	for round := range 2 {
		for i := range PatternTopics {
			recs = append(recs, store.Record{Topic: fmt.Sprint("orders/", i), Data: fmt.Sprint(round)})
			if round == 0 {
				recs = append(recs, store.Record{Topic: fmt.Sprint("misc/", i), Data: "m"})
			}
			if len(recs) >= 500 {
				flush()
			}
		}
	}
	flush()
	for range 200 {
		recs = append(recs, store.Record{Topic: "exact", Data: "e"})
	}
	flush()
	pattern := []string{"orders/*"}
	behind := cursorAfter(s, "", pattern, orders[:len(orders)-200])
	run := func(name string, topics []string, after string, want int) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := s.Read(ctx, topics, after, 0)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Events) != want {
					b.Fatalf("read %d events, want %d", len(page.Events), want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/read")
		})
	}
	run("behind=200", pattern, behind, 200)
	page, err := s.Read(ctx, pattern, "", 0)
	if err != nil {
		b.Fatal(err)
	}
	run("from=start", pattern, "", len(page.Events))
	run("exact", []string{"exact"}, "", 200)
}
