//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sseguard/sseguard/internal/park"
	"github.com/sseguard/sseguard/sse"
)

// parker serves parked streams without a goroutine or a buffer each: the
// client's side on a park.Poller (the hub's), the upstream's body on an
// epoll set of its own, each stream a relay between them.
//
// Lock order: park's (Poller, then a stream's Conn.mu, which is held
// across relay.Pull and relay.HeartbeatDue), then parker.mu or
// upPoller.mu, leaves both. relay.Close runs with no lock held.
type parker struct {
	poller *park.Poller
	up     *upPoller
	wg     sync.WaitGroup // one count per relay until its Close

	mu       sync.Mutex
	relays   map[*relay]struct{}
	stopping bool
}

func newParker(beat, writeTimeout time.Duration) (*parker, error) {
	if beat <= 0 {
		beat = math.MaxInt64 / 4 // off: relays refuse every heartbeat
	}
	poller, err := park.New(park.Options{
		Heartbeat:    beat,
		Comment:      heartbeat,
		CutRetry:     func() []byte { return nil }, // an upstream that ends ends the stream cleanly, as it was
		WriteTimeout: writeTimeout,
	})
	if err != nil {
		return nil, err
	}
	up, err := newUpPoller()
	if err != nil {
		poller.Close(nil)
		return nil, err
	}
	return &parker{poller: poller, up: up, relays: map[*relay]struct{}{}}, nil
}

var errParkerStopping = errors.New("proxy: stopping")

// park serves r between client, a hijacked connection whose response head
// is written (chunked says whether its body is chunked), and upstream,
// whose response head was read. Both connections are closed in every case,
// and r too.
func (k *parker) park(client, upstream net.Conn, chunked bool, r *relay) error {
	fd, err := dupFD(upstream)
	upstream.Close()
	if err != nil {
		client.Close()
		return err
	}
	r.k, r.fd = k, fd
	k.mu.Lock()
	if k.stopping {
		k.mu.Unlock()
		unix.Close(fd)
		client.Close()
		return errParkerStopping
	}
	k.relays[r] = struct{}{}
	k.wg.Add(1)
	k.mu.Unlock()
	if !r.expires.IsZero() {
		r.expiry = time.AfterFunc(time.Until(r.expires), func() {
			r.expired.Store(true)
			r.wake(false)
		})
	}
	if err := k.up.add(r); err != nil {
		r.Close()
		client.Close()
		return err
	}
	// Park calls r.Close, and closes client, if it fails.
	return k.poller.Park(client, r, chunked, time.Time{})
}

// count returns how many streams are parked.
func (k *parker) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.relays)
}

// close ends every parked stream at its next event boundary, waits for
// them at most timeout, then cuts those left (their client gets the end of
// the body where it is: an unfinished event is discarded) and stops.
func (k *parker) close(timeout time.Duration) {
	k.mu.Lock()
	k.stopping = true
	relays := make([]*relay, 0, len(k.relays))
	for r := range k.relays {
		relays = append(relays, r)
	}
	k.mu.Unlock()
	for _, r := range relays {
		r.stop.Store(true)
		r.wake(false)
	}
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
	k.poller.Close(nil)
	<-done
	k.up.close()
}

// dupFD returns a close-on-exec duplicate of nc's descriptor, which shares
// its non-blocking mode.
func dupFD(nc net.Conn) (int, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, park.ErrUnsupported
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// relayBuffers hold what one read of an upstream takes, from the read until
// the client's socket took it: a stream holds one only while bytes are on
// their way, never while it is idle.
var relayBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// relay is one parked stream's upstream body as its park.Source: it reads
// the body when epoll says it is readable and the client has taken what
// came before, undoes the body's framing, and keeps the guarantees of
// streamBody: a heartbeat only at an event boundary, a leading BOM
// stripped, the end of an upstream reported once, and at shutdown or
// expiry the stream ended at its next event boundary with its final retry.
type relay struct {
	k        *parker
	fd       int
	id       int32 // in k.up
	notify   atomic.Pointer[func()]
	readable atomic.Bool // epoll said so, and a read did not since find it empty
	hup      atomic.Bool // epoll said the upstream hung up or failed
	stop     atomic.Bool // shutdown: end at the next boundary
	expired  atomic.Bool // the credentials ran out: end at the next boundary
	closed   atomic.Bool
	expires  time.Time
	expiry   *time.Timer
	beats    bool // heartbeats are on
	hooks    *streamHooks

	// Guarded by the stream's park lock (Pull and HeartbeatDue).
	pre      []byte // body bytes read along with the response head
	framing  int
	remain   int64 // framingLength: bytes left
	dc       dechunker
	b        boundary
	bomDone  bool
	head     []byte // the first bytes, while they may be a BOM's beginning
	held     *[]byte
	skipped  bool // a heartbeat was skipped mid-event since the last bytes
	stopping bool
	final    []byte
	ended    bool
}

func newRelay(pre []byte, framing int, length int64, heartbeats bool, expires time.Time, hooks *streamHooks) *relay {
	r := &relay{pre: pre, framing: framing, remain: length, beats: heartbeats, expires: expires, hooks: hooks}
	if len(pre) == 0 {
		r.pre = nil
	}
	r.readable.Store(true) // epoll reports a socket readable when it is added, but read once anyway
	return r
}

// wake tells the stream's writer to pull; readable says epoll reported the
// upstream readable.
func (r *relay) wake(readable bool) {
	if readable {
		r.readable.Store(true)
	}
	if f := r.notify.Load(); f != nil {
		(*f)()
	}
}

// SetNotify implements park.Source.
func (r *relay) SetNotify(fn func()) { r.notify.Store(&fn) }

// Pull implements park.Source.
func (r *relay) Pull(dst [][]byte) ([][]byte, bool) {
	r.release()
	if r.ended {
		return dst, true
	}
	if !r.stopping {
		switch {
		case r.stop.Load():
			r.stopping, r.final = true, sse.AppendRetry(nil, sse.ShutdownRetry())
		case r.expired.Load():
			r.stopping, r.final = true, expiredRetry
			r.hooks.onExpire()
		}
	}
	if r.stopping && r.b.at() {
		return r.end(dst), true
	}
	for range 64 {
		data, eof, err := r.read()
		data = r.stripBOM(data, eof || err != nil)
		if r.stopping {
			// Up to the boundary only: what follows would start an event
			// the client must not get any more.
			if n := r.b.through(data); n >= 0 {
				r.b.feed(data[:n])
				if n > 0 {
					dst = append(dst, data[:n])
				}
				return r.end(dst), true
			}
		}
		if len(data) > 0 {
			r.b.feed(data)
			r.skipped = false
			dst = append(dst, data)
		}
		if eof || err != nil {
			r.ended = true
			r.hooks.onEnd(!r.b.at(), err)
			return dst, true
		}
		if len(data) > 0 || !r.readable.Load() {
			return dst, false
		}
	}
	// Framing only so far, and more to read: let other streams go first.
	r.wake(false)
	return dst, false
}

// end ends a stopping stream, after its final block.
func (r *relay) end(dst [][]byte) [][]byte {
	r.ended = true
	if len(r.final) > 0 {
		dst = append(dst, r.final)
	}
	return dst
}

// read reads what the upstream has (the bytes that came with the head
// first) and returns the body's data in it, with whether the body ended
// and how.
func (r *relay) read() (data []byte, eof bool, err error) {
	if r.framing == framingLength && r.remain == 0 {
		return nil, true, nil
	}
	bp := relayBuffers.Get().(*[]byte)
	buf := *bp
	n := 0
	switch {
	case len(r.pre) > 0:
		n = copy(buf, r.pre)
		if r.pre = r.pre[n:]; len(r.pre) == 0 {
			r.pre = nil
		}
	case r.readable.Load():
		r.readable.Store(false) // before the read: a readiness reported during it is kept
		for {
			m, rerr := unix.Read(r.fd, buf)
			switch {
			case m == len(buf):
				n = m
				r.readable.Store(true) // perhaps more: the next Pull reads on
			case m > 0:
				// A short read took all there was; bytes arriving after it
				// make epoll report the socket again, as it reports every
				// arrival. That saves a read that would find nothing, unless
				// the upstream hung up: its end may be waiting behind.
				n = m
				if r.hup.Load() {
					r.readable.Store(true)
				}
			case errors.Is(rerr, unix.EINTR):
				continue
			case errors.Is(rerr, unix.EAGAIN):
			case rerr != nil:
				err = rerr
			default:
				eof = true
			}
			break
		}
	}
	if n > 0 {
		switch r.framing {
		case framingChunked:
			k, done, derr := r.dc.decode(buf[:n])
			n, eof, err = k, done, derr
		case framingLength:
			if int64(n) >= r.remain {
				n, eof = int(r.remain), true
			}
			r.remain -= int64(n)
		}
	} else if eof && r.framing != framingClose {
		eof, err = false, io.ErrUnexpectedEOF // closed before the body's end
	}
	if n == 0 {
		relayBuffers.Put(bp)
		return nil, eof, err
	}
	r.release()
	r.held = bp
	return buf[:n], eof, err
}

// release gives back the buffer of the last read: Pull is called only once
// everything it returned before was written.
func (r *relay) release() {
	if r.held != nil {
		relayBuffers.Put(r.held)
		r.held = nil
	}
}

// stripBOM drops one byte order mark at the start of the body, holding the
// first bytes back while they could be one; last says the body ends.
func (r *relay) stripBOM(data []byte, last bool) []byte {
	if r.bomDone || len(data) == 0 && !last {
		return data
	}
	if r.head == nil && len(data) >= len(utf8BOM) {
		r.bomDone = true
		return bytes.TrimPrefix(data, utf8BOM)
	}
	r.head = append(r.head, data...)
	if !last && len(r.head) < len(utf8BOM) && bytes.HasPrefix(utf8BOM, r.head) {
		return nil
	}
	r.bomDone = true
	out := bytes.TrimPrefix(r.head, utf8BOM)
	r.head = nil
	return out
}

// HeartbeatDue implements park.HeartbeatGate: a heartbeat only at an event
// boundary.
func (r *relay) HeartbeatDue() bool {
	if !r.beats {
		return false
	}
	if r.b.at() {
		r.skipped = false
		r.hooks.onBeat(true)
		return true
	}
	if !r.skipped {
		r.skipped = true
		r.hooks.onBeat(false)
	}
	return false
}

// Close implements park.Source: the stream ended, the upstream is closed.
func (r *relay) Close() {
	if !r.closed.CompareAndSwap(false, true) {
		return
	}
	if r.expiry != nil {
		r.expiry.Stop()
	}
	r.k.up.remove(r)
	r.release()
	r.k.mu.Lock()
	delete(r.k.relays, r)
	r.k.mu.Unlock()
	r.k.wg.Done()
}

// wakeID is the epoll data of the eventfd that stops the upstream loop.
const wakeID int32 = -1

// upPoller watches parked streams' upstream connections for readability
// and wakes their writer.
type upPoller struct {
	epfd, evfd int
	done       chan struct{}

	mu     sync.Mutex
	relays map[int32]*relay
	next   int32
}

func newUpPoller() (*upPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, err
	}
	u := &upPoller{epfd: epfd, evfd: evfd, done: make(chan struct{}), relays: map[int32]*relay{}}
	go u.loop()
	return u, nil
}

func (u *upPoller) add(r *relay) error {
	u.mu.Lock()
	for {
		if u.next++; u.next <= 0 {
			u.next = 1
		}
		if _, used := u.relays[u.next]; !used {
			break
		}
	}
	r.id = u.next
	u.relays[r.id] = r
	u.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: r.id}
	if err := unix.EpollCtl(u.epfd, unix.EPOLL_CTL_ADD, r.fd, &ev); err != nil {
		u.mu.Lock()
		delete(u.relays, r.id)
		u.mu.Unlock()
		r.id = 0
		return err
	}
	return nil
}

// remove forgets r and closes its upstream connection.
func (u *upPoller) remove(r *relay) {
	if r.id != 0 {
		_ = unix.EpollCtl(u.epfd, unix.EPOLL_CTL_DEL, r.fd, nil)
		u.mu.Lock()
		delete(u.relays, r.id)
		u.mu.Unlock()
	}
	unix.Close(r.fd)
}

func (u *upPoller) loop() {
	defer close(u.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(u.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == wakeID {
				return
			}
			u.mu.Lock()
			r := u.relays[ev.Fd]
			u.mu.Unlock()
			if r != nil {
				if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
					r.hup.Store(true)
				}
				r.wake(true) // the read says what happened
			}
		}
	}
}

// close stops the loop; every relay was removed before.
func (u *upPoller) close() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(u.evfd, one[:])
	<-u.done
	unix.Close(u.evfd)
	unix.Close(u.epfd)
}
