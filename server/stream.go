package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/lograte"
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
	beatEvents, prob := heartbeatMode(r)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	watch, prob := s.presenceMode(r, topics)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
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
	pres := s.joinPresence(topics, principal, watch, presenceSSE)
	src := &streamSource{Subscriber: sub, release: release, ended: s.metrics.Connected(telemetry.TransportSSE),
		closing: s.hub.Closing(), expires: principal.Expires, leave: pres.leave}
	var source park.Source = src
	var feed sse.Feed = sub
	var pulled pullSource = sub
	if q := pres.events(); q != nil {
		pf := newPresenceFeed(sub, q)
		source, feed, pulled = presenceSource{src, pf}, pf, pf
	}
	parked := false
	defer func() {
		if !parked {
			src.Close()
		}
	}()
	heartbeat := s.cfg.Stream.Heartbeat.D()
	if beatEvents {
		heartbeat = -1 // the feed below sends them, as events
	}
	st, err := sse.NewStream(w, r, &sse.StreamOptions{
		Profile:      s.profile,
		Retry:        s.cfg.Stream.Retry.D(),
		Heartbeat:    heartbeat,
		WriteTimeout: s.cfg.Stream.WriteTimeout.D(),
		Shutdown:     s.hub.Closing(),
		Expires:      principal.Expires,
	})
	if err != nil {
		log.Warn("stream not started", "err", err)
		return
	}
	if beatEvents {
		// The first at once: it announces the interval, and a client
		// can time the next from it.
		if err := st.WriteEncoded(s.heartbeatEvent()); err != nil {
			return
		}
	}
	last := head
	if cursor != "" {
		last, err = s.replay(r.Context(), log, &sseTarget{st: st}, topics, cursor)
		if err != nil {
			log.Debug("stream ended during replay", "err", err)
			return
		}
	}
	poller := s.poller
	if beatEvents {
		poller = s.beatPoller
		if !s.parkable(r, poller) {
			// Before GoLive, which may already signal queued events.
			bf := newBeatFeed(pulled, s.heartbeatEvent(), s.cfg.Stream.Heartbeat.D())
			defer bf.stop()
			feed = bf
		}
	}
	sub.GoLive(last)
	if s.park(w, r, log, poller, source, principal.Expires) {
		parked = true
		return
	}
	_ = st.Serve(r.Context(), feed) // its end is counted by src.Close
}

// heartbeatMode reads the heartbeat parameter of /events: absent, the
// heartbeats are comments (": keep-alive"), which keep intermediaries
// from closing an idle stream but which EventSource never shows to
// scripts; "event" makes them the named event sseguard.heartbeat, without
// an id so that Last-Event-ID is untouched, for a client that must tell
// a live stream from one a proxy holds back.
func heartbeatMode(r *http.Request) (events bool, prob *policy.Problem) {
	switch v := r.URL.Query().Get("heartbeat"); v {
	case "":
		return false, nil
	case "event":
		return true, nil
	default:
		p := policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "heartbeat must be event or absent, got %q", lograte.Clip(v, 32))
		return false, p
	}
}

// HeartbeatEvent is the type of the heartbeat events of /events?heartbeat=event.
const HeartbeatEvent = "sseguard.heartbeat"

// heartbeatEvent is the heartbeat event's wire bytes: its data announces
// the interval, so a client knows when to give up waiting for the next.
func (s *Server) heartbeatEvent() []byte {
	data := fmt.Sprintf(`{"interval_ms":%d}`, s.cfg.Stream.Heartbeat.D().Milliseconds())
	b, _ := sse.Event{Type: HeartbeatEvent, Data: data}.AppendTo(nil)
	return b
}

// beatFeed is a subscription that also yields the heartbeat event
// whenever the stream has been idle for the interval, for a stream that
// asked for heartbeat events and cannot be parked (HTTP/2, or no poller):
// sse.Stream's own heartbeats are comments.
type beatFeed struct {
	sub   pullSource
	beat  []byte
	every time.Duration
	wake  chan struct{}
	timer *time.Timer
	due   atomic.Bool
}

// pullSource is what a beatFeed wraps: a subscription, alone or with
// its presence events (presenceFeed).
type pullSource interface {
	Pull(dst [][]byte) ([][]byte, bool)
	SetNotify(fn func())
}

func newBeatFeed(sub pullSource, beat []byte, every time.Duration) *beatFeed {
	f := &beatFeed{sub: sub, beat: beat, every: every, wake: make(chan struct{}, 1)}
	sub.SetNotify(f.signal) // a leaf: a send that never blocks
	f.timer = time.AfterFunc(every, func() {
		f.due.Store(true)
		f.signal()
	})
	f.signal() // a presence event queued before SetNotify signalled the feed below
	return f
}

func (f *beatFeed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Ready implements sse.Feed.
func (f *beatFeed) Ready() <-chan struct{} { return f.wake }

// Pull implements sse.Feed: the queued events, or the heartbeat when none
// are queued and the interval has passed since the last write.
func (f *beatFeed) Pull(dst [][]byte) ([][]byte, bool) {
	n := len(dst)
	dst, cut := f.sub.Pull(dst)
	if len(dst) == n && f.due.Load() {
		dst = append(dst, f.beat)
	}
	if len(dst) > n {
		f.due.Store(false)
		f.timer.Reset(f.every)
	}
	return dst, cut
}

func (f *beatFeed) stop() { f.timer.Stop() }

// replayTarget is what a replay writes to: an SSE stream (sseTarget) or
// a WebSocket (wsTarget). Each frames events and resets for its protocol;
// the replay's order, paging and retention checks are the same for both.
type replayTarget interface {
	// event sends e, with cursor, the reader's cursor after it, as its
	// id, or buffers it until flush.
	event(e store.Event, cursor string) error
	// reset sends the reset message: history after after is missing.
	reset(reason, detail, after string) error
	// flush sends what is buffered.
	flush() error
	// end ends the stream with a retry hint for why; the replay then
	// returns.
	end(why replayEnd)
}

// replayEnd says why a replay ended the stream before going live.
type replayEnd int

const (
	endShutdown replayEnd = iota // the hub is shutting down
	endBusy                      // the history budget stayed full
	endFailed                    // the store failed
)

// sseTarget frames a replay as event-stream bytes, written in batches of
// about replayWrite bytes.
type sseTarget struct {
	st  *sse.Stream
	buf []byte
}

func (t *sseTarget) event(e store.Event, cursor string) error {
	if cursor == "" || cursor == e.ID {
		// The reader's id line is the event's own (every store with one
		// sequence): encode straight into the write buffer, the bytes
		// hub.Encode gives, without a frame and its copy per event.
		// An event that cannot be encoded (a store bug) adds nothing.
		t.buf, _ = sse.Event{ID: e.ID, Type: e.Type, Data: e.Data}.AppendTo(t.buf)
	} else if f := hub.NewFrame(e); f != nil {
		t.buf = f.AppendTo(t.buf, cursor)
	}
	if len(t.buf) >= replayWrite {
		return t.flush()
	}
	return nil
}

func (t *sseTarget) reset(reason, detail, after string) error {
	t.buf = append(t.buf, resetEvent(reason, detail, after)...)
	return nil
}

func (t *sseTarget) flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	err := t.st.WriteEncoded(t.buf)
	t.buf = t.buf[:0]
	if cap(t.buf) > 2*replayWrite {
		t.buf = nil // one large event must not pin its buffer for the whole replay
	}
	return err
}

func (t *sseTarget) end(why replayEnd) {
	_ = t.flush() // the events already encoded go out before the hint
	if why == endBusy {
		_ = t.st.Retry(sse.CutRetry())
		return
	}
	_ = t.st.Retry(sse.ShutdownRetry())
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
// slow replay that retention overtakes gets a reset, never a silent skip.
func (s *Server) replay(ctx context.Context, log *slog.Logger, t replayTarget, topics []string, cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	last := cursor
	for {
		if err := s.endingReplay(t); err != nil {
			return "", err
		}
		start := time.Now()
		page, release, err := s.history.read(ctx, s.hub.Closing(), s.hub.Store(), topics, last, 0)
		s.metrics.StoreOp("read", time.Since(start))
		if errors.Is(err, store.ErrUnknownCursor) {
			s.metrics.Reset("unknown_cursor")
			// The head is taken before the reset goes out: a WebSocket
			// writes it at once, and an event the client publishes on
			// seeing it must be after the head, so that it is delivered.
			head := s.liveFrom(ctx, log, topics)
			if err := t.reset("unknown_cursor",
				"the Last-Event-ID is not one this server issued; history cannot be replayed, live events follow", cursor); err != nil {
				return "", err
			}
			return head, t.flush()
		}
		if errors.Is(err, errReplayBusy) {
			log.Warn("replay postponed: too many replays in flight", "replay_bytes", s.history.capacity)
			t.end(endBusy)
			return "", err
		}
		if err != nil {
			if ctx.Err() == nil {
				if serr := s.endingReplay(t); serr != nil {
					return "", serr
				}
				log.Error("replay read failed", "err", err)
				t.end(endFailed)
			}
			return "", err
		}
		if page.Truncated {
			s.metrics.Reset("truncated")
			if err := t.reset("truncated",
				"events after the Last-Event-ID were removed by retention; the oldest retained events follow", last); err != nil {
				release()
				return "", err
			}
		}
		for i, e := range page.Events {
			last = s.hub.Store().Next(last, topics, e)
			if err := t.event(e, last); err != nil {
				release()
				return "", err
			}
			page.Events[i] = store.Event{} // written events need not stay in memory
		}
		// The page's events are encoded (or sent): its room goes back
		// before the write. Pages of small events are far smaller than
		// a write: the next page's events join this one's in the buffer
		// (written once it holds replayWrite bytes), rather than a
		// write per page.
		release()
		s.metrics.Replayed(len(page.Events))
		if !page.More {
			return last, t.flush()
		}
		if s.replayPaged != nil {
			if err := t.flush(); err != nil { // a test sees what was written
				return "", err
			}
			s.replayPaged(last)
		}
	}
}

// replayWrite is how many encoded bytes a replay gathers into one write.
const replayWrite = 32 << 10

// endingReplay ends a replay at shutdown with a jittered retry hint, so
// streams that were still catching up reconnect like live ones.
func (s *Server) endingReplay(t replayTarget) error {
	select {
	case <-s.hub.Closing():
		t.end(endShutdown)
		return hub.ErrClosed
	default:
		return nil
	}
}

// park hands an HTTP/1.x stream (plain TCP or TLS) to the poller, which serves it
// without a goroutine from here on. It reports whether it did; on false
// the handler keeps serving the stream itself.
func (s *Server) park(w http.ResponseWriter, r *http.Request, log *slog.Logger, poller *park.Poller, sub park.Source, expires time.Time) bool {
	if !s.parkable(r, poller) {
		return false
	}
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if err := poller.Park(nc, sub, r.ProtoMinor >= 1, expires); err != nil {
		log.Debug("stream not parked", "err", err)
	}
	// Park closed the connection and the subscriber if it failed.
	return true
}

// parkable reports whether poller can take r's stream: HTTP/1.x, over
// plain TCP or TLS, with a poller running.
func (s *Server) parkable(r *http.Request, poller *park.Poller) bool {
	return poller != nil && r.ProtoMajor == 1
}

// streamSource is a stream's subscription together with its place in the
// stream limits and its metrics; closing it ends all three.
type streamSource struct {
	*hub.Subscriber
	release func()
	ended   func(reason string)
	closing <-chan struct{}
	expires time.Time
	leave   func() // ends its part in presence; may be nil
}

// Close unregisters the subscriber, releases the stream's limit slot and
// counts the disconnect with the likeliest reason.
func (s *streamSource) Close() {
	cut := s.Cut()
	s.Subscriber.Close()
	if s.leave != nil {
		s.leave()
	}
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
