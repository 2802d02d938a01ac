// Package park parks idle HTTP/1.x event streams on an epoll set, so that a
// stream waiting for its next event holds no goroutine and no buffer.
//
// net/http gives every connection a goroutine, a read goroutine and about
// 10 KB of buffers for as long as its handler runs; for a stream that is idle
// most of its life that is most of its cost. Once a stream's headers and
// replay are written, the server hijacks the connection and parks it here:
// the file descriptor moves to an epoll set, and a few writer goroutines (one
// per CPU) write events, heartbeats and the final retry straight to the
// socket with non-blocking sendmsg calls, as many streams per call of the
// writer as are ready. A parked stream costs a small struct.
//
// A Source hands out each event's wire bytes, shared with every other
// stream of the event; under HTTP/1.1 the writer frames what one Pull
// returned as one chunk, its size line and closing CRLF in buffers of
// their own, and gives all of it to one sendmsg (writev) call: an event's
// bytes are never copied on their way to the socket. A stream behaves as
// package sse's Stream.Serve does, with its defaults: a heartbeat after
// the heartbeat interval without a write, "retry: 0" at expiry, a
// jittered retry hint when the source is cut off or the Poller closes.
//
// Ownership: the Poller owns its goroutines (the epoll loop and the writers)
// and every parked descriptor; Close stops them and closes every stream.
//
// # Lock order
//
// A goroutine that holds one of these locks takes only locks further down
// the list:
//
//  1. Poller.mu, the table of parked streams (Park, the epoll loop, close).
//  2. Conn.wmu, a TLS stream's writer: held across its encrypted writes,
//     which Conn.mu never is, and released before the stream is closed.
//  3. Conn.mu, one stream's pending bytes; held across a plain stream's
//     writes and across Source.Pull, so it comes before the source's own
//     lock.
//  4. The source's locks (a hub subscriber's), which call the notify
//     function, Conn.schedule, with them held.
//  5. writer.mu, a writer's run queue and stream list: a leaf. A writer
//     never holds it while it writes.
//
// Conn.close releases Conn.mu before it takes Poller.mu and writer.mu, and
// calls Source.Close with no lock held.
//
// Parking works on Linux for TCP connections, plain or TLS (a *tls.Conn
// whose handshake is done: its writes are encrypted by crypto/tls, from a
// goroutine that lives only while a write is under way); New returns
// ErrUnsupported elsewhere, and callers keep serving the stream from its
// handler goroutine. HTTP/2 streams share their connection and are never
// parked.
//
// Package park knows nothing of topics or HTTP semantics beyond chunked
// framing; a Source supplies the bytes.
package park

import (
	"errors"
	"time"
)

// ErrUnsupported means parking is not available on this platform or for
// this connection.
var ErrUnsupported = errors.New("park: unsupported")

// ErrClosed means the Poller was closed.
var ErrClosed = errors.New("park: closed")

// Source supplies a parked stream's events.
type Source interface {
	// Pull appends the encoded events waiting for the stream to dst, as
	// wire bytes that the Poller frames and does not modify, and reports
	// whether the source was cut off (it then supplies nothing more, and
	// the stream ends with the Poller's cut retry). The Poller calls it
	// with the stream's lock held (see the lock order).
	Pull(dst [][]byte) ([][]byte, bool)
	// SetNotify registers fn, called without blocking, from any goroutine,
	// whenever Pull has something new. Pull may be called at any time.
	SetNotify(fn func())
	// Close releases the source; the Poller calls it once the stream ends.
	Close()
}

// HeartbeatGate is implemented by a Source whose bytes may stop inside an
// event, such as a relay of another server's stream: a heartbeat there
// would cut the event in two. When a stream of such a source is due a
// heartbeat (idle for Options.Heartbeat, nothing pending), the Poller asks
// HeartbeatDue, with the stream's lock held, and writes the heartbeat only
// when it returns true; it asks again at its next check (about every
// second) for as long as the stream stays idle. A Source that does not
// implement it gets every heartbeat due.
type HeartbeatGate interface {
	HeartbeatDue() bool
}

// Options configure a Poller. Zero values mean the documented defaults.
type Options struct {
	// Heartbeat is the idle time after which a stream gets Comment. Zero
	// means sse.DefaultHeartbeat (15 s).
	Heartbeat time.Duration
	// Comment is the heartbeat block. Empty means sse.AppendHeartbeat's
	// ": keep-alive\n\n".
	Comment []byte
	// CutRetry returns what is written before a stream whose source was
	// cut off ends; it is called once per stream, so each can get its own
	// jittered hint and the reconnects spread out. Nil means a retry field
	// of sse.CutRetry (0.5 to 1.5 s).
	CutRetry func() []byte
	// ExpiredRetry is written before a stream ends at its expiry time.
	// Empty means "retry: 0\n\n".
	ExpiredRetry []byte
	// Writers is the number of writer goroutines. Zero means GOMAXPROCS.
	Writers int
	// WriteTimeout closes a stream whose client has not read for this long
	// while bytes wait for it (its socket buffer full), so a client that
	// stops reading cannot hold a descriptor forever. Zero means 10 s.
	WriteTimeout time.Duration
}
