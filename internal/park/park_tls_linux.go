//go:build linux

package park

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A parked TLS stream is written through its *tls.Conn, which encrypts
// and writes on the Go runtime's poller: a write the socket cannot take
// at once parks the writing goroutine, not the thread, and a deadline
// bounds it. A crypto/tls write cannot be resumed after a timeout (the
// connection's write side is then broken for good), so the non-blocking
// sendmsg path of plain streams cannot serve TLS; instead each TLS
// stream gets a goroutine only while it has bytes to write, started by
// kick and ended as soon as the source is empty. An idle TLS stream has
// none, and no buffer: the descriptor still sits on the epoll set, which
// reports the client leaving. (A pool of writers handed each stream over
// an unbuffered channel, kept alive between events so that their grown
// stacks are reused, was measured against this: about 10% more server
// CPU per delivery in a 10k-stream fan-out, for its handoffs and idle
// timers.)

// closeWrite bounds the final writes of Close on TLS streams, all of them
// side by side.
const closeWrite = time.Second

// tlsState is the part of a Conn that only TLS streams use.
type tlsState struct {
	tc      *tls.Conn   // nil for a plain stream
	wmu     sync.Mutex  // held by whoever writes to tc; taken before Conn.mu
	writing atomic.Bool // a flush goroutine runs (or is about to)
	again   atomic.Bool // something was scheduled since that goroutine last pulled
	// deadline is the write deadline last set on tc (unix nanoseconds),
	// guarded by wmu; see armDeadline.
	deadline int64
}

// tlsBuf holds the gathered plaintext of one TLS write.
var tlsBuf = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledTLSBuf is the largest buffer put back into tlsBuf: a burst's
// buffer must not stay pinned.
const maxPooledTLSBuf = 64 << 10

// kick starts c's flush goroutine unless one runs; a running one pulls
// again before it ends. It never blocks: the source calls it with its
// locks held.
func (c *Conn) kick() {
	c.again.Store(true)
	if c.writing.CompareAndSwap(false, true) {
		c.p.startFlush(c)
	}
}

// tlsFlushes counts a Poller's running TLS flush goroutines, so that
// Close returns only once they have ended (and closed what they close).
type tlsFlushes struct {
	mu     sync.Mutex // a leaf; guards closed and the Adds of wg
	closed bool
	wg     sync.WaitGroup
}

// startFlush starts c's flush goroutine. After Close it does nothing:
// Close wrote every stream's last bytes itself.
func (p *Poller) startFlush(c *Conn) {
	p.flushes.mu.Lock()
	if p.flushes.closed {
		p.flushes.mu.Unlock()
		c.writing.Store(false)
		return
	}
	p.flushes.wg.Add(1)
	p.flushes.mu.Unlock()
	go func() {
		defer p.flushes.wg.Done()
		c.flushTLS()
	}()
}

// waitFlushes stops new flush goroutines and waits for the running ones,
// which Close's deadline (closeBy) bounds.
func (p *Poller) waitFlushes() {
	p.flushes.mu.Lock()
	p.flushes.closed = true
	p.flushes.mu.Unlock()
	p.flushes.wg.Wait()
}

// flushTLS writes until nothing is pending or scheduled. The again flag
// is cleared before writing and checked after writing is cleared, so a
// kick that found writing set is never lost.
func (c *Conn) flushTLS() {
	for {
		c.again.Store(false)
		if c.writeTLS() {
			c.close()
		}
		c.writing.Store(false)
		if !c.again.Load() || !c.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

// writeTLS writes what is pending, then what the source has, until the
// source is empty or the stream ends, and reports whether the stream must
// be closed (the caller does it once c.wmu is released). c.mu is held
// only to take the bytes, never across a write: the epoll loop and the
// heartbeat check take it.
func (c *Conn) writeTLS() (end bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	bp := tlsBuf.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledTLSBuf {
			*bp = (*bp)[:0]
			tlsBuf.Put(bp)
		}
	}()
	for {
		c.mu.Lock()
		if c.fd < 0 {
			c.mu.Unlock()
			return false
		}
		if len(c.pending) == 0 {
			if c.finishing {
				c.mu.Unlock()
				return true
			}
			if cut := c.pull(); cut {
				c.finishing = true
				c.pending = c.frame(c.pending, [][]byte{c.p.opts.CutRetry()}, true)
			}
			if len(c.pending) == 0 {
				c.mu.Unlock()
				return false
			}
		}
		buf := (*bp)[:0]
		for _, b := range c.pending {
			buf = append(buf, b...)
		}
		*bp = buf
		clear(c.pending)
		c.pending = c.pending[:0]
		if cap(c.pending) > 64 {
			c.pending = nil
		}
		final := c.finishing
		c.mu.Unlock()

		err := c.armDeadline(time.Now().UnixNano())
		if err == nil {
			_, err = c.tc.Write(buf)
		}
		if err != nil {
			return true // a client that stopped reading, or one that left
		}
		c.lastWrite.Store(time.Now().UnixNano())
		if final {
			// close_notify: the body's end was written, this is no
			// truncation. Bounded by crypto/tls's own 5 s deadline, so
			// not at Close, which has its own bound.
			if c.p.closeBy.Load() == 0 {
				_ = c.tc.CloseWrite()
			}
			return true
		}
	}
}

// deadlineSlack is how much of the write timeout a write may find already
// used up: a deadline set less than this long ago is kept, so that a
// stream written several times a second does not reset its timer (two
// runtime timer operations) on every write. A write therefore gets
// between 7/8 of the write timeout and all of it.
func (c *Conn) deadlineSlack() int64 { return int64(c.p.opts.WriteTimeout / 8) }

// armDeadline makes sure the next write has a deadline: the write timeout
// from now (see deadlineSlack), or the Poller's close deadline when that
// is sooner. It looks at closeBy again after setting, so a Close that sets
// closeBy and then every stream's deadline is never overridden by a
// later, longer one. The deadline stays set after the write: its timer
// lives in the connection's poll descriptor (no allocation) and fires,
// harmlessly, a write timeout after the last write of an idle stream.
func (c *Conn) armDeadline(now int64) error {
	want := now + int64(c.p.opts.WriteTimeout)
	by := c.p.closeBy.Load()
	if by == 0 && c.deadline >= want-c.deadlineSlack() {
		return nil
	}
	if by != 0 && by < want {
		want = by
	}
	if err := c.tc.SetWriteDeadline(time.Unix(0, want)); err != nil {
		return err
	}
	c.deadline = want
	if by := c.p.closeBy.Load(); by != 0 && by < want {
		c.deadline = by
		return c.tc.SetWriteDeadline(time.Unix(0, by))
	}
	return nil
}

// finishTLS is finish for a TLS stream: final goes after what is pending,
// written by the stream's writer under the Poller's close deadline, and
// the stream is closed.
func (c *Conn) finishTLS(final []byte) {
	// A write blocked on a client that does not read ends at closeBy.
	_ = c.tc.SetWriteDeadline(time.Unix(0, c.p.closeBy.Load()))
	c.mu.Lock()
	if c.fd >= 0 && !c.finishing {
		c.finishing = true
		switch {
		case len(final) > 0:
			c.pending = c.frame(c.pending, [][]byte{final}, true)
		case c.chunked:
			c.pending = append(c.pending, lastChunk)
		}
	}
	c.mu.Unlock()
	c.writeTLS()
	c.close() // whatever writeTLS found: the Poller is closing
}

// closeFD closes the stream's descriptor: for a plain stream the
// duplicate that it owns; for TLS the connection under the *tls.Conn,
// whose descriptor the epoll set watched (see rawFD): closing it wakes a
// write blocked on it. The *tls.Conn's own Close would send close_notify,
// which can block for seconds on a client that does not read.
func (c *Conn) closeFD(fd int) {
	if c.tc != nil {
		c.tc.NetConn().Close()
		return
	}
	unix.Close(fd)
}
