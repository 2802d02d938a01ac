package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sseguard/sseguard/sse"
)

// eventStream returns n events as the naive hub writes them, with a
// heartbeat every tenth and pad bytes of padding in each.
func eventStream(n, pad int) []byte {
	var b bytes.Buffer
	now := time.Now().UnixNano()
	for i := range n {
		fmt.Fprintf(&b, "id: %d\ndata: %s\n\n", i+1, appendPayload(nil, int64(i), now, pad))
		if i%10 == 9 {
			b.WriteString(": keep-alive\n\n")
		}
	}
	return b.Bytes()
}

func newTestRun(events int) *run {
	r := &run{cfg: settings{events: events}, latency: new(histogram)}
	r.closing.Store(true) // the end of a test stream is not a disconnect
	return r
}

func newTestStream(r *run, src io.Reader) *stream {
	return &stream{r: r, lr: bufio.NewReaderSize(src, lineBufSize), seen: make([]uint64, (r.cfg.events+63)/64)}
}

func TestStreamReader(t *testing.T) {
	const n = 300
	tests := []struct {
		name  string
		input []byte
	}{
		{name: "LF", input: eventStream(n, 0)},
		{name: "CRLF", input: bytes.ReplaceAll(eventStream(n, 0), []byte("\n"), []byte("\r\n"))},
		{name: "long lines", input: eventStream(n, 3*lineBufSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRun(n)
			s := newTestStream(r, bytes.NewReader(tt.input))
			s.read()
			if got := s.unique.Load(); got != n {
				t.Errorf("unique %d, want %d", got, n)
			}
			if got := s.heartbeats.Load(); got != n/10 {
				t.Errorf("heartbeats %d, want %d", got, n/10)
			}
			if r.outOfOrder.Load() != 0 || r.duplicates.Load() != 0 || r.other.Load() != 0 {
				t.Errorf("out of order %d, duplicates %d, other %d", r.outOfOrder.Load(), r.duplicates.Load(), r.other.Load())
			}
		})
	}
}

// BenchmarkStreamReader and BenchmarkSSEParser compare the bench's line
// reader with the exact WHATWG parser on the same stream, per event: the
// reader must not allocate, so that ~19k streams fit in one process.
func BenchmarkStreamReader(b *testing.B) {
	input := eventStream(b.N, 0)
	s := newTestStream(newTestRun(b.N), bytes.NewReader(input))
	b.ReportAllocs()
	b.ResetTimer()
	s.read()
	if s.unique.Load() != int64(b.N) {
		b.Fatalf("read %d events, want %d", s.unique.Load(), b.N)
	}
}

func BenchmarkSSEParser(b *testing.B) {
	input := eventStream(b.N, 0)
	p := sse.NewParser(bytes.NewReader(input))
	h := new(histogram)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ev, err := p.Next()
		if err != nil {
			b.Fatal(err)
		}
		_, sent, ok := parsePayload([]byte(ev.Data))
		if !ok {
			b.Fatal("payload")
		}
		h.record(time.Since(time.Unix(0, sent)))
		if _, err := strconv.ParseUint(ev.ID, 10, 64); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleReaderMemory reports the heap and stack that idle readers
// hold, per reader, for both readers: the cost that decides how many streams
// one generator process holds.
func BenchmarkIdleReaderMemory(b *testing.B) {
	const n = 2000
	shared := newTestRun(20)
	for _, tt := range []struct {
		name  string
		start func(r io.Reader) func()
	}{
		{name: "bench reader", start: func(src io.Reader) func() {
			return newTestStream(shared, src).read
		}},
		{name: "sse.Parser", start: func(src io.Reader) func() {
			p := sse.NewParser(src)
			return func() {
				for {
					if _, err := p.Next(); err != nil {
						return
					}
				}
			}
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for range b.N {
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				writers := make([]*io.PipeWriter, n)
				done := make(chan struct{}, n)
				for i := range writers {
					pr, pw := io.Pipe()
					writers[i] = pw
					read := tt.start(pr)
					go func() { read(); done <- struct{}{} }()
					_, _ = pw.Write([]byte("id: 1\ndata: " + string(appendPayload(nil, 0, 1, 0)) + "\n\n"))
				}
				runtime.GC()
				runtime.ReadMemStats(&ms1)
				b.ReportMetric(float64((ms1.HeapInuse+ms1.StackInuse)-(ms0.HeapInuse+ms0.StackInuse))/n, "B/reader")
				for _, pw := range writers {
					pw.Close()
				}
				for range n {
					<-done
				}
			}
		})
	}
}
