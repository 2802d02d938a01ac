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

	// Heartbeat is how long Run lets the stream sit idle before it sends a
	// comment. Zero means DefaultHeartbeat; negative disables heartbeats.
	Heartbeat time.Duration

	// WriteTimeout bounds each write and flush, so that a client that stops
	// reading cannot hold the handler forever. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Stream writes events to one HTTP response. Its methods must not be called
// concurrently; Run owns the stream while it runs.
type Stream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	ctx          context.Context
	heartbeat    time.Duration
	writeTimeout time.Duration
	buf          []byte
	onWrite      func() // restarts Run's heartbeat timer
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

// Run sends every event received from events, and a heartbeat whenever the
// stream has been idle for the heartbeat interval, until events is closed
// (it returns nil), ctx ends or the client goes away (it returns the
// context's error), or a write fails (it returns that error).
func (s *Stream) Run(ctx context.Context, events <-chan Event) error {
	var beat <-chan time.Time
	if s.heartbeat > 0 {
		t := time.NewTimer(s.heartbeat)
		defer t.Stop()
		beat = t.C
		s.onWrite = func() { t.Reset(s.heartbeat) }
		defer func() { s.onWrite = nil }()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return s.ctx.Err()
		case e, ok := <-events:
			if !ok {
				return nil
			}
			if err := s.Send(e); err != nil {
				return err
			}
		case <-beat:
			if err := s.Heartbeat(); err != nil {
				return err
			}
		}
	}
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
