package server_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
)

// BenchmarkCatchup is one client resuming from the oldest event of a
// bolt-backed hub and reading the whole history over loopback HTTP/1.1:
// the server's side of bench/compare.sh catchup, in one process so that
// it can be profiled (-cpuprofile). Its floor is bench's
// BenchmarkCatchupFloor. SSEGUARD_CATCHUP_EVENTS sets the history's size
// (default 200,000 events of 100 bytes on one topic).
func BenchmarkCatchup(b *testing.B) {
	total := 200_000
	if v := os.Getenv("SSEGUARD_CATCHUP_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SSEGUARD_CATCHUP_EVENTS=%q: want a positive count", v)
		}
		total = n
	}
	st, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), store.Retention{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	recs := make([]store.Record, 1000)
	for i := range recs {
		recs[i] = store.Record{Topic: "demo", Data: strings.Repeat("x", 100)}
	}
	for n := 0; n < total; n += len(recs) {
		if _, err := st.Append(ctx, recs[:min(len(recs), total-n)]); err != nil {
			b.Fatal(err)
		}
	}
	ts := servertest.Start(b, nil, servertest.WithStore(st))
	tok := ts.Token(b, "reader", auth.Permissions{Subscribe: []string{"demo"}})
	req := []byte("GET /events?topic=demo HTTP/1.1\r\nHost: " + ts.Addr +
		"\r\nAccept: text/event-stream\r\nLast-Event-ID: 0\r\nAuthorization: Bearer " + tok + "\r\n\r\n")
	var wire int64
	b.ResetTimer()
	for b.Loop() {
		wire += catchUp(b, ts.Addr, req, total)
	}
	b.ReportMetric(float64(b.N)*float64(total)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(wire)/(1<<20)/b.Elapsed().Seconds(), "wireMB/s")
}

// catchUp sends req and reads the stream until want id lines came; it
// returns the bytes read.
func catchUp(b *testing.B, addr string, req []byte, want int) int64 {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	var n int64
	got := 0
	for got < want {
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatalf("after %d of %d events: %v", got, want, err)
		}
		n += int64(len(line))
		if bytes.HasPrefix(line, []byte("id:")) {
			got++
		}
	}
	return n
}
