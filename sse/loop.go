package sse

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Errors Run and Serve return when they end a stream themselves, after
// the stream's last words are written.
var (
	// ErrShutdown means StreamOptions.Shutdown was closed; the stream
	// ended with a ShutdownRetry hint.
	ErrShutdown = errors.New("sse: server shutting down")
	// ErrExpired means StreamOptions.Expires passed; the stream ended
	// with "retry: 0".
	ErrExpired = errors.New("sse: stream expired")
	// ErrCutOff means the Feed was cut off; the stream ended with a
	// CutRetry hint.
	ErrCutOff = errors.New("sse: feed cut off")
)

// errEnded ends Run when its channel is closed; Run returns nil.
var errEnded = errors.New("sse: events closed")

// CutRetry returns the retry hint for a stream that a server ends because
// its client fell behind: 0.5 to 1.5 s, short so the client is back soon,
// and drawn per stream so that a mass cut-off (a network blip) is not a
// reconnect stampede.
func CutRetry() time.Duration { return 500*time.Millisecond + rand.N(time.Second) }

// ShutdownRetry returns the retry hint for a stream that ends because its
// server is going away: 1 to 3 s, drawn per stream so that the clients of
// a restarting server reconnect spread out.
func ShutdownRetry() time.Duration { return time.Second + rand.N(2*time.Second) }

// AppendHeartbeat appends the keep-alive comment block that Heartbeat
// writes to dst. Servers that write streams without a Stream (a parked
// connection, a proxy) send the same bytes.
func AppendHeartbeat(dst []byte) []byte { return append(dst, heartbeat...) }

// A Feed supplies encoded events to Stream.Serve: a subscription to a hub
// that encodes each event once for all its subscribers, for example.
type Feed interface {
	// Ready returns a channel that fires (a value, or closing) when Pull
	// may have something new. Serve calls it before every wait, so a feed
	// may hand out a new channel each time; one that stays closed makes
	// Serve call Pull without pause.
	Ready() <-chan struct{}
	// Pull appends complete encoded events to dst, each as
	// Event.AppendTo wrote it (Serve writes them as they are), and
	// reports whether the feed was cut off: Serve then writes what it
	// got, a CutRetry hint, and returns ErrCutOff. Serve writes the
	// slices before it calls Pull again and does not keep them.
	Pull(dst [][]byte) ([][]byte, bool)
}

// Run sends every event received from events until events is closed (it
// returns nil), ctx ends or the client goes away (it returns the context's
// error), a write fails (it returns that error), or the stream ends itself
// as Serve's does: at StreamOptions.Shutdown or StreamOptions.Expires. A
// heartbeat goes out whenever the stream has been idle for
// StreamOptions.Heartbeat.
func (s *Stream) Run(ctx context.Context, events <-chan Event) error {
	err := loop(s, ctx, func() <-chan Event { return events }, func(e Event, ok bool) error {
		if !ok {
			return errEnded
		}
		return s.Send(e)
	})
	if err == errEnded {
		return nil
	}
	return err
}

// Serve writes what f supplies until ctx ends or the client goes away (it
// returns the context's error), a write fails (it returns that error), or
// the stream ends itself with a retry hint:
//
//   - f is cut off: what f had is written, then a CutRetry hint; ErrCutOff.
//   - StreamOptions.Shutdown is closed: a ShutdownRetry hint; ErrShutdown.
//   - StreamOptions.Expires passes: "retry: 0", so the client reconnects at
//     once with fresh credentials (or is refused); ErrExpired.
//
// A heartbeat goes out whenever the stream has been idle (nothing written)
// for StreamOptions.Heartbeat. Each batch f supplies is written with one
// flush.
func (s *Stream) Serve(ctx context.Context, f Feed) error {
	var parts [][]byte
	return loop(s, ctx, f.Ready, func(struct{}, bool) error {
		var cut bool
		parts, cut = f.Pull(parts[:0])
		var err error
		if len(parts) > 0 {
			err = s.write(parts...)
		}
		clear(parts) // keep no event alive past its write
		if err != nil {
			return err
		}
		if cut {
			_ = s.Retry(CutRetry())
			return ErrCutOff
		}
		return nil
	})
}

// loop is the one stream loop behind Run and Serve: it hands what wake
// delivers to deliver, sends a heartbeat after the heartbeat interval
// without a write, and ends the stream at shutdown and at expiry.
func loop[T any](s *Stream, ctx context.Context, wake func() <-chan T, deliver func(v T, ok bool) error) error {
	var beat <-chan time.Time
	if s.heartbeat > 0 {
		t := time.NewTimer(s.heartbeat)
		defer t.Stop()
		beat = t.C
		s.onWrite = func() { t.Reset(s.heartbeat) }
		defer func() { s.onWrite = nil }()
	}
	var expiry <-chan time.Time
	if !s.expires.IsZero() {
		t := time.NewTimer(time.Until(s.expires))
		defer t.Stop()
		expiry = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return s.ctx.Err()
		case v, ok := <-wake():
			if err := deliver(v, ok); err != nil {
				return err
			}
		case <-beat:
			if err := s.Heartbeat(); err != nil {
				return err
			}
		case <-s.shutdown:
			_ = s.Retry(ShutdownRetry())
			return ErrShutdown
		case <-expiry:
			_ = s.Retry(0)
			return ErrExpired
		}
	}
}
