package proxy

import (
	"bytes"
	"io"
	"sync"
	"time"

	"github.com/sseguard/sseguard/sse"
)

// heartbeat is the comment block injected into idle streams.
var heartbeat = sse.AppendHeartbeat(nil)

// expiredRetry ends a stream whose credentials expired: a block holding
// only "retry: 0", so that the client reconnects at once, with fresh
// credentials if it has them (and is refused if it has not).
var expiredRetry = sse.AppendRetry(nil, 0)

// utf8BOM is the byte order mark a stream may start with.
var utf8BOM = []byte("\xEF\xBB\xBF")

// boundary follows the bytes sent to the client with the line rules of the
// WHATWG event stream parser, to tell when a comment block can be inserted
// without changing what the client dispatches: at the start of a line, with
// no field line (data, event, id, retry or unknown) since the last blank
// line. Inserting a blank line anywhere else would dispatch a half event,
// or reset an event type or ID buffer the upstream is still filling.
type boundary struct {
	midLine bool // bytes of a line were sent, its end was not
	comment bool // the current line is a comment
	dirty   bool // a field line was sent since the last blank line
	afterCR bool // the last byte was CR: an LF next belongs to that line end
}

// at reports whether a comment block may be sent now.
func (b *boundary) at() bool { return !b.midLine && !b.dirty }

// feed moves the state over p, bytes that went to the client.
func (b *boundary) feed(p []byte) {
	for len(p) > 0 {
		if b.afterCR {
			b.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if !b.midLine {
				b.midLine, b.comment = true, p[0] == ':'
			}
			return
		}
		if i > 0 && !b.midLine {
			b.midLine, b.comment = true, p[0] == ':'
		}
		// A line ends at p[i].
		switch {
		case !b.midLine: // a blank line ends the block
			b.dirty = false
		case !b.comment:
			b.dirty = true
		}
		b.midLine = false
		b.afterCR = p[i] == '\r'
		p = p[i+1:]
	}
}

// through returns how many bytes of p take the stream to its next event
// boundary (a CR ending the line there takes a following LF along), or -1
// when p ends before one. b is a copy: the state does not move.
func (b boundary) through(p []byte) int {
	for i := 0; i < len(p); {
		j := bytes.IndexAny(p[i:], "\r\n")
		if j < 0 {
			return -1
		}
		end := i + j + 1
		if p[end-1] == '\r' && end < len(p) && p[end] == '\n' {
			end++
		}
		b.feed(p[i:end])
		if b.at() {
			return end
		}
		i = end
	}
	return -1
}

// streamBody is the body of a proxied stream as the client reads it. It
// reads the upstream body on a goroutine of its own (the pump), so that
// Read can notice silence: after Heartbeat without bytes it returns a
// ": keep-alive" comment block, but only at an event boundary (see
// boundary). When the upstream stalls in the middle of an event, no
// comment can be sent without cutting that event, so none is; the stream
// stays silent until the upstream goes on.
//
// When the upstream body ends, by EOF or by an error (a reset, a dropped
// connection, a corrupt gzip stream), Read returns io.EOF, so that the
// client's response ends cleanly rather than being aborted. If the last
// bytes sent were part of an unfinished event, they stay unfinished: the
// proxy never sends a blank line after them, and a conforming client's
// parser discards an event that is not terminated when the stream ends.
//
// The pump strips one leading byte order mark, which the client's parser
// would drop anyway, so that a heartbeat sent before the first upstream
// byte never pushes a BOM into the middle of the stream.
//
// When stop is closed (shutdown: the stream ends with a jittered 1-3 s
// retry hint) or the expires time passes (the
// client's credentials ran out), the stream ends at its next event
// boundary: at once when the client is between events, else after the
// bytes that finish the current event, and never with bytes of the next
// one. An expired stream ends with a "retry: 0" block.
//
// Read must not be called concurrently. Close stops the pump and waits for
// it; it may be called at any time, once Read has returned.
type streamBody struct {
	src       io.ReadCloser
	cancel    func() // cancels the upstream request, unblocking a pump Read
	heartbeat time.Duration
	// onBeat is called for every heartbeat due: sent, or skipped mid-event.
	onBeat func(sent bool)
	// onEnd is called once when the upstream body ends, with whether the
	// client was left inside an event and the upstream's error (nil for a
	// clean EOF).
	onEnd func(midEvent bool, err error)
	// stop, when closed, ends the stream at its next event boundary
	// (shutdown); onEnd is not called then.
	stop <-chan struct{}
	// expires, when not zero, ends the stream at its first event boundary
	// from then on, with expiredRetry; onExpire is called when it passes.
	expires  time.Time
	onExpire func()
	stopping bool
	final    []byte // sent at the boundary where a stopping stream ends

	started  bool
	chunks   chan []byte
	ack      chan struct{}
	quit     chan struct{}
	pumpDone chan struct{}
	pumpErr  error // written by the pump before it closes chunks
	once     sync.Once

	out     []byte // bytes not yet handed to the reader
	ackOut  bool   // out is a pump chunk; the pump waits until it is drained
	ended   bool
	timer   *time.Timer
	timerC  <-chan time.Time
	expiry  *time.Timer
	expiryC <-chan time.Time
	b       boundary
}

func newStreamBody(src io.ReadCloser, cancel func(), hb time.Duration) *streamBody {
	return &streamBody{
		src:       src,
		cancel:    cancel,
		heartbeat: hb,
		chunks:    make(chan []byte),
		ack:       make(chan struct{}, 1),
		quit:      make(chan struct{}),
		pumpDone:  make(chan struct{}),
		onBeat:    func(bool) {},
		onEnd:     func(bool, error) {},
		onExpire:  func() {},
	}
}

// Read implements io.Reader.
func (s *streamBody) Read(p []byte) (int, error) {
	if len(s.out) > 0 {
		return s.emit(p), nil
	}
	if s.ended {
		return 0, io.EOF
	}
	if s.stopping && s.b.at() {
		return s.finish(p)
	}
	if !s.started {
		s.started = true
		go s.pump()
		if s.heartbeat > 0 {
			s.timer = time.NewTimer(s.heartbeat)
			s.timerC = s.timer.C
		}
		if !s.expires.IsZero() {
			s.expiry = time.NewTimer(time.Until(s.expires))
			s.expiryC = s.expiry.C
		}
	}
	for {
		select {
		case c, ok := <-s.chunks:
			if !ok {
				s.onEnd(!s.b.at(), s.pumpErr)
				return s.end()
			}
			if s.stopping {
				// Up to the boundary only: what follows it would start an
				// event the client must not get any more.
				if n := s.b.through(c); n >= 0 {
					c = c[:n]
				}
			}
			s.out, s.ackOut = c, true
			return s.emit(p), nil
		case <-s.timerC:
			if s.b.at() {
				s.onBeat(true)
				s.out = heartbeat
				return s.emit(p), nil
			}
			// Mid-event: wait for the upstream; emit re-arms the timer.
			s.onBeat(false)
			s.timerC = nil
		case <-s.stop:
			// At shutdown, like the hub: each stream its own jittered
			// retry hint, so a restart is not a stampede.
			s.stop, s.stopping = nil, true
			if s.final == nil {
				s.final = sse.AppendRetry(nil, sse.ShutdownRetry())
			}
			if s.b.at() {
				return s.finish(p)
			}
		case <-s.expiryC:
			s.expiryC, s.stopping, s.final = nil, true, expiredRetry
			s.onExpire()
			if s.b.at() {
				return s.finish(p)
			}
		}
	}
}

// finish ends a stopping stream at a boundary, after its final block.
func (s *streamBody) finish(p []byte) (int, error) {
	if len(s.final) == 0 {
		return s.end()
	}
	s.out, s.final = s.final, nil
	n := s.emit(p)
	s.end() // the rest of out goes before io.EOF
	return n, nil
}

func (s *streamBody) end() (int, error) {
	s.ended = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	return 0, io.EOF
}

// emit hands out the pending bytes and restarts the idle timer.
func (s *streamBody) emit(p []byte) int {
	n := copy(p, s.out)
	s.b.feed(p[:n])
	s.out = s.out[n:]
	if len(s.out) == 0 && s.ackOut {
		s.ackOut = false
		s.ack <- struct{}{}
	}
	if s.timer != nil && !s.ended {
		s.timer.Reset(s.heartbeat)
		s.timerC = s.timer.C
	}
	return n
}

// pump reads the upstream body and hands each chunk to Read, waiting until
// it is consumed before reusing the buffer.
func (s *streamBody) pump() {
	defer close(s.pumpDone)
	defer close(s.chunks)
	buf := make([]byte, 32<<10)
	var head []byte // the first bytes, until it is known whether they start with a BOM
	bomDone := false
	for {
		n, err := s.src.Read(buf)
		data := buf[:n]
		if !bomDone && (n > 0 || err != nil) {
			head = append(head, data...)
			if err == nil && len(head) < len(utf8BOM) && bytes.HasPrefix(utf8BOM, head) {
				continue
			}
			bomDone = true
			data = bytes.TrimPrefix(head, utf8BOM)
		}
		if len(data) > 0 {
			select {
			case s.chunks <- data:
			case <-s.quit:
				return
			}
			select {
			case <-s.ack:
			case <-s.quit:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				s.pumpErr = err
			}
			return
		}
	}
}

// Close stops the pump, closes the upstream body and waits for the pump to
// return.
func (s *streamBody) Close() error {
	var err error
	s.once.Do(func() {
		close(s.quit)
		if s.cancel != nil {
			s.cancel()
		}
		err = s.src.Close()
		if s.started {
			<-s.pumpDone
		}
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.expiry != nil {
			s.expiry.Stop()
		}
	})
	return err
}
