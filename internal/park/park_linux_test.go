//go:build linux

package park

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type fakeSource struct {
	mu     sync.Mutex
	queue  [][]byte
	cut    bool
	notify func()
	closed chan struct{}
	once   sync.Once
}

func newSource() *fakeSource { return &fakeSource{closed: make(chan struct{})} }

func (f *fakeSource) Pull(dst [][]byte) ([][]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst = append(dst, f.queue...)
	f.queue = nil
	return dst, f.cut
}

func (f *fakeSource) SetNotify(fn func()) {
	f.mu.Lock()
	f.notify = fn
	f.mu.Unlock()
}

func (f *fakeSource) Close() { f.once.Do(func() { close(f.closed) }) }

func (f *fakeSource) push(b string) {
	f.mu.Lock()
	f.queue = append(f.queue, []byte(b))
	fn := f.notify
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (f *fakeSource) cutOff() {
	f.mu.Lock()
	f.cut = true
	fn := f.notify
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// parked starts a poller and returns a client-side reader of one parked
// stream's body and the server's source.
func parked(t *testing.T, opts Options, chunked bool) (*Poller, *fakeSource, *bufio.Reader, net.Conn) {
	t.Helper()
	src := newSource()
	p, body, client := parkedSource(t, opts, chunked, src)
	return p, src, body, client
}

// parkedSource is parked with a source of the test's.
func parkedSource(t *testing.T, opts Options, chunked bool, src Source) (*Poller, *bufio.Reader, net.Conn) {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(nil) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	_ = client.SetDeadline(time.Now().Add(20 * time.Second))
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	head := "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
	if chunked {
		head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	}
	if _, err := io.WriteString(srv, head); err != nil {
		t.Fatal(err)
	}
	if err := p.Park(srv, src, chunked, time.Time{}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(client)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, bufio.NewReader(res.Body), client
}

func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, line)
	}
	return line
}

func TestParkedStreamDeliversInOrder(t *testing.T) {
	for _, chunked := range []bool{true, false} {
		name := "http1.0"
		if chunked {
			name = "http1.1"
		}
		t.Run(name, func(t *testing.T) {
			_, src, body, _ := parked(t, Options{Heartbeat: time.Hour}, chunked)
			for i := 0; i < 50; i++ {
				src.push("data: " + strings.Repeat("x", i) + "\n\n")
			}
			for i := 0; i < 50; i++ {
				if got, want := readLine(t, body), "data: "+strings.Repeat("x", i)+"\n"; got != want {
					t.Fatalf("line %d = %q, want %q", i, got, want)
				}
				if got := readLine(t, body); got != "\n" {
					t.Fatalf("blank line %d = %q", i, got)
				}
			}
		})
	}
}

func TestParkedStreamHeartbeat(t *testing.T) {
	_, _, body, _ := parked(t, Options{Heartbeat: 20 * time.Millisecond}, true)
	for i := 0; i < 3; i++ {
		if got := readLine(t, body); got != ": keep-alive\n" {
			t.Fatalf("heartbeat line %q", got)
		}
		readLine(t, body)
	}
}

// gatedSource is a fakeSource that allows heartbeats only when told to.
type gatedSource struct {
	*fakeSource
	allow atomic.Bool
	asked chan struct{}
}

func (g *gatedSource) HeartbeatDue() bool {
	select {
	case g.asked <- struct{}{}:
	default:
	}
	return g.allow.Load()
}

// A source that may stop mid-event decides when a heartbeat goes: none
// while it says no (the event pushed after two refusals is the first
// thing the client reads), then one once it says yes.
func TestHeartbeatGate(t *testing.T) {
	src := &gatedSource{fakeSource: newSource(), asked: make(chan struct{})}
	_, body, _ := parkedSource(t, Options{Heartbeat: 20 * time.Millisecond}, true, src)
	for range 2 {
		select {
		case <-src.asked:
		case <-time.After(10 * time.Second):
			t.Fatal("the poller did not ask the gate within 10 s")
		}
	}
	src.push("data: x\n\n")
	if got := readLine(t, body); got != "data: x\n" {
		t.Fatalf("first line %q: a heartbeat went through a closed gate", got)
	}
	readLine(t, body)
	src.allow.Store(true)
	if got := readLine(t, body); got != ": keep-alive\n" {
		t.Fatalf("line %q, want the heartbeat the gate allowed", got)
	}
}

func TestCutStreamEndsWithRetry(t *testing.T) {
	_, src, body, _ := parked(t, Options{Heartbeat: time.Hour}, true)
	src.push("data: a\n\n")
	src.cutOff()
	rest, err := io.ReadAll(body) // ends cleanly: the last chunk arrives
	if err != nil {
		t.Fatalf("body did not end cleanly: %v", err)
	}
	// The default hint is sse.CutRetry's: jittered, 0.5 to 1.5 s.
	hint, ok := strings.CutPrefix(string(rest), "data: a\n\nretry: ")
	ms, err := strconv.Atoi(strings.TrimSuffix(hint, "\n\n"))
	if !ok || !strings.HasSuffix(hint, "\n\n") || err != nil || ms < 500 || ms >= 1500 {
		t.Fatalf("body %q, want the event and a retry of 500-1499 ms", rest)
	}
	select {
	case <-src.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("source not closed after the cut")
	}
}

func TestClientLeavingClosesSource(t *testing.T) {
	p, src, _, client := parked(t, Options{Heartbeat: time.Hour}, true)
	client.Close()
	select {
	case <-src.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("source not closed after the client left")
	}
	for i := 0; i < 1000 && p.Len() != 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Len() != 0 {
		t.Fatalf("%d streams still parked", p.Len())
	}
}

func TestCloseWritesFinal(t *testing.T) {
	p, src, body, _ := parked(t, Options{Heartbeat: time.Hour}, true)
	src.push("data: a\n\n")
	if got := readLine(t, body); got != "data: a\n" {
		t.Fatalf("got %q", got)
	}
	readLine(t, body)
	p.Close(func() []byte { return []byte("retry: 2000\n\n") })
	rest, err := io.ReadAll(body)
	if err != nil || string(rest) != "retry: 2000\n\n" {
		t.Fatalf("after Close: %q, %v", rest, err)
	}
}

func TestSlowReaderBlocksThenResumes(t *testing.T) {
	p, src, body, _ := parked(t, Options{Heartbeat: time.Hour}, true)
	big := "data: " + strings.Repeat("y", 64<<10) + "\n\n"
	const n = 200 // ~13 MB: more than the socket buffers hold
	go func() {
		for i := 0; i < n; i++ {
			src.push(big)
		}
	}()
	// Nobody reads until the socket is full and the writer waits for room.
	for deadline := time.Now().Add(10 * time.Second); !anyBlocked(p); {
		if time.Now().After(deadline) {
			t.Fatal("the socket never filled")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < n; i++ {
		if got := readLine(t, body); got != big[:len(big)-1] {
			t.Fatalf("event %d: %d bytes", i, len(got))
		}
		readLine(t, body)
	}
}

func TestParkRefusesNonTCP(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(nil)
	a, b := net.Pipe()
	defer b.Close()
	src := newSource()
	if err := p.Park(a, src, true, time.Time{}); err == nil {
		t.Fatal("parked a net.Pipe")
	}
	select {
	case <-src.closed:
	default:
		t.Fatal("source not closed when Park failed")
	}
}

func TestStuckReaderIsClosed(t *testing.T) {
	p, src, _, client := parked(t, Options{Heartbeat: time.Hour, WriteTimeout: 100 * time.Millisecond}, true)
	_ = client // never read again
	big := "data: " + strings.Repeat("z", 64<<10) + "\n\n"
	for i := 0; i < 300; i++ { // ~20 MB: the socket buffers fill
		src.push(big)
	}
	select {
	case <-src.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("a client that stopped reading is still parked after 20 s")
	}
	for i := 0; i < 1000 && p.Len() != 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Len() != 0 {
		t.Fatalf("%d streams still parked", p.Len())
	}
}

// TestClientGoneWhileParkingLeaksNothing parks connections whose clients
// already reset them: epoll reports them at once, racing Park itself.
func TestClientGoneWhileParkingLeaksNothing(t *testing.T) {
	p, err := New(Options{Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 300
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close() // a reset, before the server parks
		_ = p.Park(srv, newSource(), true, time.Time{})
	}
	count := func() int {
		total := 0
		for _, w := range p.writers {
			w.mu.Lock()
			total += len(w.conns)
			w.mu.Unlock()
		}
		return total
	}
	for i := 0; i < 2000 && (count() != 0 || p.Len() != 0); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if c := count(); c != 0 || p.Len() != 0 {
		t.Fatalf("%d closed streams left in the writers' lists, %d parked", c, p.Len())
	}
}

// anyBlocked reports whether a stream of p waits for its socket to drain.
func anyBlocked(p *Poller) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.mu.Lock()
		b := c.blocked
		c.mu.Unlock()
		if b {
			return true
		}
	}
	return false
}

// TestPullFramesWithoutCopying: under HTTP/1.1 what one Pull returns goes
// out as one chunk whose size line and CRLF are buffers of their own, and
// whose events are the source's own slices, not copies.
func TestPullFramesWithoutCopying(t *testing.T) {
	src := newSource()
	events := []string{"data: one\n\n", "id: 2\ndata: two\n\n"}
	for _, e := range events {
		src.push(e)
	}
	shared := append([][]byte(nil), src.queue...)
	c := &Conn{src: src, chunked: true}
	c.mu.Lock()
	cut := c.pull()
	pending := c.pending
	c.mu.Unlock()
	if cut {
		t.Fatal("pull reported a cut")
	}
	total := len(events[0]) + len(events[1])
	want := []string{strconv.FormatInt(int64(total), 16) + "\r\n", events[0], events[1], "\r\n"}
	if len(pending) != len(want) {
		t.Fatalf("pending has %d buffers %q, want %q", len(pending), pending, want)
	}
	for i, w := range want {
		if string(pending[i]) != w {
			t.Fatalf("buffer %d = %q, want %q", i, pending[i], w)
		}
	}
	for i, b := range shared {
		if &pending[1+i][0] != &b[0] {
			t.Errorf("event %d was copied: the writer must send the source's bytes", i)
		}
	}

	// Nothing waiting, or only empty slices: nothing pending, not an
	// empty chunk (which would end the body).
	for _, queue := range [][][]byte{nil, {{}, {}}} {
		src.queue = queue
		c.pending = c.pending[:0]
		c.mu.Lock()
		c.pull()
		c.mu.Unlock()
		if len(c.pending) != 0 {
			t.Fatalf("pulling %q left %q pending", queue, c.pending)
		}
	}
}

// TestSendAllocatesNothing: the writer gathers a stream's buffers with its
// own iovec scratch, so a fan-out to 10k streams does not allocate 10k
// vectors.
func TestSendAllocatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := dupFD(srv)
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	bufs := [][]byte{[]byte("b\r\n"), []byte("data: x\n\n"), crlf}
	iov := make([]unix.Iovec, 0, maxIov)
	const runs = 100 // 1.4 KB in all: the socket buffer takes it unread
	allocs := testing.AllocsPerRun(runs, func() {
		if n, err := send(fd, bufs, iov); n != 14 || err != nil {
			t.Fatalf("send = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("send allocates %.1f times per call", allocs)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(io.LimitReader(client, 14*(runs+1)))
	if err != nil || string(got[:14]) != "b\r\ndata: x\n\n\r\n" {
		t.Fatalf("the client read %q, %v", got, err)
	}
}
