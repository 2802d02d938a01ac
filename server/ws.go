package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sseguard/sseguard/auth"
	sseguardjs "github.com/sseguard/sseguard/clients/js"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/telemetry"
)

// GET /ws is the subscription of GET /events over WebSocket: the same
// identity, topics, limits, replay and slow-consumer bound, framed as one
// JSON text message per event. docs/websocket.md is its contract; the
// close codes below are part of it.

// Close codes of GET /ws in the application range (RFC 6455 §7.4.2).
// Those that ask the client to come back carry "retry=MS" as the reason:
// MS is a jittered wait in milliseconds, as an SSE stream's retry field.
const (
	// CloseTokenExpired: the credentials the socket was opened with have
	// expired; reconnect at once with fresh ones.
	CloseTokenExpired websocket.StatusCode = 4000
	// CloseCutOff: the client fell behind by more than stream.queue_bytes;
	// reconnect after the retry hint with the last ID seen.
	CloseCutOff websocket.StatusCode = 4001
	// CloseShutdown: the hub is going away; reconnect after the hint.
	CloseShutdown websocket.StatusCode = 4002
	// CloseUnavailable: history could not be read (the store failed, or
	// too many replays at once); reconnect after the hint.
	CloseUnavailable websocket.StatusCode = 4003
)

// wsMessage is one message the hub sends on /ws. An event has all four
// fields, its data a string as published; a message the hub makes itself
// (reset, pong) has no id and no topic, so it never moves the cursor.
type wsMessage struct {
	ID    string `json:"id,omitempty"`
	Topic string `json:"topic,omitempty"`
	Type  string `json:"type"`
	Data  any    `json:"data,omitempty"`
}

// wsReset is the data of a reset message: as the reset event of /events.
type wsReset struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	After  string `json:"after"`
}

// wsClientMessage is what a client may send: {"type":"ping"}, answered
// with {"type":"pong"}, so that a browser, which cannot see WebSocket
// pings, can tell a live socket from a dead one. Nothing else is read;
// in particular /ws never publishes (POST /api/publish does).
type wsClientMessage struct {
	Type string `json:"type"`
}

// wsHandshake returns why r is not a WebSocket handshake that
// websocket.Accept would take, or nil. The library answers such requests
// with text/plain; checking first keeps every refusal a problem.
func wsHandshake(r *http.Request) *policy.Problem {
	bad := func(detail string) *policy.Problem {
		p := policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, detail)
		p.Fallback = "/api/poll"
		return p
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return bad("GET /ws needs HTTP/1.1 (WebSocket over HTTP/2 is not served); use /events or /api/poll")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return bad("GET /ws is a WebSocket endpoint: send Connection: Upgrade and Upgrade: websocket")
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return bad("only WebSocket version 13 is served (Sec-WebSocket-Version: 13)")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return bad("send exactly one Sec-WebSocket-Key")
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return bad("Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return nil
}

// headerHasToken reports whether a comma-separated header of h holds
// token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// viaCookie reports whether p was authenticated by the token cookie: no
// Bearer header was sent and the cookie was. A cookie is ambient (the
// browser attaches it to any page's request), which is what cross-site
// WebSocket hijacking rides on.
func (s *Server) viaCookie(r *http.Request, p *auth.Principal) bool {
	if p.Source != auth.SourceJWT {
		return false
	}
	if scheme, _, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return false
	}
	name := s.auth.Cookie
	if name == "" {
		name = auth.DefaultCookie
	}
	c, err := r.Cookie(name)
	return err == nil && c.Value != ""
}

// wsCursor reads the replay cursor of a /ws request: lastEventId, as the
// first connection of /events sends it, or after, as /api/poll does. Both
// name the last event the client has; sending both with different values
// is refused.
func wsCursor(r *http.Request) (string, *policy.Problem) {
	q := r.URL.Query()
	a, b := q.Get("lastEventId"), q.Get("after")
	if a != "" && b != "" && a != b {
		return "", policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "lastEventId and after name different cursors; send one")
	}
	if a == "" {
		a = b
	}
	if len(a) > maxCursorLen {
		return "", policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "the cursor is longer than %d bytes", maxCursorLen)
	}
	return a, nil
}

// maxCursorLen bounds a cursor in the query; store IDs are far shorter.
const maxCursorLen = 256

// handleWS serves GET /ws: every check of /events before the upgrade
// (handshake shape, topics, identity, origin, limits), then the replay
// after the cursor, then live events until the client leaves, breaks a
// rule, falls behind, its token expires or the hub shuts down.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	topics, principal, ok := s.authorizeRead(w, r, readWS)
	if !ok {
		return
	}
	cursor, prob := wsCursor(r)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	watch, prob := s.presenceMode(r, topics)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
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
	defer release()
	defer sub.Close()
	pres := s.joinPresence(topics, principal, watch, presenceWS)
	defer pres.leave()
	rid := s.requestID(r)
	w.Header().Set("X-Request-ID", rid)
	log := s.log.With("request_id", rid)
	sub.SetLabel(rid)
	var head string // where a socket with no cursor starts
	if cursor == "" {
		// Before the 101, as /events does before its headers.
		head = s.liveFrom(r.Context(), log, topics)
	}
	mode := websocket.CompressionDisabled
	if s.cfg.WS.Compression {
		mode = websocket.CompressionContextTakeover
	}
	// Counted before the 101 goes out, so a client that sees its socket
	// open sees it in the metrics too.
	ended := s.metrics.Connected(telemetry.TransportWS)
	limit := newWSLimiter(s.cfg.WS.MessageRate, s.cfg.WS.MessageBurst)
	// The origin was checked by authorizeRead, with the server's own rule
	// (the CORS allowlist ∩ the principal's origins): the library's check,
	// host patterns alone, would be a second and weaker copy of it.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: mode,
		OnPingReceived: func(context.Context, []byte) bool { return limit.controlFrame() },
		OnPongReceived: func(context.Context, []byte) { limit.controlFrame() }})
	if err != nil {
		ended(telemetry.ReasonClientGone)
		log.Debug("websocket not accepted", "err", err)
		return
	}
	limit.conn = conn
	reason := s.serveWS(conn, limit, log, sub, pres.events(), topics, cursor, head, principal.Expires)
	ended(reason)
}

// wsLimiter is the token bucket of one socket's client messages and
// control frames (ws.message_rate, ws.message_burst). Only the socket's
// reader uses it: the library calls the ping and pong hooks from Read.
type wsLimiter struct {
	rate, burst, tokens float64
	last                time.Time
	// flooded is set once the client sent too much; the socket is then
	// being closed with 1008.
	flooded atomic.Bool
	once    sync.Once
	closed  chan struct{}   // closed when flood's close is done
	conn    *websocket.Conn // set once accepted, before the first read
}

func newWSLimiter(rate float64, burst int) *wsLimiter {
	return &wsLimiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now(), closed: make(chan struct{})}
}

// allow takes a token, or reports false when none is left.
func (l *wsLimiter) allow() bool {
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// controlFrame counts a ping or pong frame, which the library answers
// inside Read without returning a message: a flood of them closes the
// socket as a flood of messages does. It returns whether to answer.
func (l *wsLimiter) controlFrame() bool {
	if l.allow() {
		return true
	}
	l.flood()
	return false
}

// flood closes the socket with 1008, once. From a hook inside Read the
// close cannot run on the reader's goroutine: its handshake reads.
func (l *wsLimiter) flood() {
	l.once.Do(func() {
		l.flooded.Store(true)
		go func() {
			defer close(l.closed)
			_ = l.conn.Close(websocket.StatusPolicyViolation, "too many messages")
		}()
	})
}

// wait returns once the close that flood started is done; at once when
// there was none.
func (l *wsLimiter) wait() {
	if l.flooded.Load() {
		<-l.closed
	}
}

// wsSession is one accepted /ws connection.
type wsSession struct {
	limit   *wsLimiter
	s       *Server
	conn    *websocket.Conn
	ctx     context.Context // ends when the connection does
	timeout time.Duration
}

// write sends v as one text message under the write timeout: a client
// that stops reading is closed after it, as an SSE stream is.
func (ws *wsSession) write(v wsMessage) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("server: encoding a websocket message: %w", err)
	}
	return ws.writeRaw(b)
}

// writeRaw sends b, a JSON text message, as write does.
func (ws *wsSession) writeRaw(b []byte) error {
	ctx, cancel := context.WithTimeout(ws.ctx, ws.timeout)
	defer cancel()
	return ws.conn.Write(ctx, websocket.MessageText, b)
}

// eventMessage is the message of an event: {"id": the reader's cursor
// after it, then the event's topic, type and data
// (hub.EventJSONMembers, which a live frame encodes once for every
// reader)}, the fields of wsMessage in its order.
func eventMessage(cursor string, members []byte) []byte {
	id, _ := json.Marshal(cursor) // a string always encodes
	b := make([]byte, 0, len(id)+len(members)+8)
	b = append(b, `{"id":`...)
	b = append(b, id...)
	b = append(b, ',')
	b = append(b, members...)
	return append(b, '}')
}

// closeRetry closes with code and a retry hint of d.
func (ws *wsSession) closeRetry(code websocket.StatusCode, d time.Duration) {
	_ = ws.conn.Close(code, fmt.Sprintf("retry=%d", d.Milliseconds()))
}

// wsTarget is a replay written to a WebSocket: one message per event.
type wsTarget struct{ *wsSession }

func (t wsTarget) event(e store.Event, cursor string) error {
	return t.writeRaw(eventMessage(cursor, hub.EventJSONMembers(e)))
}

func (t wsTarget) reset(reason, detail, after string) error {
	return t.write(wsMessage{Type: "reset", Data: wsReset{Reason: reason, Detail: detail, After: after}})
}

func (t wsTarget) flush() error { return nil }

func (t wsTarget) end(why replayEnd) {
	switch why {
	case endShutdown:
		t.closeRetry(CloseShutdown, sse.ShutdownRetry())
	case endBusy:
		t.closeRetry(CloseUnavailable, sse.CutRetry())
	default:
		t.closeRetry(CloseUnavailable, sse.ShutdownRetry())
	}
}

// serveWS runs an accepted connection to its end and returns the
// disconnect reason for the metrics. One goroutine reads what the client
// sends (readWS); this one writes.
func (s *Server) serveWS(conn *websocket.Conn, limit *wsLimiter, log *slog.Logger, sub *hub.Subscriber, pres *presenceQueue, topics []string, cursor, head string, expires time.Time) string {
	conn.SetReadLimit(int64(s.cfg.WS.MaxMessageBytes))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ws := &wsSession{limit: limit, s: s, conn: conn, ctx: ctx, timeout: s.cfg.Stream.WriteTimeout.D()}

	readDone := make(chan string, 1)
	go func() {
		defer cancel()
		readDone <- ws.read()
	}()
	defer func() {
		_ = conn.CloseNow() // a no-op after a Close with a code
		cancel()
		<-readDone // the reader ends once the connection is closed
		limit.wait()
	}()

	// failed names the end of a socket whose write or ping failed: the
	// reader's verdict when it closed the socket for a rule the client
	// broke (a write racing that close fails too), else a write error.
	failed := func() string {
		readerEnded := ctx.Err() != nil
		_ = conn.CloseNow() // ends the reader, if the failure did not
		if r := wsReaderReason(readDone); readerEnded || r == telemetry.ReasonPolicy {
			return r
		}
		return telemetry.ReasonWriteError
	}

	last := head
	if cursor != "" {
		var err error
		last, err = s.replay(ctx, log, wsTarget{ws}, topics, cursor)
		if err != nil {
			log.Debug("websocket ended during replay", "err", err)
			select {
			case <-s.hub.Closing():
				return telemetry.ReasonShutdown
			default:
			}
			return failed()
		}
	}
	sub.GoLive(last)

	heartbeat := s.cfg.Stream.Heartbeat.D()
	beat := time.NewTimer(heartbeat)
	defer beat.Stop()
	var expiry <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expiry = t.C
	}
	pinged := make(chan error, 1)
	pinging := false
	defer func() {
		cancel() // ends a ping in flight
		if pinging {
			<-pinged
		}
	}()
	var frames []hub.Delivery
	var presReady <-chan struct{} // nil: no presence events asked for
	var presMsgs [][]byte
	if pres != nil {
		presReady = pres.ready
	}
	for {
		select {
		case <-ctx.Done():
			return wsReaderReason(readDone)
		case <-s.hub.Closing():
			ws.closeRetry(CloseShutdown, sse.ShutdownRetry())
			return telemetry.ReasonShutdown
		case <-expiry:
			_ = conn.Close(CloseTokenExpired, "token expired")
			return telemetry.ReasonTokenExpired
		case <-sub.Ready():
			var cut bool
			frames, cut = sub.Take(frames[:0])
			for i, f := range frames {
				if err := ws.writeRaw(eventMessage(f.Cursor, f.JSONMembers())); err != nil {
					clear(frames)
					return failed()
				}
				frames[i] = hub.Delivery{} // keep no event alive past its write
			}
			if cut {
				ws.closeRetry(CloseCutOff, sse.CutRetry())
				return telemetry.ReasonCutOff
			}
			beat.Reset(heartbeat)
		case <-presReady:
			var cut bool
			presMsgs, cut = pres.take(presMsgs[:0])
			for i, m := range presMsgs {
				if err := ws.writeRaw(m); err != nil {
					clear(presMsgs)
					return failed()
				}
				presMsgs[i] = nil
			}
			if cut {
				ws.closeRetry(CloseCutOff, sse.CutRetry())
				return telemetry.ReasonCutOff
			}
		case <-beat.C:
			if !pinging {
				// Ping waits for the pong, which the reader receives:
				// wait for it beside, not in, the loop that delivers.
				pinging = true
				go func() {
					pctx, pcancel := context.WithTimeout(ctx, ws.timeout)
					defer pcancel()
					pinged <- conn.Ping(pctx)
				}()
			}
			beat.Reset(heartbeat)
		case err := <-pinged:
			pinging = false
			if err != nil {
				log.Debug("websocket ping unanswered", "err", err)
				return failed()
			}
		}
	}
}

// wsReaderReason waits for the reader's verdict once the connection ended.
func wsReaderReason(readDone chan string) string {
	r := <-readDone
	readDone <- r // for serveWS's deferred wait
	return r
}

// read reads what the client sends until the connection ends, and
// returns the disconnect reason: the client left, or it broke a rule and
// was closed with a code (binary 1003, too big 1009, too many or not a
// message the hub reads 1008).
func (ws *wsSession) read() string {
	for {
		typ, b, err := ws.conn.Read(ws.ctx)
		if ws.limit.flooded.Load() {
			return telemetry.ReasonPolicy
		}
		if err != nil {
			var opErr *net.OpError
			switch {
			case errors.Is(err, websocket.ErrMessageTooBig):
				return telemetry.ReasonPolicy // the library closed it with 1009
			case websocket.CloseStatus(err) != -1, ws.ctx.Err() != nil, errors.Is(err, io.EOF),
				errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.As(err, &opErr):
				return telemetry.ReasonClientGone
			}
			// What is left is a frame the library refused (unmasked,
			// a reserved opcode or bit): say so, where it did not.
			_ = ws.conn.Close(websocket.StatusProtocolError, "protocol error")
			return telemetry.ReasonPolicy
		}
		if !ws.limit.allow() {
			_ = ws.conn.Close(websocket.StatusPolicyViolation, "too many messages")
			return telemetry.ReasonPolicy
		}
		if typ != websocket.MessageText {
			_ = ws.conn.Close(websocket.StatusUnsupportedData, "binary messages are not read")
			return telemetry.ReasonPolicy
		}
		var m wsClientMessage
		if err := json.Unmarshal(b, &m); err != nil {
			_ = ws.conn.Close(websocket.StatusPolicyViolation, "not a JSON message")
			return telemetry.ReasonPolicy
		}
		switch m.Type {
		case "ping":
			if err := ws.write(wsMessage{Type: "pong"}); err != nil {
				return telemetry.ReasonClientGone
			}
		case "publish":
			_ = ws.conn.Close(websocket.StatusPolicyViolation, "/ws does not publish: POST /api/publish")
			return telemetry.ReasonPolicy
		default:
			_ = ws.conn.Close(websocket.StatusPolicyViolation, "unknown message type")
			return telemetry.ReasonPolicy
		}
	}
}

// handleClientJS serves GET /sseguard.js, the browser client, with the
// headers of the pages' own scripts (the page policy: CSP, nosniff, ...),
// so a page under a strict CSP loads it from 'self'.
func (s *Server) handleClientJS(w http.ResponseWriter, r *http.Request) {
	s.profile.ApplyTo(w, r, policy.KindPage)
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(sseguardjs.Source)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(sseguardjs.Source)
}
