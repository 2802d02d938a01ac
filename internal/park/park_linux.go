//go:build linux

package park

import (
	"crypto/tls"
	"errors"
	"math"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sseguard/sseguard/sse"
)

// maxIov bounds the buffers of one sendmsg call (the kernel's IOV_MAX).
const maxIov = 1024

// wakeID is the epoll data of the eventfd that stops the loop.
const wakeID int32 = -1

var (
	crlf       = []byte("\r\n")
	lastChunk  = []byte("0\r\n\r\n")
	defComment = sse.AppendHeartbeat(nil)
	defExpired = sse.AppendRetry(nil, 0)
)

// defCut is the default Options.CutRetry.
func defCut() []byte { return sse.AppendRetry(nil, sse.CutRetry()) }

// Poller holds parked streams. Create it with New; Close stops it.
type Poller struct {
	opts    Options
	epfd    int
	evfd    int
	writers []*writer
	loopWG  sync.WaitGroup
	wg      sync.WaitGroup

	mu     sync.Mutex
	conns  map[int32]*Conn
	nextID int32
	closed bool

	// closeBy is when Close gives up on TLS writes (unix nanoseconds; 0
	// until Close): a TLS stream's writer never sets a later deadline.
	closeBy atomic.Int64
	flushes tlsFlushes
}

// Conn is one parked stream.
type Conn struct {
	p       *Poller
	w       *writer
	id      int32
	src     Source
	chunked bool
	expires int64 // unix nanoseconds; 0 for never

	queued    atomic.Bool  // in its writer's ready list
	lastWrite atomic.Int64 // unix nanoseconds
	stuck     atomic.Int64 // unix nanoseconds when the socket filled up; 0 when it is not full
	index     int          // in w.conns; guarded by w.mu

	mu        sync.Mutex
	fd        int // -1 once closed
	pending   [][]byte
	blocked   bool // the socket buffer is full; wait for EPOLLOUT
	input     int  // bytes the client sent since it was parked
	finishing bool // the last bytes are pending; close once written
	// size holds the first pending chunk's size line; see sizeLine.
	size [sizeLineMax]byte

	tlsState // a TLS stream's writes; see park_tls_linux.go
}

type writer struct {
	p    *Poller
	now  atomic.Int64 // unix nanoseconds, refreshed once per batch
	wake chan struct{}
	stop chan struct{}
	iov  []unix.Iovec // the writer goroutine's sendmsg scratch
	mu   sync.Mutex
	// ready and conns are guarded by mu.
	ready []*Conn
	conns []*Conn
}

// New starts a Poller: one epoll loop and opts.Writers writer goroutines.
func New(opts Options) (*Poller, error) {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = sse.DefaultHeartbeat
	}
	if len(opts.Comment) == 0 {
		opts.Comment = defComment
	}
	if opts.CutRetry == nil {
		opts.CutRetry = defCut
	}
	if len(opts.ExpiredRetry) == 0 {
		opts.ExpiredRetry = defExpired
	}
	if opts.Writers <= 0 {
		opts.Writers = runtime.GOMAXPROCS(0)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, errors.Join(ErrUnsupported, err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, errors.Join(ErrUnsupported, err)
	}
	p := &Poller{opts: opts, epfd: epfd, evfd: evfd, conns: make(map[int32]*Conn)}
	for range opts.Writers {
		w := &writer{p: p, wake: make(chan struct{}, 1), stop: make(chan struct{}), iov: make([]unix.Iovec, 0, maxIov)}
		p.writers = append(p.writers, w)
		p.wg.Add(1)
		go w.run()
	}
	p.loopWG.Add(1)
	go p.loop()
	return p, nil
}

// Len returns how many streams are parked.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Park takes over nc, a hijacked connection whose response headers (and
// any replay) are already written, and serves src on it until the client
// leaves, src is cut off, expires passes (zero: never) or the Poller
// closes. chunked says whether the response body is in chunked framing
// (HTTP/1.1) or close-delimited (HTTP/1.0). nc is closed in every case;
// src is closed when the stream ends, and also when Park fails.
//
// nc may be a *tls.Conn over TCP (HTTP/1.x over TLS): its writes then go
// through it, encrypted, from a goroutine that lives only while bytes are
// on their way (see park_tls_linux.go), and what it buffered for reading
// is dropped.
func (p *Poller) Park(nc net.Conn, src Source, chunked bool, expires time.Time) error {
	var tc *tls.Conn
	if t, ok := nc.(*tls.Conn); ok {
		tc = t
		nc = t.NetConn()
	}
	var fd int
	var err error
	if tc == nil {
		fd, err = dupFD(nc)
		nc.Close()
	} else if fd, err = rawFD(nc); err != nil {
		nc.Close()
	}
	if err != nil {
		src.Close()
		return err
	}
	c := &Conn{p: p, src: src, chunked: chunked, fd: fd}
	events := uint32(unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET)
	if tc != nil {
		c.tc = tc
		// Go's poller waits for room on the socket while a TLS write
		// blocks; this set only watches for the client leaving. A
		// deadline left from before the hijack must not fire on a
		// later write.
		events &^= unix.EPOLLOUT
		_ = nc.SetDeadline(time.Time{})
	}
	if !expires.IsZero() && expires.Before(maxTime) {
		c.expires = expires.UnixNano()
	}
	c.lastWrite.Store(time.Now().UnixNano())

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.closeFD(fd)
		src.Close()
		return ErrClosed
	}
	for {
		p.nextID++
		if p.nextID <= 0 {
			p.nextID = 1
		}
		if _, used := p.conns[p.nextID]; !used {
			break
		}
	}
	c.id = p.nextID
	c.w = p.writers[int(c.id)%len(p.writers)]
	p.conns[c.id] = c
	// Into the writer's list before epoll can report the client gone, so
	// that close always finds it there to remove.
	c.w.add(c)
	ev := unix.EpollEvent{Events: events, Fd: c.id}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(p.conns, c.id)
		c.w.remove(c)
		p.mu.Unlock()
		c.closeFD(fd)
		src.Close()
		return err
	}
	p.mu.Unlock()
	src.SetNotify(c.schedule)
	c.schedule()
	return nil
}

// maxTime is the latest time UnixNano can represent (in 2262); a later
// expiry (tokens valid "forever", exp 9999-12-31) means never.
var maxTime = time.Unix(0, math.MaxInt64)

// dupFD returns a close-on-exec duplicate of nc's descriptor, which shares
// its non-blocking mode.
func dupFD(nc net.Conn) (int, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, ErrUnsupported
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
	if dupErr != nil {
		return -1, dupErr
	}
	return fd, nil
}

// rawFD returns nc's descriptor itself, which stays nc's: a TLS stream
// keeps its connection for writing, and a duplicate would double the
// stream's descriptors. The epoll set drops it (EPOLL_CTL_DEL) before nc
// is closed, so the number cannot be reused under it.
func rawFD(nc net.Conn) (int, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, ErrUnsupported
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := raw.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// Close writes what final returns (for example a retry hint; final is
// called once per stream, so each can get its own jittered value and the
// reconnects spread out; nil writes nothing) to every parked stream, best
// effort and without blocking, ends each stream cleanly, closes them, and
// stops the Poller's goroutines.
func (p *Poller) Close(final func() []byte) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.closeBy.Store(time.Now().Add(closeWrite).UnixNano())
	conns := make([]*Conn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, w := range p.writers {
		close(w.stop)
	}
	p.wg.Wait()
	var tlsWG sync.WaitGroup
	for _, c := range conns {
		var b []byte
		if final != nil {
			b = final()
		}
		if c.tc != nil {
			// Each may block until closeBy: side by side, not in turn.
			tlsWG.Go(func() { c.finishTLS(b) })
			continue
		}
		c.finish(b)
	}
	tlsWG.Wait()
	p.waitFlushes()
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.evfd, one[:])
	p.loopWG.Wait()
	unix.Close(p.evfd)
	unix.Close(p.epfd)
}

// loop turns epoll readiness into writer work and closes streams whose
// client went away.
func (p *Poller) loop() {
	defer p.loopWG.Done()
	events := make([]unix.EpollEvent, 256)
	var sink [512]byte
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
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
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				c.close()
				continue
			}
			if ev.Events&unix.EPOLLIN != 0 && !c.drainInput(sink[:]) {
				c.close()
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.mu.Lock()
				was := c.blocked
				c.blocked = false
				c.stuck.Store(0)
				c.mu.Unlock()
				if was {
					c.schedule()
				}
			}
		}
	}
}

// maxInput is how much a parked client may send: an event stream expects
// nothing after the request, so a client that keeps sending is cut off
// rather than allowed to keep the epoll loop busy.
const maxInput = 4096

// drainInput reads and discards what the client sent and reports whether
// the connection should stay open.
func (c *Conn) drainInput(buf []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.fd >= 0 {
		n, err := unix.Read(c.fd, buf)
		switch {
		case n > 0:
			if c.input += n; c.input > maxInput {
				return false
			}
			continue
		case errors.Is(err, unix.EAGAIN):
			return true
		case errors.Is(err, unix.EINTR):
			continue
		default: // 0: the client closed; or a hard error
			return false
		}
	}
	return false
}

// schedule queues c for its writer.
func (c *Conn) schedule() {
	if c.tc != nil {
		c.kick()
		return
	}
	if !c.queued.CompareAndSwap(false, true) {
		return
	}
	w := c.w
	w.mu.Lock()
	w.ready = append(w.ready, c)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *writer) add(c *Conn) {
	w.mu.Lock()
	c.index = len(w.conns)
	w.conns = append(w.conns, c)
	w.mu.Unlock()
}

func (w *writer) remove(c *Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := c.index
	if i < 0 || i >= len(w.conns) || w.conns[i] != c {
		return
	}
	last := len(w.conns) - 1
	w.conns[i] = w.conns[last]
	w.conns[i].index = i
	w.conns[last] = nil
	w.conns = w.conns[:last]
	c.index = -1
}

func (w *writer) run() {
	defer w.p.wg.Done()
	tick := time.NewTicker(min(time.Second, w.p.opts.Heartbeat/4))
	defer tick.Stop()
	var batch, due []*Conn
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		case now := <-tick.C:
			w.now.Store(now.UnixNano())
			due = w.due(now, due[:0])
			for _, c := range due {
				c.heartbeatOrExpire(now)
			}
			clear(due)
		}
		w.mu.Lock()
		batch, w.ready = w.ready, batch[:0]
		w.mu.Unlock()
		w.now.Store(time.Now().UnixNano())
		for _, c := range batch {
			c.queued.Store(false)
			c.flush()
		}
		clear(batch)
	}
}

// due lists the streams that need a heartbeat, have expired, or whose
// client stopped reading for longer than the write timeout.
func (w *writer) due(now time.Time, dst []*Conn) []*Conn {
	idle := now.Add(-w.p.opts.Heartbeat).UnixNano()
	stuckSince := now.Add(-w.p.opts.WriteTimeout).UnixNano()
	nowNS := now.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		if s := c.stuck.Load(); s != 0 && s <= stuckSince {
			dst = append(dst, c)
			continue
		}
		if c.lastWrite.Load() <= idle || (c.expires != 0 && nowNS >= c.expires) {
			dst = append(dst, c)
		}
	}
	return dst
}

func (c *Conn) heartbeatOrExpire(now time.Time) {
	if s := c.stuck.Load(); s != 0 && now.UnixNano()-s >= int64(c.p.opts.WriteTimeout) {
		c.close() // the client stopped reading: nothing more can reach it
		return
	}
	c.mu.Lock()
	if c.fd < 0 || c.finishing {
		c.mu.Unlock()
		return
	}
	switch {
	case c.expires != 0 && now.UnixNano() >= c.expires:
		c.finishing = true
		c.pending = c.frame(c.pending, [][]byte{c.p.opts.ExpiredRetry}, true)
	case len(c.pending) == 0 && c.beatAllowed():
		c.pending = c.frame(c.pending, [][]byte{c.p.opts.Comment}, false)
	}
	c.mu.Unlock()
	c.flush()
}

// beatAllowed asks the source whether a heartbeat may go now; see
// HeartbeatGate. c.mu is held.
func (c *Conn) beatAllowed() bool {
	g, ok := c.src.(HeartbeatGate)
	return !ok || g.HeartbeatDue()
}

// frame appends parts to dst in the stream's framing: one chunk for all
// of them under chunked encoding, and the last chunk when final.
func (c *Conn) frame(dst, parts [][]byte, final bool) [][]byte {
	if !c.chunked {
		return append(dst, parts...)
	}
	total := 0
	for _, b := range parts {
		total += len(b)
	}
	if total > 0 {
		dst = append(dst, c.sizeLine(total, len(dst) == 0))
		dst = append(dst, parts...)
		dst = append(dst, crlf)
	}
	if final {
		dst = append(dst, lastChunk)
	}
	return dst
}

// sizeLineMax is the longest chunk size line: 16 hex digits and CRLF.
const sizeLineMax = 18

// sizeLine returns the chunk size line for n bytes. first says that
// nothing else is pending: the line can then live in c.size, which no
// pending buffer points into once everything before it was written.
func (c *Conn) sizeLine(n int, first bool) []byte {
	var b []byte
	if first {
		b = c.size[:0]
	} else {
		b = make([]byte, 0, sizeLineMax)
	}
	b = strconv.AppendInt(b, int64(n), 16)
	return append(b, '\r', '\n')
}

// pull takes what the source has into pending, which is empty. Under
// chunked encoding it all becomes one chunk: the size line, the events'
// own bytes and CRLF, each a buffer of its own, so that no event is
// copied. It reports whether the source was cut off.
func (c *Conn) pull() bool {
	if !c.chunked {
		var cut bool
		c.pending, cut = c.src.Pull(c.pending)
		return cut
	}
	c.pending = append(c.pending, nil) // the size line, once the size is known
	pulled, cut := c.src.Pull(c.pending)
	c.pending = pulled
	total := 0
	for _, b := range pulled[1:] {
		total += len(b)
	}
	if total == 0 { // nothing, which must not become "0\r\n", the body's end
		clear(pulled)
		c.pending = pulled[:0]
		return cut
	}
	c.pending[0] = c.sizeLine(total, true)
	c.pending = append(c.pending, crlf)
	return cut
}

// flush writes what is pending and pulls more from the source, until the
// socket is full, the source is empty, or a round limit passes (then it
// queues itself again so that other streams get their turn).
func (c *Conn) flush() {
	if c.tc != nil {
		c.kick()
		return
	}
	c.mu.Lock()
	for round := 0; ; round++ {
		if c.fd < 0 || c.blocked {
			c.mu.Unlock()
			return
		}
		if round == 16 {
			c.mu.Unlock()
			c.schedule()
			return
		}
		if len(c.pending) == 0 {
			if c.finishing {
				c.mu.Unlock()
				c.close()
				return
			}
			if cut := c.pull(); cut {
				c.finishing = true
				c.pending = c.frame(c.pending, [][]byte{c.p.opts.CutRetry()}, true)
			}
			if len(c.pending) == 0 {
				c.mu.Unlock()
				return
			}
		}
		n, err := send(c.fd, c.pending, c.w.iov)
		if n > 0 {
			c.lastWrite.Store(c.w.now.Load())
		}
		c.advance(n) // with n 0 it drops only empty buffers, which send skips
		switch {
		case err == nil, errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			c.blocked = true
			c.stuck.CompareAndSwap(0, c.w.now.Load())
		default:
			c.mu.Unlock()
			c.close()
			return
		}
	}
}

// send writes bufs without blocking and without SIGPIPE, gathered by one
// sendmsg call (at most maxIov of them), and returns how many bytes the
// socket took. iov is scratch for the call's vector: the writer's own, so
// that the hot path allocates nothing.
func send(fd int, bufs [][]byte, iov []unix.Iovec) (int, error) {
	iov = iov[:0]
	for _, b := range bufs {
		if len(iov) == cap(iov) {
			break
		}
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	if len(iov) == 0 {
		return 0, nil
	}
	var msg unix.Msghdr
	msg.Iov = &iov[0]
	msg.SetIovlen(len(iov))
	n, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)),
		unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// advance drops n written bytes from the front of pending.
func (c *Conn) advance(n int) {
	i := 0
	for i < len(c.pending) && n >= len(c.pending[i]) {
		n -= len(c.pending[i])
		i++
	}
	if i < len(c.pending) && n > 0 {
		c.pending[i] = c.pending[i][n:]
	}
	rest := copy(c.pending, c.pending[i:])
	clear(c.pending[rest:])
	c.pending = c.pending[:rest]
	if rest == 0 && cap(c.pending) > 64 {
		c.pending = nil // give back a buffer a burst grew
	}
}

// finish writes final after what is pending, once and without blocking,
// then closes the stream.
func (c *Conn) finish(final []byte) {
	c.mu.Lock()
	if c.fd >= 0 && !c.finishing && len(final) > 0 {
		c.finishing = true
		c.pending = c.frame(c.pending, [][]byte{final}, true)
	} else if c.fd >= 0 && !c.finishing && c.chunked {
		c.pending = append(c.pending, lastChunk)
	}
	if c.fd >= 0 && len(c.pending) > 0 {
		// Only Close calls finish, once the writers have stopped: their
		// scratch is free.
		_, _ = send(c.fd, c.pending, c.w.iov)
	}
	c.mu.Unlock()
	c.close()
}

// close ends the stream: the descriptor is closed, the Poller and writer
// forget it, and the source is closed. It is safe to call more than once.
func (c *Conn) close() {
	c.mu.Lock()
	fd := c.fd
	c.fd = -1
	c.pending = nil
	c.mu.Unlock()
	if fd < 0 {
		return
	}
	_ = unix.EpollCtl(c.p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	c.closeFD(fd)
	c.p.mu.Lock()
	delete(c.p.conns, c.id)
	c.p.mu.Unlock()
	c.w.remove(c)
	c.src.Close()
}
