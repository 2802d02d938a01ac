package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/park"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/telemetry"
)

// resetEvent tells the client that history it asked for is not available.
func resetEvent(reason, detail, after string) []byte {
	data, _ := json.Marshal(map[string]string{"reason": reason, "detail": detail, "after": after})
	b, _ := sse.Event{Type: "reset", Data: string(data)}.AppendTo(nil)
	return b
}

// handleEvents serves GET /events: replay after Last-Event-ID, then live.
// Once the replay is written the stream is parked (see park) or, where it
// cannot be, served by sse.Stream.Serve from here.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	topics, principal, ok := s.authorizeRead(w, r, readStream)
	if !ok {
		return
	}
	cursor := r.Header.Get("Last-Event-ID")
	if cursor == "" {
		cursor = r.URL.Query().Get("lastEventId")
	}
	if r.Method == http.MethodHead {
		s.profile.ApplyTo(w, r, policy.KindStream)
		w.WriteHeader(http.StatusOK)
		return
	}
	release := s.holdConn(w, r, principal)
	if release == nil {
		return
	}
	sub := s.subscribe(w, r, topics)
	if sub == nil {
		release()
		return
	}
	rid := s.requestID(r)
	w.Header().Set("X-Request-ID", rid)
	log := s.log.With("request_id", rid)
	var head string // where a stream with no Last-Event-ID starts
	if cursor == "" {
		// Before the headers go out: a client that publishes once it
		// sees them gets its event.
		head = s.liveFrom(r.Context(), log, topics)
	}
	sub.SetLabel(rid)
	src := &streamSource{Subscriber: sub, release: release, ended: s.metrics.Connected(telemetry.TransportSSE),
		closing: s.hub.Closing(), expires: principal.Expires}
	parked := false
	defer func() {
		if !parked {
			src.Close()
		}
	}()
	st, err := sse.NewStream(w, r, &sse.StreamOptions{
		Profile:      s.profile,
		Retry:        s.cfg.Stream.Retry.D(),
		Heartbeat:    s.cfg.Stream.Heartbeat.D(),
		WriteTimeout: s.cfg.Stream.WriteTimeout.D(),
		Shutdown:     s.hub.Closing(),
		Expires:      principal.Expires,
	})
	if err != nil {
		log.Warn("stream not started", "err", err)
		return
	}
	last := head
	if cursor != "" {
		last, err = s.replay(r.Context(), log, st, topics, cursor)
		if err != nil {
			log.Debug("stream ended during replay", "err", err)
			return
		}
	}
	sub.GoLive(last)
	if s.park(w, r, log, src, principal.Expires) {
		parked = true
		return
	}
	_ = st.Serve(r.Context(), sub) // its end is counted by src.Close
}

// liveFrom returns the cursor "now" for topics (store.Store.Head), where
// a reader with no cursor starts: it positions every topic, so that a
// reconnect resumes each exactly. When the store cannot tell, the reader
// starts from "" (every buffered live event is kept) and a later resume
// may report a reset.
func (s *Server) liveFrom(ctx context.Context, log *slog.Logger, topics []string) string {
	start := time.Now()
	head, err := s.hub.Store().Head(ctx, topics)
	s.metrics.StoreOp("head", time.Since(start))
	if err != nil {
		// Once a minute: with the store down every connect fails here.
		if n, ok := s.logs.Allow("store head failed", time.Now()); ok {
			log.Warn("stream starts without a cursor: the store's head is not available", "err", err, "suppressed", n)
		}
		return ""
	}
	return head
}

// replay writes the stored events after cursor and returns the reader's
// cursor after the last one written (cursor when none was, or the store's
// head when the cursor was unknown). Each event goes out with the reader's
// cursor after it as its id (store.Store.Next, hub.Frame.AppendTo).
//
// History goes out page by page, each page bounded by bytes (see
// historyBudget) and written event by event under the write timeout, so a
// client that stops reading during a replay is cut off as a live one is,
// and holds at most one page. Every page checks for a retention gap: a
// slow replay that retention overtakes gets event: reset, never a silent
// skip.
func (s *Server) replay(ctx context.Context, log *slog.Logger, st *sse.Stream, topics []string, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	last := cursor
	var buf []byte
	for {
		if err := s.endingReplay(st); err != nil {
			return "", err
		}
		start := time.Now()
		page, release, err := s.history.read(ctx, s.hub.Closing(), s.hub.Store(), topics, last, 0)
		s.metrics.StoreOp("read", time.Since(start))
		if errors.Is(err, store.ErrUnknownCursor) {
			s.metrics.Reset("unknown_cursor")
			head := s.liveFrom(ctx, log, topics)
			return head, st.WriteEncoded(resetEvent("unknown_cursor",
				"the Last-Event-ID is not one this server issued; history cannot be replayed, live events follow", cursor))
		}
		if errors.Is(err, errReplayBusy) {
			log.Warn("replay postponed: too many replays in flight", "replay_bytes", s.history.capacity)
			_ = st.Retry(sse.CutRetry())
			return "", err
		}
		if err != nil {
			if ctx.Err() == nil {
				if serr := s.endingReplay(st); serr != nil {
					return "", serr
				}
				log.Error("replay read failed", "err", err)
				_ = st.Retry(sse.ShutdownRetry())
			}
			return "", err
		}
		if page.Truncated {
			s.metrics.Reset("truncated")
			buf = append(buf, resetEvent("truncated",
				"events after the Last-Event-ID were removed by retention; the oldest retained events follow", last)...)
		}
		for i, e := range page.Events {
			last = s.hub.Store().Next(last, topics, e)
			if f := hub.NewFrame(e); f != nil {
				buf = f.AppendTo(buf, last)
			}
			page.Events[i] = store.Event{} // written events need not stay in memory
			if len(buf) >= replayWrite || i == len(page.Events)-1 {
				if err := st.WriteEncoded(buf); err != nil {
					release()
					return "", err
				}
				buf = buf[:0]
				if cap(buf) > 2*replayWrite {
					buf = nil // one large event must not pin its buffer for the whole replay
				}
			}
		}
		if len(buf) > 0 { // a reset with no events after it
			if err := st.WriteEncoded(buf); err != nil {
				release()
				return "", err
			}
			buf = buf[:0]
		}
		release()
		s.metrics.Replayed(len(page.Events))
		if !page.More {
			return last, nil
		}
		if s.replayPaged != nil {
			s.replayPaged(last)
		}
	}
}

// replayWrite is how many encoded bytes a replay gathers into one write.
const replayWrite = 32 << 10

// endingReplay ends a replay at shutdown with a jittered retry hint, so
// streams that were still catching up reconnect like live ones.
func (s *Server) endingReplay(st *sse.Stream) error {
	select {
	case <-s.hub.Closing():
		_ = st.Retry(sse.ShutdownRetry())
		return hub.ErrClosed
	default:
		return nil
	}
}

// park hands an HTTP/1.x plain-TCP stream to the poller, which serves it
// without a goroutine from here on. It reports whether it did; on false
// the handler keeps serving the stream itself.
func (s *Server) park(w http.ResponseWriter, r *http.Request, log *slog.Logger, sub park.Source, expires time.Time) bool {
	if s.poller == nil || r.ProtoMajor != 1 || r.TLS != nil {
		return false
	}
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if err := s.poller.Park(nc, sub, r.ProtoMinor >= 1, expires); err != nil {
		log.Debug("stream not parked", "err", err)
	}
	// Park closed the connection and the subscriber if it failed.
	return true
}

// streamSource is a stream's subscription together with its place in the
// stream limits and its metrics; closing it ends all three.
type streamSource struct {
	*hub.Subscriber
	release func()
	ended   func(reason string)
	closing <-chan struct{}
	expires time.Time
}

// Close unregisters the subscriber, releases the stream's limit slot and
// counts the disconnect with the likeliest reason.
func (s *streamSource) Close() {
	cut := s.Cut()
	s.Subscriber.Close()
	s.release()
	reason := telemetry.ReasonClientGone
	select {
	case <-s.closing:
		reason = telemetry.ReasonShutdown
	default:
		switch {
		case cut:
			reason = telemetry.ReasonCutOff
		case !s.expires.IsZero() && !time.Now().Before(s.expires):
			reason = telemetry.ReasonTokenExpired
		}
	}
	s.ended(reason)
}
