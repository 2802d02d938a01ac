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
// Ownership: the Poller owns its goroutines (the epoll loop and the writers)
// and every parked descriptor; Close stops them and closes every stream.
// Lock order: Poller.mu, then writer.mu or Conn.mu; a writer never holds
// its run-queue lock while it writes.
//
// Parking works on Linux for plain TCP connections; New returns
// ErrUnsupported elsewhere, and callers keep serving the stream from its
// handler goroutine. TLS and HTTP/2 streams are never parked.
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
	// Pull appends the encoded events waiting for the stream to dst, each
	// already framed as an HTTP/1.1 chunk when chunked is true, and reports
	// whether the source was cut off (it then supplies nothing more, and
	// the stream ends with the Poller's cut retry).
	Pull(dst [][]byte, chunked bool) ([][]byte, bool)
	// SetNotify registers fn, called without blocking, from any goroutine,
	// whenever Pull has something new. Pull may be called at any time.
	SetNotify(fn func())
	// Close releases the source; the Poller calls it once the stream ends.
	Close()
}

// Options configure a Poller. Zero values mean the documented defaults.
type Options struct {
	// Heartbeat is the idle time after which a stream gets Comment. Zero
	// means 15 s.
	Heartbeat time.Duration
	// Comment is the heartbeat block. Empty means ": keep-alive\n\n".
	Comment []byte
	// CutRetry returns what is written before a stream whose source was
	// cut off ends; it is called once per stream, so each can get its own
	// jittered hint and the reconnects spread out. Nil means
	// "retry: 1000\n\n".
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
