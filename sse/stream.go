package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sseguard/sseguard/policy"
)

// Defaults for StreamOptions.
const (
	DefaultRetry        = 3 * time.Second
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// heartbeat is the comment block sent when a stream has been idle. The blank
// line after it lets intermediaries that cut on event boundaries pass it on.
var heartbeat = AppendComment(nil, "keep-alive")

// ErrFlushUnsupported is returned by NewStream when the ResponseWriter
// cannot flush, so events would sit in a buffer.
var ErrFlushUnsupported = errors.New("sse: response writer cannot flush")

// StreamOptions configure a Stream. The zero value is ready to use.
type StreamOptions struct {
	// Profile supplies the stream headers. Nil means the profile stored in
	// the request context by policy.Middleware, or policy.Strict.
	Profile *policy.Profile

	// Retry is sent as the reconnection time when the stream starts. Zero
	// means DefaultRetry; negative sends none.
	Retry time.Duration

	// Heartbeat is how long Run and Serve let the stream sit idle (nothing
	// written) before they send a comment. Zero means DefaultHeartbeat;
	// negative disables heartbeats.
	Heartbeat time.Duration

	// Shutdown, once closed, makes Run and Serve end the stream with a
	// ShutdownRetry hint and return ErrShutdown, so that the clients of a
	// server going away reconnect spread out. Nil means never.
	Shutdown <-chan struct{}

	// Expires, when not zero, makes Run and Serve end the stream at that
	// time with "retry: 0" and return ErrExpired: the credentials the
	// stream was opened with are no longer valid, and the client should
	// reconnect at once with fresh ones (or be refused).
	Expires time.Time

	// WriteTimeout bounds each write and flush, so that a client that stops
	// reading cannot hold the handler forever. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Stream writes events to one HTTP response. Its methods must not be called
// concurrently; Run and Serve own the stream while they run.
type Stream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	ctx          context.Context
	heartbeat    time.Duration
	writeTimeout time.Duration
	shutdown     <-chan struct{}
	expires      time.Time
	buf          []byte
	onWrite      func() // restarts the loop's heartbeat timer
}

// NewStream starts an event stream on w in answer to r. It sets the
// profile's stream headers (each replacing any earlier value), writes the
// status line and a retry field, and flushes, so the client has complete
// headers before the first event. It does not negotiate Accept: wrap the
// handler in policy.Middleware for that.
func NewStream(w http.ResponseWriter, r *http.Request, opts *StreamOptions) (*Stream, error) {
	var o StreamOptions
	if opts != nil {
		o = *opts
	}
	p := o.Profile
	if p == nil {
		p = policy.FromContext(r.Context())
	}
	s := &Stream{
		w:            w,
		rc:           http.NewResponseController(w),
		ctx:          r.Context(),
		heartbeat:    durationOr(o.Heartbeat, DefaultHeartbeat),
		writeTimeout: durationOr(o.WriteTimeout, DefaultWriteTimeout),
		shutdown:     o.Shutdown,
		expires:      o.Expires,
	}
	p.ApplyTo(w, r, policy.KindStream)
	w.WriteHeader(http.StatusOK)
	if retry := durationOr(o.Retry, DefaultRetry); retry >= 0 {
		s.buf = AppendRetry(s.buf[:0], retry)
	}
	if err := s.write(s.buf); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			return nil, ErrFlushUnsupported
		}
		return nil, err
	}
	return s, nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Send encodes e and writes it, flushed. It returns the encoding error
// without writing anything when e is not valid.
func (s *Stream) Send(e Event) error {
	b, err := e.AppendTo(s.buf[:0])
	if err != nil {
		return err
	}
	s.buf = b
	return s.write(b)
}

// WriteEncoded writes byte slices that already hold complete events, such
// as events encoded once and shared by every subscriber, and flushes once
// after the last. The caller vouches that each came from the encoder.
func (s *Stream) WriteEncoded(parts ...[]byte) error { return s.write(parts...) }

// Comment writes a comment block; receivers ignore it.
func (s *Stream) Comment(text string) error {
	s.buf = AppendComment(s.buf[:0], text)
	return s.write(s.buf)
}

// Heartbeat writes the keep-alive comment.
func (s *Stream) Heartbeat() error { return s.write(heartbeat) }

// Retry tells the client to reconnect after d, for example before the server
// ends the stream.
func (s *Stream) Retry(d time.Duration) error {
	s.buf = AppendRetry(s.buf[:0], d)
	return s.write(s.buf)
}

// write writes parts and flushes under the write deadline.
func (s *Stream) write(parts ...[]byte) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	deadlineSet := s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout)) == nil
	for _, b := range parts {
		if len(b) == 0 {
			continue
		}
		if _, err := s.w.Write(b); err != nil {
			return fmt.Errorf("sse: write: %w", err)
		}
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush: %w", err)
	}
	if deadlineSet {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
	if s.onWrite != nil {
		s.onWrite()
	}
	return nil
}
