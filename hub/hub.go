// Package hub fans published events out to subscribers: topics, the
// ordered publish pipeline, replay hand-over and slow-consumer bounds.
//
// One goroutine, the committer, owns publishing: it takes every pending
// publish, appends them to the store in one transaction (group commit: one
// fsync for the batch), then hands the committed events, in ID order, to the
// subscribers of their topics. Each event is encoded once (Frame.Wire);
// every subscriber shares those bytes, and whoever writes them to a socket
// frames them for its protocol there: the hub speaks no HTTP.
//
// A subscriber starts buffered: it is registered before its handler reads
// history from the store, so an event committed while history is read is
// either in the store's answer or in the buffer, never in neither. Going live
// drops what the replay already delivered, so nothing is lost and nothing
// repeats.
//
// Each subscriber tracks its cursor (store.Store.Next), which its id lines
// carry: the shared Wire when the cursor is the event's ID (every reader
// of one topic, and every reader on a store with one sequence), else the
// event's lines and an id line of its own (Frame.parts).
//
// Over a store that several hub processes share (store.Feed) the committer
// does not fan out: every event, this hub's included, reaches subscribers
// through the feed, which Run follows, so that no process delivers an
// event twice. Subscribers that may have missed events of the feed (it
// started after them, or reported a gap) are cut loose to resume from
// their cursors.
//
// A subscriber whose pending bytes exceed its bound is cut off rather than
// skipped: its queue is dropped and its handler ends the stream with a retry
// hint, so the client reconnects with Last-Event-ID and catches up from the
// store. The cut-offs of one commit are logged as one line, after the hub's
// lock is released: a network blip that cuts off thousands of streams at
// once must not hold up subscribes, closes and the next commit while a
// logger writes thousands of lines.
//
// # Lock order
//
// A goroutine that holds one of these locks takes only locks further down
// the list:
//
//  1. Hub.mu (read by the committer for a fan-out; written by Subscribe
//     and Close, and at shutdown).
//  2. Subscriber.mu, one subscriber's queue.
//  3. Whatever the notify function of SetNotify takes: it runs with
//     Subscriber.mu held, so it must be a leaf (package park's writer
//     run-queue lock is) and must never call back into the hub.
//
// Subscriber.Close takes Hub.mu and releases it before it takes
// Subscriber.mu. Nothing logs, and nothing waits for a client, with
// Hub.mu held.
//
// A failed commit fails the publishes of its batch and nothing else: a
// store that returns an error or panics (a damaged file) answers those
// publishers with an error, and the committer goes on with the next batch.
// A store spread over shards may fail some records of a batch
// (store.Appended.Err): only their publishers get the error. Hub.Healthy
// reports the last commit's outcome and a periodic Store.Ping for
// readiness checks, and failures are logged at most once a minute, each
// line with the count it stands for. Retention (Store.Trim) runs beside
// the committer, never in its way.
//
// Package hub does not speak HTTP (package server does, and package park
// frames the wire bytes as HTTP/1.1 chunks) or store events (package store
// does).
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sseguard/sseguard/internal/lograte"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
)

// ErrClosed is returned once the hub is shutting down.
var ErrClosed = errors.New("hub: closed")

// Options configure a Hub. Store is required; other zero values are
// replaced by the documented defaults.
type Options struct {
	// Store keeps events. Required.
	Store store.Store
	// QueueBytes bounds the bytes waiting for one subscriber; past it the
	// subscriber is cut off. Zero means 1 MiB.
	QueueBytes int
	// MaxBatch bounds how many records one store transaction takes. Zero
	// means 512.
	MaxBatch int
	// TrimInterval is how often retention runs. Zero means one minute.
	TrimInterval time.Duration
	// Logger receives slow-consumer and store errors. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// UnhealthyFor is how long Healthy reports a failed store commit when
	// no commit has succeeded since. Zero means one minute.
	UnhealthyFor time.Duration
	// PingInterval is how often Run pings the store (Store.Ping), for
	// Healthy and StoreState: a store that stops answering makes the
	// node unready within that time, and one that answers again makes it
	// ready without waiting for a publish. Zero means two seconds.
	PingInterval time.Duration
	// TrimTimeout bounds one retention run, which goes on beside the
	// committer so that a slow store's Trim never holds publishes. Zero
	// means one minute.
	TrimTimeout time.Duration
}

// Frame is one committed event with its wire encoding, shared read-only by
// every subscriber.
type Frame struct {
	Event store.Event
	// Wire is the encoded event, ending with its blank line: the event
	// stream's bytes, not framed for any transport.
	Wire []byte

	jsonOnce sync.Once
	json     []byte // see JSONMembers
}

// JSONMembers returns EventJSONMembers of f's event, built on first use
// and then shared by every reader, so that a transport that sends events
// as JSON objects (the hub's WebSocket) encodes each event once too.
func (f *Frame) JSONMembers() []byte {
	f.jsonOnce.Do(func() { f.json = EventJSONMembers(f.Event) })
	return f.json
}

// EventJSONMembers returns e's topic, type and data as the members of a
// JSON object, `"topic":…,"type":…,"data":…`, without braces and without
// the id, which is the reader's cursor (see store.Store.Next); the type is
// "message" when e has none, the name EventSource gives such an event.
func EventJSONMembers(e store.Event) []byte {
	typ := e.Type
	if typ == "" {
		typ = "message"
	}
	b := make([]byte, 0, len(e.Topic)+len(typ)+len(e.Data)+40)
	b = append(b, `"topic":`...)
	b = appendJSONString(b, e.Topic)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"data":`...)
	return appendJSONString(b, e.Data)
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters included).
func appendJSONString(dst []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(dst, q...)
}

// NewFrame encodes e once for every subscriber, or returns nil when e
// cannot be encoded (a store bug: Publish validates what it stores).
func NewFrame(e store.Event) *Frame {
	wire := Encode(e)
	if wire == nil {
		return nil
	}
	return &Frame{Event: e, Wire: wire}
}

// parts returns the bytes that give f to a reader whose cursor after f is
// cursor. When the cursor is the event's ID (every reader of one topic,
// and every reader of a store with one sequence) that is the shared Wire
// alone. Otherwise it is the event's lines without its id line, then an
// id line of the reader's cursor and the blank line that ends the event:
// a parser takes the id field anywhere before that blank line (WHATWG
// HTML, "event stream interpretation"). It is the one place that decides
// what a reader's id line says; AppendTo and Subscriber.Pull use it.
func (f *Frame) parts(cursor string) (head, tail []byte) {
	if cursor == "" || cursor == f.Event.ID {
		return f.Wire, nil
	}
	body := f.Wire[:len(f.Wire)-1] // without the blank line
	if f.Event.ID != "" {          // Encode writes the id line first
		body = body[len("id: ")+len(f.Event.ID)+1:]
	}
	tail = make([]byte, 0, len("id: ")+len(cursor)+2)
	tail = append(tail, "id: "...)
	tail = append(tail, cursor...)
	return body, append(tail, '\n', '\n')
}

// AppendTo appends the wire form of f, as a reader whose cursor after f is
// cursor gets it, to dst.
func (f *Frame) AppendTo(dst []byte, cursor string) []byte {
	head, tail := f.parts(cursor)
	return append(append(dst, head...), tail...)
}

// Delivery is a frame queued for one subscriber, with the subscriber's
// cursor after it: what its id line says (see store.Store.Next).
type Delivery struct {
	*Frame
	Cursor string
}

// appendParts appends d's wire bytes to dst: the shared Wire when the
// cursor is the event's ID, else its parts.
func (d Delivery) appendParts(dst [][]byte) [][]byte {
	head, tail := d.Frame.parts(d.Cursor)
	if tail == nil {
		return append(dst, head)
	}
	return append(dst, head, tail)
}

// size is what d counts against its subscriber's queue bound.
func (d Delivery) size() int {
	if d.Cursor == "" || d.Cursor == d.Frame.Event.ID {
		return len(d.Frame.Wire)
	}
	return len(d.Frame.Wire) - len(d.Frame.Event.ID) + len(d.Cursor)
}

// Hub is the fan-out core. Create it with New and start it with Run.
type Hub struct {
	opts  Options
	store store.Store
	feed  store.Feed // the store's, when it has one
	log   *slog.Logger

	pub  chan *pubReq
	reqs sync.Pool // of *pubReq; see newPubReq

	mu       sync.RWMutex
	topics   map[string]map[*Subscriber]struct{}
	patterns patternIndex // subscribers of topic patterns; see pattern.go
	closed   bool

	closing   chan struct{} // closed when Run's context ends
	closeOnce sync.Once
	done      chan struct{} // closed when Run returns

	published, duplicates, delivered, cutOff atomic.Uint64
	deliveredBytes                           atomic.Uint64
	subscribers                              atomic.Int64

	observer Observer // set before Run; see SetObserver

	health   atomic.Pointer[commitFailure] // the last commit, when it failed
	ping     atomic.Pointer[pingResult]    // the last periodic Store.Ping
	follows  atomic.Bool                   // the feed is started and following
	trimming atomic.Bool                   // a retention run is in progress
	trims    sync.WaitGroup                // the retention run, for Run's return
	failLog  lograte.Limiter
	failing  failures // the committer's own
}

// commitFailure is a failed store commit.
type commitFailure struct {
	err error
	at  time.Time
}

// failures counts the failed commits of the current run of failures, for
// the log. Only the committer goroutine touches it.
type failures struct {
	since     time.Time // the first failure of the run
	total     int       // failed commits since then
	publishes int       // publishes failed since the last log line
	last      error
}

// Keys of the failure log limiter.
const (
	logKeyAppend    = "append"
	logKeyRecovered = "recovered"
	logKeyPanic     = "panic"
)

// Observer receives the hub's timings, for metrics.
type Observer interface {
	// StoreAppend is the time of one store commit.
	StoreAppend(d time.Duration)
	// Delivered is the time from an event's commit until a subscriber's
	// writer took it for the socket.
	Delivered(d time.Duration)
}

// FeedObserver is an Observer that also takes the feed's lag: the time
// from an event's commit, on whichever process committed it, to its
// fan-out here (store.Event.Time; clocks of different machines may
// differ).
type FeedObserver interface {
	Observer
	FeedLag(d time.Duration)
}

// SetObserver makes the hub report timings to o. Call it before Run.
func (h *Hub) SetObserver(o Observer) { h.observer = o }

// Stats are counters a hub keeps for metrics; read them with Hub.Stats.
type Stats struct {
	Published      uint64 // events committed
	Duplicates     uint64 // publishes answered from the idempotency window
	Delivered      uint64 // frames queued to subscribers
	DeliveredBytes uint64 // bytes of those frames
	CutOff         uint64 // subscribers cut off for falling behind
	Subscribers    int    // currently registered
}

// New returns a hub over opts.Store. Call Run to start it.
func New(opts Options) *Hub {
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 1 << 20
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.TrimInterval <= 0 {
		opts.TrimInterval = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UnhealthyFor <= 0 {
		opts.UnhealthyFor = time.Minute
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 2 * time.Second
	}
	if opts.TrimTimeout <= 0 {
		opts.TrimTimeout = time.Minute
	}
	feed, _ := opts.Store.(store.Feed)
	return &Hub{
		opts:    opts,
		store:   opts.Store,
		feed:    feed,
		log:     opts.Logger,
		pub:     make(chan *pubReq, 1024),
		topics:  make(map[string]map[*Subscriber]struct{}),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Store returns the hub's store.
func (h *Hub) Store() store.Store { return h.store }

// Closing is closed when the hub starts shutting down; stream handlers
// watch it to end their streams with a retry hint.
func (h *Hub) Closing() <-chan struct{} { return h.closing }

// Run runs the committer and retention until ctx ends, then refuses new
// publishes, answers the queued ones, and cuts every subscriber loose. It
// does not close the store. It returns nil after a clean stop.
//
// Over a store.Feed, Run also follows the feed (see follow) and returns
// once that has stopped.
func (h *Hub) Run(ctx context.Context) error {
	defer close(h.done)
	if h.feed != nil {
		fctx, cancel := context.WithCancel(ctx)
		followed := make(chan struct{})
		go func() {
			defer close(followed)
			h.follow(fctx)
		}()
		defer func() {
			cancel()
			<-followed
		}()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		h.watch(wctx)
	}()
	defer func() {
		stopWatch()
		<-watched
		h.trims.Wait()
	}()
	trim := time.NewTicker(h.opts.TrimInterval)
	defer trim.Stop()
	// Reports failures that the limiter held back once a burst has ended.
	flush := time.NewTicker(lograte.DefaultInterval)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			h.shutdown()
			return nil
		case req := <-h.pub:
			h.commit(req)
		case <-flush.C:
			if n, ok := h.failLog.Flush(logKeyAppend, h.opts.Now()); ok {
				h.logFailures(n)
			}
		case <-trim.C:
			h.startTrim(wctx)
		}
	}
}

func (h *Hub) shutdown() {
	h.closeOnce.Do(func() { close(h.closing) })
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	for { // answer what was queued before the close
		select {
		case req := <-h.pub:
			h.commit(req)
		default:
			return
		}
	}
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Published:      h.published.Load(),
		Duplicates:     h.duplicates.Load(),
		Delivered:      h.delivered.Load(),
		DeliveredBytes: h.deliveredBytes.Load(),
		CutOff:         h.cutOff.Load(),
		Subscribers:    int(h.subscribers.Load()),
	}
}

type pubReq struct {
	ctx  context.Context
	recs []store.Record // a copy of the caller's, in buf
	buf  []store.Record
	res  chan pubRes
}

type pubRes struct {
	appended []store.Appended
	err      error
}

// maxPooledRecs bounds the record buffer a pooled request keeps.
const maxPooledRecs = 64

// newPubReq returns a publish request from the hub's pool (Hub.reqs):
// two allocations fewer per publish on the hot path. The pool is the
// hub's, not the package's, so that a request's channel never leaves the
// hub (and a testing/synctest bubble) it was made in.
func (h *Hub) newPubReq() *pubReq {
	if req, ok := h.reqs.Get().(*pubReq); ok {
		return req
	}
	return &pubReq{res: make(chan pubRes, 1)}
}

// release returns req to the hub's pool. Call it only once the committer
// has answered req (or never got it): it does not touch req after its
// answer.
func (h *Hub) release(req *pubReq) {
	req.ctx, req.recs = nil, nil
	if cap(req.buf) > maxPooledRecs {
		req.buf = nil
	}
	clear(req.buf[:cap(req.buf)]) // let the records' strings go
	req.buf = req.buf[:0]
	h.reqs.Put(req)
}

// Publish appends recs durably and fans them out. It returns once the store
// has committed them (or found them to be duplicates), with one result per
// record. An event whose type cannot be encoded safely is refused before
// anything is stored (see sse.Event.Validate). Publish does not keep recs.
func (h *Hub) Publish(ctx context.Context, recs ...store.Record) ([]store.Appended, error) {
	for _, r := range recs {
		if err := (sse.Event{Type: r.Type}).Validate(); err != nil {
			return nil, err
		}
	}
	req := h.newPubReq()
	req.ctx = ctx
	req.buf = append(req.buf[:0], recs...)
	req.recs = req.buf
	select {
	case h.pub <- req:
	case <-h.closing:
		h.release(req)
		return nil, ErrClosed
	case <-ctx.Done():
		h.release(req)
		return nil, ctx.Err()
	}
	select {
	case r := <-req.res:
		h.release(req)
		return r.appended, r.err
	case <-h.done:
		// Run ended before it reached this request; it may have been
		// answered just before. The request is not pooled again: it may
		// still sit in h.pub.
		select {
		case r := <-req.res:
			return r.appended, r.err
		default:
			return nil, ErrClosed
		}
	}
}

// commit appends req and every publish queued behind it in one store
// transaction, then fans the new events out in ID order.
func (h *Hub) commit(first *pubReq) {
	reqs := []*pubReq{first}
	n := len(first.recs)
	yielded := false
gather:
	for n < h.opts.MaxBatch {
		select {
		case r := <-h.pub:
			reqs = append(reqs, r)
			n += len(r.recs)
		default:
			if yielded {
				break gather
			}
			// Handlers that are ready to run may be about to publish:
			// let them, once, so that a loaded hub commits them in this
			// batch rather than in one of their own (each batch costs a
			// store round trip and its wake-ups). An idle hub has nothing
			// else to run and goes on at once.
			runtime.Gosched()
			yielded = true
		}
	}
	recs := make([]store.Record, 0, n)
	live := reqs[:0:0]
	for _, r := range reqs {
		if r.ctx.Err() != nil { // the publisher gave up before the commit: store nothing
			r.res <- pubRes{err: r.ctx.Err()}
			continue
		}
		live = append(live, r)
		recs = append(recs, r.recs...)
	}
	if len(recs) == 0 {
		return
	}
	start := time.Now()
	appended, err := h.append(recs)
	if h.observer != nil {
		h.observer.StoreAppend(time.Since(start))
	}
	if err != nil {
		err = fmt.Errorf("hub: append: %w", err)
		h.commitFailed(err, len(live))
		for _, r := range live {
			r.res <- pubRes{err: err}
		}
		return
	}
	// A sharded store may fail some records and store the others: each
	// publisher is answered for its own.
	var partial error
	failed := 0
	i := 0
	for _, r := range live {
		mine := appended[i : i+len(r.recs)]
		i += len(r.recs)
		if err := recordsErr(mine); err != nil {
			partial = err
			failed++
		}
	}
	if partial != nil {
		h.commitFailed(fmt.Errorf("hub: append: %w", partial), failed)
	} else {
		h.commitSucceeded()
	}
	h.fanOut(appended)
	i = 0
	for _, r := range live {
		mine := appended[i : i+len(r.recs)]
		i += len(r.recs)
		if err := recordsErr(mine); err != nil {
			r.res <- pubRes{err: fmt.Errorf("hub: append: %w", err)}
			continue
		}
		r.res <- pubRes{appended: mine}
	}
}

// recordsErr returns the first record error of a publish's results.
func recordsErr(appended []store.Appended) error {
	for _, a := range appended {
		if a.Err != nil {
			return a.Err
		}
	}
	return nil
}

// append appends recs in one store transaction. A panic in the store
// becomes an error for this batch, so that it does not end the committer
// and with it the process.
func (h *Hub) append(recs []store.Record) (appended []store.Appended, err error) {
	defer func() {
		if r := recover(); r != nil {
			appended, err = nil, fmt.Errorf("store panicked: %v", r)
			if _, ok := h.failLog.Allow(logKeyPanic, h.opts.Now()); ok {
				h.log.Error("store panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}
	}()
	appended, err = h.store.Append(context.Background(), recs)
	if err == nil && len(appended) != len(recs) {
		return nil, fmt.Errorf("store returned %d results for %d records", len(appended), len(recs))
	}
	return appended, err
}

// Healthy reports whether the hub can commit publishes: the error of the
// last periodic Store.Ping when it failed, else the error of the last
// store commit when it failed, and nil otherwise. A failed commit stops
// counting when the failure is older than Options.UnhealthyFor with no
// commit since, or, when it was the store being unreachable
// (store.ErrUnavailable), as soon as a later ping succeeds. Those rules
// bring a node back into rotation: readiness probes publish nothing, so a
// node taken out of rotation for a failed commit would otherwise never
// see the commit that clears it. (Any other failure, a full disk, passes
// a Ping, which need not write: it keeps counting for UnhealthyFor.)
//
// The server's readiness check calls it beside Store.Ping. Healthy is
// safe for concurrent use.
func (h *Hub) Healthy() error {
	if p := h.ping.Load(); p != nil && p.err != nil {
		return p.err
	}
	f := h.health.Load()
	if f == nil || h.opts.Now().Sub(f.at) >= h.opts.UnhealthyFor {
		return nil
	}
	if p := h.ping.Load(); p != nil && errors.Is(f.err, store.ErrUnavailable) && p.at.After(f.at) {
		return nil
	}
	return f.err
}

// pingResult is the outcome of one periodic Store.Ping.
type pingResult struct {
	err error
	at  time.Time // when it started
}

// StoreState is what the hub knows of its store, for /readyz and the
// dashboard.
type StoreState struct {
	// Checked is when the last periodic ping started; zero before the
	// first one.
	Checked time.Time
	// Reachable is whether that ping succeeded.
	Reachable bool
	// Err is its error, when it failed.
	Err error
	// Shared is true over a store several hub processes share
	// (store.Feed).
	Shared bool
	// Following is true, over a shared store, while the feed is in
	// place and the store reachable: events committed by any process
	// reach this one's subscribers.
	Following bool
	// Trimming is true while a retention run is in progress.
	Trimming bool
}

// StoreState returns what the last periodic ping and the feed say of the
// store. It is safe for concurrent use.
func (h *Hub) StoreState() StoreState {
	st := StoreState{Shared: h.feed != nil, Following: h.follows.Load(), Trimming: h.trimming.Load()}
	if p := h.ping.Load(); p != nil {
		st.Checked, st.Reachable, st.Err = p.at, p.err == nil, p.err
	}
	// While the store is unreachable the feed retries and then catches
	// up; until then nothing reaches this node.
	st.Following = st.Following && st.Reachable
	return st
}

// watch pings the store every Options.PingInterval until ctx ends, each
// ping bounded by the interval, and keeps the outcome for Healthy and
// StoreState. A change is logged once: a node that turns unready, or
// ready again, says why.
func (h *Hub) watch(ctx context.Context) {
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		at := h.opts.Now()
		pctx, cancel := context.WithTimeout(ctx, h.opts.PingInterval)
		err := h.pingStore(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		prev := h.ping.Swap(&pingResult{err: err, at: at})
		switch {
		case err != nil && (prev == nil || prev.err == nil):
			h.log.Error("store unreachable", "err", err)
		case err == nil && prev != nil && prev.err != nil:
			h.log.Warn("store reachable again", "after", at.Sub(prev.at))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pingStore pings the store; a panic is an error.
func (h *Hub) pingStore(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store panicked: %v", r)
		}
	}()
	return h.store.Ping(ctx)
}

// startTrim runs retention in a goroutine of its own, bounded by
// Options.TrimTimeout, unless a run is still in progress: a slow or hung
// store's Trim must not hold the committer and with it every publish.
func (h *Hub) startTrim(ctx context.Context) {
	if !h.trimming.CompareAndSwap(false, true) {
		h.log.Warn("retention still running; skipping this run", "timeout", h.opts.TrimTimeout)
		return
	}
	h.trims.Add(1)
	go func() {
		defer h.trims.Done()
		defer h.trimming.Store(false)
		tctx, cancel := context.WithTimeout(ctx, h.opts.TrimTimeout)
		defer cancel()
		n, err := h.trim(tctx)
		switch {
		case err != nil && ctx.Err() == nil:
			h.log.Error("retention failed", "err", err)
		case n > 0:
			h.log.Debug("retention removed events", "count", n)
		}
	}()
}

// trim runs Store.Trim; a panic is an error.
func (h *Hub) trim(ctx context.Context) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("store panicked: %v", r)
		}
	}()
	return h.store.Trim(ctx, h.opts.Now())
}

// commitFailed records a failed commit of publishes publishes, and logs it
// unless a line went out less than a minute ago: that line's successor
// then counts it.
func (h *Hub) commitFailed(err error, publishes int) {
	now := h.opts.Now()
	h.health.Store(&commitFailure{err: err, at: now})
	f := &h.failing
	if f.total == 0 {
		f.since = now
	}
	f.total++
	f.publishes += publishes
	f.last = err
	if suppressed, ok := h.failLog.Allow(logKeyAppend, now); ok {
		h.logFailures(suppressed + 1)
	}
}

// logFailures logs n failed commits, the last one's error, and the
// publishes they failed.
func (h *Hub) logFailures(n int) {
	f := &h.failing
	h.log.Error("store commits failed", "count", n, "publishes", f.publishes, "period", lograte.DefaultInterval, "err", f.last)
	f.publishes = 0
}

// commitSucceeded ends a run of failures: Healthy clears, and one line
// (at most one a minute) says how long the run lasted.
func (h *Hub) commitSucceeded() {
	if h.health.Load() != nil {
		h.health.Store(nil)
	}
	f := &h.failing
	if f.total == 0 {
		return
	}
	now := h.opts.Now()
	if _, ok := h.failLog.Allow(logKeyRecovered, now); ok {
		h.log.Warn("store commits succeed again", "failed_commits", f.total, "for", now.Sub(f.since), "last_err", f.last)
	}
	f.total = 0
}

// Encode returns the wire form of a stored event.
func Encode(e store.Event) []byte {
	b, err := sse.Event{ID: e.ID, Type: e.Type, Data: e.Data}.AppendTo(nil)
	if err != nil {
		// Publish validated the type and IDs come from the store; data
		// cannot fail. An invalid event here is a store bug: send nothing.
		return nil
	}
	return b
}

// fanOut counts a commit's results and, unless the events reach the
// subscribers through the store's feed, hands the new ones to their
// topics' subscribers.
func (h *Hub) fanOut(appended []store.Appended) {
	var f fanOut
	h.mu.RLock()
	for _, a := range appended {
		if a.Err != nil {
			continue
		}
		if a.Duplicate {
			h.duplicates.Add(1)
			continue
		}
		h.published.Add(1)
		if h.feed == nil {
			h.deliverLocked(a.Event, &f)
		}
	}
	h.mu.RUnlock()
	f.log(h)
}

// deliver hands events, committed by any hub process, to their topics'
// subscribers. It is how a hub over a store.Feed fans out.
func (h *Hub) deliver(events []store.Event) {
	if o, ok := h.observer.(FeedObserver); ok {
		now := time.Now()
		for _, e := range events {
			if !e.Time.IsZero() {
				o.FeedLag(now.Sub(e.Time))
			}
		}
	}
	var f fanOut
	h.mu.RLock()
	for _, e := range events {
		h.deliverLocked(e, &f)
	}
	h.mu.RUnlock()
	f.log(h)
}

// fanOut gathers what one fan-out logs once Hub.mu is released.
type fanOut struct {
	cuts cutOffs
	bad  []store.Event // cannot be encoded: a store bug
}

// deliverLocked encodes e once and queues it to its topic's subscribers;
// h.mu is held for reading.
func (h *Hub) deliverLocked(e store.Event, fo *fanOut) {
	subs := h.topics[e.Topic]
	if len(subs) == 0 && (len(h.patterns.sorted) == 0 || !h.patterns.matches(e.Topic)) {
		return
	}
	f := NewFrame(e)
	if f == nil {
		fo.bad = append(fo.bad, e)
		return
	}
	h.pushAll(subs, f, fo)
	if len(h.patterns.sorted) > 0 {
		h.deliverPatterns(f, fo)
	}
}

// pushAll queues f to subs; h.mu is held for reading.
func (h *Hub) pushAll(subs map[*Subscriber]struct{}, f *Frame, fo *fanOut) {
	for s := range subs {
		switch s.push(f) {
		case pushed:
			h.delivered.Add(1)
			h.deliveredBytes.Add(uint64(len(f.Wire)))
		case pushCut:
			h.cutOff.Add(1)
			fo.cuts.add(s, f.Event.Topic)
		}
	}
}

func (fo *fanOut) log(h *Hub) {
	for _, e := range fo.bad {
		h.log.Error("stored event cannot be encoded", "id", e.ID, "topic", e.Topic)
	}
	fo.cuts.log(h.log, h.opts.QueueBytes)
}

// cutSamples is how many request IDs and topics a cut-off line names.
const cutSamples = 5

// cutOffs gathers the subscribers one fan-out cut off, for one log line.
type cutOffs struct {
	n      int
	sample [cutSamples]*Subscriber
	topics []string // distinct, at most cutSamples
}

func (c *cutOffs) add(s *Subscriber, topic string) {
	if c.n < cutSamples {
		c.sample[c.n] = s
	}
	c.n++
	if len(c.topics) < cutSamples && !slices.Contains(c.topics, topic) {
		c.topics = append(c.topics, topic)
	}
}

// log writes one line for every cut-off of a fan-out, naming a few of the
// streams by their request IDs. Call it without Hub.mu held.
func (c *cutOffs) log(log *slog.Logger, limit int) {
	if c.n == 0 {
		return
	}
	log.Warn("slow consumers cut off", "count", c.n, "request_ids", c.labels(), "topics", c.topics, "limit_bytes", limit)
}

// labels returns the request IDs of the sampled subscribers.
func (c *cutOffs) labels() []string {
	ids := make([]string, 0, min(c.n, cutSamples))
	for _, s := range c.sample[:min(c.n, cutSamples)] {
		ids = append(ids, s.getLabel())
	}
	return ids
}

// followRetry is how long follow waits before following again after the
// feed gave up.
const followRetry = time.Second

// follow fans out what the store's feed delivers until ctx ends. Should
// Follow give up, every subscriber is cut loose (they may have missed
// events; they resume from their cursors) and Follow starts again.
func (h *Hub) follow(ctx context.Context) {
	sink := &feedSink{h: h}
	for {
		err := h.feed.Follow(ctx, sink)
		h.follows.Store(false)
		if ctx.Err() != nil {
			return
		}
		h.log.Error("store feed stopped; following again", "err", err, "retry_in", followRetry)
		h.cutLoose("feed stopped", nil)
		t := time.NewTimer(followRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// feedSink is the hub's side of store.Feed.Follow.
type feedSink struct{ h *Hub }

// Started cuts loose the subscribers registered before the feed was in
// place: events committed before it may never reach them.
func (f *feedSink) Started() {
	f.h.follows.Store(true)
	f.h.cutLoose("feed started", nil)
}

// Deliver fans events out.
func (f *feedSink) Deliver(events []store.Event) { f.h.deliver(events) }

// Gap cuts loose the subscribers of topic: they resume from their cursors
// and the store reports what is missing.
func (f *feedSink) Gap(topic string) { f.h.cutLoose("feed gap", []string{topic}) }

// cutLoose cuts off the subscribers of topics (of every topic when topics
// is nil), so that they reconnect and resume from their cursors, and logs
// one line for them.
func (h *Hub) cutLoose(why string, topics []string) {
	var cuts cutOffs
	h.mu.RLock()
	for t, subs := range h.topics {
		if topics != nil && !slices.Contains(topics, t) {
			continue
		}
		for s := range subs {
			if s.cutLoose() {
				h.cutOff.Add(1)
				cuts.add(s, t)
			}
		}
	}
	h.cutLoosePatterns(topics, &cuts)
	h.mu.RUnlock()
	if cuts.n > 0 {
		h.log.Warn("subscribers cut loose to resume from the store", "why", why, "count", cuts.n, "request_ids", cuts.labels(), "topics", cuts.topics)
	}
}
