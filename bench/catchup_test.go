package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
)

// BenchmarkCatchupFloor reads a topic's whole history straight from a bolt
// store, in pages of the given size: the floor that a catch-up over HTTP
// (bench/compare.sh catchup) is measured against (docs/benchmarks.md). The
// events are as compare.sh catchup publishes them: 100 bytes of data on one
// topic. SSEGUARD_CATCHUP_EVENTS sets their number (default 1,000,000).
//
// page=15 is the page the server reads with the default configuration
// (stream.queue_bytes over publish.max_data_bytes plus overhead); page=1000
// is the store's own default.
func BenchmarkCatchupFloor(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("SSEGUARD_CATCHUP_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SSEGUARD_CATCHUP_EVENTS=%q: want a positive count", v)
		}
		total = n
	}
	s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), store.Retention{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	data := strings.Repeat("x", 100)
	recs := make([]store.Record, 1000)
	for i := range recs {
		recs[i] = store.Record{Topic: "demo", Data: data}
	}
	for n := 0; n < total; n += len(recs) {
		if _, err := s.Append(ctx, recs[:min(len(recs), total-n)]); err != nil {
			b.Fatal(err)
		}
	}
	topics := []string{"demo"}
	for _, limit := range []int{15, 1000} {
		b.Run(fmt.Sprintf("page=%d", limit), func(b *testing.B) {
			var events, bytes int64
			for b.Loop() {
				after := "0"
				for {
					p, err := s.Read(ctx, topics, after, limit)
					if err != nil {
						b.Fatal(err)
					}
					for _, e := range p.Events {
						events++
						bytes += int64(len(e.Data))
						after = s.Next(after, topics, e)
					}
					if !p.More {
						break
					}
				}
			}
			if events != int64(b.N)*int64(total) {
				b.Fatalf("read %d events in %d passes, want %d each", events, b.N, total)
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(bytes)/(1<<20)/b.Elapsed().Seconds(), "dataMB/s")
		})
	}
}
