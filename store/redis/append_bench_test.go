package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// BenchmarkAppendCost appends batches shaped like the hub's under a
// publish load (one topic or sixteen, the batch size the committer sees
// with 64 publishers) and reports, besides events/s, what each event
// costs Redis: redis-cpu-µs/event from INFO cpu (the server's whole CPU,
// network included) and script-µs/event from INFO commandstats (the time
// inside the append script). Those are the figures to compare across
// script changes: unlike events/s they do not move with the load of a
// shared machine. Run:
//
//	go test -run '^$' -bench AppendCost -benchtime 20000x -count 3 ./store/redis/
func BenchmarkAppendCost(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{AppendOnly: true, Fsync: "everysec"})
	data := "hello world 0123456789"
	for _, c := range []struct{ batch, topics int }{{1, 1}, {24, 1}, {64, 16}} {
		b.Run(fmt.Sprintf("batch=%d/topics=%d", c.batch, c.topics), func(b *testing.B) {
			s := openStore(b, Config{Client: testClient(srv.Addr), Retention: store.Retention{MaxEventsPerTopic: 10000}})
			recs := make([]store.Record, c.batch)
			for i := range recs {
				recs[i] = store.Record{Topic: fmt.Sprint("topic-", i%c.topics), Data: data}
			}
			ctx := context.Background()
			cpu0, script0 := redisCost(b, srv)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if _, err := s.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
				n += len(recs)
			}
			cpu1, script1 := redisCost(b, srv)
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric((cpu1-cpu0)/float64(n), "redis-cpu-µs/event")
			b.ReportMetric((script1-script0)/float64(n), "script-µs/event")
		})
	}
}

// redisCost returns the server's CPU time and the time spent in scripts
// (EVALSHA and EVAL), in µs.
func redisCost(b *testing.B, srv *redistest.Server) (cpu, script float64) {
	info, err := srv.Do("INFO", "cpu")
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
		cpu += infoFloat(info, f) * 1e6
	}
	stats, err := srv.Do("INFO", "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	for _, cmd := range []string{"cmdstat_evalsha:", "cmdstat_eval:"} {
		if _, rest, ok := strings.Cut(stats, cmd); ok {
			script += infoFloat(rest, "usec=")
		}
	}
	return cpu, script
}

// infoFloat reads the number after field in an INFO reply.
func infoFloat(info, field string) float64 {
	_, rest, ok := strings.Cut(info, field)
	if !ok {
		return 0
	}
	end := strings.IndexAny(rest, ",\r\n")
	if end >= 0 {
		rest = rest[:end]
	}
	v, _ := strconv.ParseFloat(rest, 64)
	return v
}
