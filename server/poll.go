package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/telemetry"
)

// pollEvent is one event in a poll answer.
type pollEvent struct {
	// ID is the poller's cursor after this event, as an SSE stream's id
	// line carries it: the event's own ID for one topic (and on stores
	// with one sequence), a position in every topic for several.
	ID    string    `json:"id"`
	Topic string    `json:"topic"`
	Type  string    `json:"type"`
	Data  string    `json:"data"`
	Time  time.Time `json:"time"`
}

// pollReset says that history the poller asked for is not available.
type pollReset struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// pollAnswer is the JSON body of GET /api/poll.
type pollAnswer struct {
	Events []pollEvent `json:"events"`
	// Next is the cursor to send as after= next time.
	Next string `json:"next"`
	// RetryMS is how long to wait before the next poll, in milliseconds.
	RetryMS int64      `json:"retry_ms"`
	Reset   *pollReset `json:"reset,omitempty"`
}

// handlePoll serves GET /api/poll?topic=T&after=ID&wait=S: the JSON
// fallback for clients that cannot hold a stream.
func (s *Server) handlePoll(w http.ResponseWriter, r *http.Request) {
	topics, principal, ok := s.authorizeRead(w, r, readPoll)
	if !ok {
		return
	}
	wait, prob := s.pollWait(r)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	ans := pollAnswer{Events: []pollEvent{}, RetryMS: s.cfg.Poll.Retry.D().Milliseconds()}
	q := r.URL.Query()
	after := q.Get("after")
	if !q.Has("after") {
		s.answerHead(w, r, topics, ans, nil) // a first poll starts from now: the cursor, not history
		return
	}

	// Register before reading, so an event committed in between wakes the
	// wait instead of being missed.
	var ready <-chan struct{}
	if wait > 0 {
		// A long poll holds a connection like a stream: it counts against
		// the same limits.
		release := s.holdConn(w, r, principal)
		if release == nil {
			return
		}
		defer release()
		sub := s.subscribe(w, r, topics)
		if sub == nil {
			return
		}
		defer sub.Close()
		sub.GoLive("")
		ready = sub.Ready()
	}
	ctx, st := r.Context(), s.hub.Store()
	page, release, err := s.history.read(ctx, s.hub.Closing(), st, topics, after, s.cfg.Poll.MaxEvents)
	if err == nil {
		defer func() { release() }()
	}
	if errors.Is(err, store.ErrUnknownCursor) {
		s.answerHead(w, r, topics, ans, &pollReset{Reason: "unknown_cursor", Detail: "the cursor is not one this server issued; continue from next"})
		return
	}
	if err != nil {
		s.historyFailed(w, r, err)
		return
	}
	if len(page.Events) == 0 && !page.Truncated && wait > 0 {
		ended := s.metrics.Connected(telemetry.TransportPoll)
		defer ended(telemetry.ReasonClientGone)
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ready:
			release()
			page, release, err = s.history.read(ctx, s.hub.Closing(), st, topics, after, s.cfg.Poll.MaxEvents)
			if err != nil {
				release = func() {}
				s.historyFailed(w, r, err)
				return
			}
		case <-t.C:
		case <-s.hub.Closing():
		case <-ctx.Done():
			return
		}
	}
	s.answerPage(w, ans, topics, page, after)
}

// pollWait reads the wait parameter: how long a poll with nothing to
// answer may wait for an event, capped at poll.max_wait.
func (s *Server) pollWait(r *http.Request) (time.Duration, *policy.Problem) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs < 0 || secs != secs {
		return 0, policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "wait must be a number of seconds, got %q", v)
	}
	return min(time.Duration(secs*float64(time.Second)), s.cfg.Poll.MaxWait.D()), nil
}

// answerHead answers a poll with no events: only the cursor to go on
// from, the store's head, and reset when history was not available.
func (s *Server) answerHead(w http.ResponseWriter, r *http.Request, topics []string, ans pollAnswer, reset *pollReset) {
	head, err := s.hub.Store().Head(r.Context(), topics)
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	if reset != nil {
		s.metrics.Reset(reset.Reason)
	}
	ans.Next, ans.Reset = head, reset
	writeJSON(w, http.StatusOK, ans)
}

// answerPage answers a poll with a page of history after the cursor after.
func (s *Server) answerPage(w http.ResponseWriter, ans pollAnswer, topics []string, page store.Page, after string) {
	s.metrics.Replayed(len(page.Events))
	if page.Truncated {
		s.metrics.Reset("truncated")
		ans.Reset = &pollReset{Reason: "truncated", Detail: "events after the cursor were removed by retention; the oldest retained follow"}
	}
	ans.Next = after
	for _, e := range page.Events {
		ans.Next = s.hub.Store().Next(ans.Next, topics, e)
		ans.Events = append(ans.Events, pollEvent{ID: ans.Next, Topic: e.Topic, Type: typeOrMessage(e.Type), Data: e.Data, Time: e.Time})
	}
	if page.More {
		ans.RetryMS = 0 // more is waiting: poll again at once
	}
	// The page holds its share of the history budget until it is written:
	// a poller that stops reading is cut off after the write timeout, as a
	// stream is, instead of holding it for as long as it stays connected.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.Stream.WriteTimeout.D()))
	writeJSON(w, http.StatusOK, ans)
}

func typeOrMessage(t string) string {
	if t == "" {
		return "message"
	}
	return t
}

// historyFailed answers a poll whose history read failed: 503 busy when
// the replay budget stayed full, else as storeFailed.
func (s *Server) historyFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errReplayBusy) {
		prob := policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, "too many clients are reading history right now; poll again")
		prob.RetryAfter = time.Second
		policy.WriteProblem(w, r, prob)
		return
	}
	if r.Context().Err() != nil {
		return
	}
	s.storeFailed(w, r, err)
}

// storeFailed answers 503 for a store that failed, logging one line a
// minute per path (a full disk fails every request: one line each would
// flood the log; the hub logs failed commits the same way).
func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if n, ok := s.logs.Allow("store failed "+r.URL.Path, time.Now()); ok {
		s.log.Error("store failed", "path", r.URL.Path, "err", err, "suppressed", n)
	}
	prob := policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, "the event store is not available")
	if errors.Is(err, store.ErrUnavailable) {
		prob = policy.NewProblem(http.StatusServiceUnavailable, policy.CodeStoreUnavailable, "the event store cannot be reached; nothing was acknowledged: retry")
		prob.RetryAfter = storeRetryAfter
	}
	prob.Err = err
	policy.WriteProblem(w, r, prob)
}

// storeRetryAfter is the Retry-After of store_unavailable: a Redis
// restart or failover takes seconds, and every client retrying within
// the same second would hammer it as it comes back.
const storeRetryAfter = 5 * time.Second
