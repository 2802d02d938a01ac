//go:build linux

package park

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchSource is a Source that hands out what the benchmark pushed.
type benchSource struct {
	mu     sync.Mutex
	queue  [][]byte
	notify func()
}

func (s *benchSource) Pull(dst [][]byte) ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	return dst, false
}

func (s *benchSource) SetNotify(fn func()) {
	s.mu.Lock()
	s.notify = fn
	s.mu.Unlock()
}

func (s *benchSource) Close() {}

func (s *benchSource) push(b []byte) {
	s.mu.Lock()
	s.queue = append(s.queue, b)
	fn := s.notify
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// BenchmarkWriter writes one event to each of 100 parked HTTP/1.1 streams
// on loopback TCP and waits until every client has read it: the writers'
// framing, their system calls and the kernel's loopback path.
func BenchmarkWriter(b *testing.B) { benchWriter(b, false) }

// BenchmarkWriterTLS is BenchmarkWriter over TLS 1.3: the parked streams
// encrypt through their *tls.Conn, and the clients decrypt (their CPU is
// in the figure too, as the kernel's is in both).
func BenchmarkWriterTLS(b *testing.B) { benchWriter(b, true) }

func benchWriter(b *testing.B, useTLS bool) {
	const streams = 100
	p, err := New(Options{Heartbeat: time.Hour})
	if err != nil {
		b.Skipf("parking unavailable: %v", err)
	}
	defer p.Close(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()

	var got, want atomic.Int64
	arrived := make(chan struct{}, 1)
	var readers sync.WaitGroup
	srcs := make([]*benchSource, streams)
	for i := range srcs {
		var client, srv net.Conn
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		srv, err = ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		if useTLS {
			client, srv = handshakePair(b, client, srv)
		}
		srcs[i] = &benchSource{}
		if err := p.Park(srv, srcs[i], true, time.Time{}); err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 && got.Add(int64(n)) == want.Load() {
					arrived <- struct{}{}
				}
				if err != nil {
					if err != io.EOF && !strings.Contains(err.Error(), "closed") {
						b.Error(err)
					}
					return
				}
			}
		}()
	}
	defer readers.Wait()
	defer p.Close(nil) // ends the readers before they are waited for

	wire := []byte("id: 1\nevent: price\ndata: " + strings.Repeat("x", 200) + "\n\n")
	// On the wire, each event is one chunk: size line, event, CRLF.
	perStream := int64(len(strconv.FormatInt(int64(len(wire)), 16)) + 2 + len(wire) + 2)
	b.SetBytes(perStream * streams)
	stall := time.NewTimer(time.Hour)
	defer stall.Stop()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		want.Add(perStream * streams)
		// The source hands out the event's wire bytes, shared by every
		// stream, as a hub subscriber does; the writers frame them.
		for _, s := range srcs {
			s.push(wire)
		}
		stall.Reset(20 * time.Second)
		select {
		case <-arrived:
		case <-stall.C:
			b.Fatalf("read %d bytes of %d", got.Load(), want.Load())
		}
	}
	b.StopTimer()
}

// handshakePair runs a TLS handshake between the two ends of a loopback
// connection and returns them as TLS connections.
func handshakePair(tb testing.TB, client, srv net.Conn) (net.Conn, net.Conn) {
	tb.Helper()
	cert, pool := selfSigned(tb)
	tc := tls.Client(client, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	ts := tls.Server(srv, &tls.Config{Certificates: []tls.Certificate{cert}})
	errc := make(chan error, 1)
	go func() { errc <- tc.Handshake() }()
	if err := ts.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return tc, ts
}
