package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDurationCap is the cause of a run stopped by Config.Duration.
var ErrDurationCap = errors.New("bench: run reached its duration cap")

// phases of a run, for progress lines.
const (
	phaseStart int32 = iota
	phaseConnect
	phaseSettle
	phaseHold
	phasePublish
	phaseDrain
	phaseStall
	phaseReplayRead
	phaseStorm
	phaseClose
)

// run is the state of one Run.
type run struct {
	cfg           settings
	url           *url.URL
	streamReqs    [][]byte         // per stream node
	streamAddrs   []netip.AddrPort // per stream node
	publishHosts  []string         // per publish node: its Host header
	publishAddrs  []netip.AddrPort // per publish node
	customCompare func(a, b string) int
	tls           *tls.Config // nil for plain HTTP
	h2            *h2Pool     // nil unless the streams share HTTP/2 connections

	connect, latency, publish *histogram

	phase      atomic.Int32
	phaseStart atomic.Int64 // unix nanoseconds

	mu      sync.Mutex
	streams []*stream
	readers sync.WaitGroup // one per open stream
	closing atomic.Bool    // set before the run closes the streams

	opened, connectFailed                    atomic.Int64
	delivered, duplicates, outOfOrder, other atomic.Int64
	heartbeats, disconnects                  atomic.Int64
	pubAttempted, pubAccepted, pubFailed     atomic.Int64
	pubBytes                                 atomic.Int64 // data bytes of the accepted publishes
	rp                                       replayState
	accepted                                 []atomic.Uint64 // bitmap of accepted sequence numbers
	topicJSON, typeJSON                      []byte
	errs                                     errorLog
}

// Run loads the hub at cfg.URL and reports what it measured. It goes
// through these phases, each bounded:
//
//  1. sample the server's memory and CPU (PID or MetricsURL) and its own;
//  2. open the streams, paced by Ramp or ConnectRate, at most
//     ConnectConcurrency at a time, timing each from dial to response head;
//  3. wait Settle, then sample memory again: the memory per stream;
//  4. hold the streams idle for Hold, counting heartbeats and disconnects;
//  5. publish Events at Rate with Publishers concurrent requests, each
//     event's data carrying its sequence number and send time;
//  6. wait up to Drain for every stream to receive every accepted event;
//  7. close every stream and connection.
//
// A replay run (Config.Replay) opens no live streams: it publishes the
// Events as history, then holds clients that ask for that history and never
// read it while it samples the server's memory, then has clients read the
// whole history (see [Replay]).
//
// Progress lines go to progress (nil discards them), at most one a second.
//
// Run refuses a target, source or metrics URL that is not loopback
// (ErrNotLoopback) and a Config it cannot honor, with an error naming the
// field, before sending anything. When ctx ends or Config.Duration is
// reached, Run stops the current phase and returns the partial report with
// the error. In every case, when Run returns, every goroutine it started has
// ended and every connection it opened is closed.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	s, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, err := parseTarget(s.URL)
	if err != nil {
		return nil, err
	}
	if err := checkSources(s.Sources); err != nil {
		return nil, err
	}
	tlsConf, err := tlsSettings(&s, u)
	if err != nil {
		return nil, err
	}
	s.target, err = resolveLoopback(ctx, u, firstOr(s.Sources))
	if err != nil {
		return nil, configErrorf("URL: %w", err)
	}
	if err := checkFiles(s); err != nil {
		return nil, err
	}
	var smp sampler
	switch {
	case s.PID > 0:
		smp = procSampler{pid: s.PID, fds: s.replay}
	case s.MetricsURL != "":
		if smp, err = newMetricsSampler(ctx, s.MetricsURL, u, s.Token); err != nil {
			return nil, err
		}
	}
	if smp != nil {
		if _, err := smp.sample(ctx); err != nil {
			return nil, configErrorf("cannot sample the server: %w", err)
		}
	}
	if progress == nil {
		progress = io.Discard
	}

	r := newRun(s, u)
	if err := r.resolveNodes(ctx); err != nil {
		return nil, err
	}
	r.tls = tlsConf
	if s.H2Conns > 0 {
		r.h2 = newH2Pool(s.H2Conns)
	}
	rep := &Report{Target: s.URL, Dialed: s.target.String(), Transport: s.transportName(u), Topic: s.Topic, Started: time.Now()}
	for _, a := range s.Sources {
		rep.Sources = append(rep.Sources, a.String())
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.Duration, ErrDurationCap)
	defer cancel()
	stopProgress := r.startProgress(progress)
	runErr := r.execute(ctx, smp, rep)
	r.setPhase(phaseClose)
	r.closeStreams()
	stopProgress()
	r.finish(rep)
	if runErr != nil {
		rep.Stopped = runErr.Error()
		return rep, runErr
	}
	return rep, nil
}

func firstOr(a []netip.Addr) netip.Addr {
	if len(a) > 0 {
		return a[0]
	}
	return netip.Addr{}
}

// checkFiles refuses a run that would pass the process's open file limit
// before it opens anything.
func checkFiles(s settings) error {
	limit, ok := fdLimit()
	if !ok {
		return nil
	}
	need := uint64(s.streams) + uint64(s.Publishers) + uint64(s.Replay.Stalled+s.Replay.Polls+s.Replay.Readers+s.Replay.Storm) + 32
	if need > limit {
		return configErrorf("Streams %d needs about %d open files, over this process's limit of %d (ulimit -n)", s.streams, need, limit)
	}
	return nil
}

func newRun(s settings, u *url.URL) *run {
	r := &run{
		cfg:          s,
		url:          u,
		streamReqs:   [][]byte{streamRequest(u, &s)},
		streamAddrs:  []netip.AddrPort{s.target},
		publishHosts: []string{u.Host},
		publishAddrs: []netip.AddrPort{s.target},
		connect:      new(histogram),
		latency:      new(histogram),
		publish:      new(histogram),
		accepted:     make([]atomic.Uint64, (s.events+63)/64),
	}
	if s.Config.CompareIDs != nil {
		r.customCompare = s.Config.CompareIDs
	}
	r.topicJSON, _ = json.Marshal(s.Topic)
	if s.EventType != "" {
		r.typeJSON, _ = json.Marshal(s.EventType)
	}
	r.setPhase(phaseStart)
	return r
}

// resolveNodes resolves StreamURLs and PublishURLs, which replace URL
// for streams and publishes when set; each must be loopback.
func (r *run) resolveNodes(ctx context.Context) error {
	if len(r.cfg.StreamURLs) > 0 {
		r.streamReqs, r.streamAddrs = nil, nil
	}
	for _, raw := range r.cfg.StreamURLs {
		u, err := parseTarget(raw)
		if err != nil {
			return err
		}
		addr, err := resolveLoopback(ctx, u, firstOr(r.cfg.Sources))
		if err != nil {
			return configErrorf("StreamURLs: %w", err)
		}
		r.streamReqs = append(r.streamReqs, streamRequest(u, &r.cfg))
		r.streamAddrs = append(r.streamAddrs, addr)
	}
	if len(r.cfg.PublishURLs) > 0 {
		r.publishHosts, r.publishAddrs = nil, nil
	}
	for _, raw := range r.cfg.PublishURLs {
		u, err := parseTarget(raw)
		if err != nil {
			return err
		}
		addr, err := resolveLoopback(ctx, u, firstOr(r.cfg.Sources))
		if err != nil {
			return configErrorf("PublishURLs: %w", err)
		}
		r.publishHosts = append(r.publishHosts, u.Host)
		r.publishAddrs = append(r.publishAddrs, addr)
	}
	return nil
}

func (r *run) setPhase(p int32) {
	r.phaseStart.Store(time.Now().UnixNano())
	r.phase.Store(p)
}

// execute runs the phases; it returns nil or why it stopped early.
func (r *run) execute(ctx context.Context, smp sampler, rep *Report) error {
	var before, afterConnect, afterSettle, afterHold sample
	var err error
	if smp != nil {
		if before, err = smp.sample(ctx); err != nil {
			r.errs.add(err.Error())
			smp = nil
		}
	}
	selfBefore, _ := readProc("self")

	if r.cfg.streams > 0 {
		r.setPhase(phaseConnect)
		start := time.Now()
		r.connectAll(ctx)
		rep.Streams.ConnectSeconds = time.Since(start).Seconds()
		if err := cause(ctx); err != nil {
			return err
		}
		if r.opened.Load() == 0 {
			return errors.New("no stream could connect")
		}
		afterConnect = r.sampleOr(ctx, &smp)
		idleStart := time.Now()

		r.setPhase(phaseSettle)
		if !sleep(ctx, r.cfg.Settle) {
			return cause(ctx)
		}
		afterSettle = r.sampleOr(ctx, &smp)
		selfAfter, _ := readProc("self")
		rep.Generator = GeneratorReport{RSSBefore: selfBefore.rss, RSSAfter: selfAfter.rss}

		if r.cfg.Hold > 0 {
			r.setPhase(phaseHold)
			holdStart := time.Now()
			ok := sleep(ctx, r.cfg.Hold)
			rep.Streams.HoldSeconds = time.Since(holdStart).Seconds()
			if !ok {
				return cause(ctx)
			}
		}
		afterHold = r.sampleOr(ctx, &smp)
		idle := time.Since(idleStart)
		rep.Streams.MinHeartbeats = r.minHeartbeats()
		if smp != nil {
			n := r.opened.Load()
			sv := &ServerReport{
				Source:         smp.source(),
				RSSBefore:      before.rss,
				RSSAfter:       afterSettle.rss,
				Streams:        n,
				IdleSeconds:    idle.Seconds(),
				IdleCPUSeconds: (afterHold.cpu - afterConnect.cpu).Seconds(),
			}
			sv.MemoryPerStreamKB = float64(sv.RSSAfter-sv.RSSBefore) / float64(n) / 1024
			sv.Extrapolated1MGB = sv.MemoryPerStreamKB * 1024 * 1e6 / 1e9
			if idle > 0 {
				perStreamSecond := sv.IdleCPUSeconds / float64(n) / idle.Seconds()
				sv.IdleCPUPerStream = perStreamSecond * 1e6
				sv.Extrapolated1MCores = perStreamSecond * 1e6
			}
			rep.Server = sv
		}
	}

	if r.cfg.events > 0 {
		r.setPhase(phasePublish)
		start := time.Now()
		r.publishAll(ctx)
		rep.Publish.Seconds = time.Since(start).Seconds()
		if err := cause(ctx); err != nil {
			return err
		}
		if r.cfg.streams > 0 {
			r.setPhase(phaseDrain)
			drainStart := time.Now()
			ok := r.drain(ctx)
			rep.Delivery.DrainSeconds = time.Since(drainStart).Seconds()
			if !ok {
				return cause(ctx)
			}
		}
		if rep.Server != nil {
			end := r.sampleOr(ctx, &smp)
			if smp != nil {
				rep.Server.PublishCPUSeconds = (end.cpu - afterHold.cpu).Seconds()
			}
		}
	}
	if r.cfg.replay {
		return r.replayPhases(ctx, smp, rep)
	}
	return nil
}

// sampleOr samples the server; on failure it notes the error and stops
// sampling for the rest of the run.
func (r *run) sampleOr(ctx context.Context, smp *sampler) sample {
	if *smp == nil {
		return sample{}
	}
	s, err := (*smp).sample(ctx)
	if err != nil {
		r.errs.add(err.Error())
		*smp = nil
	}
	return s
}

// cause returns why ctx ended, or nil.
func cause(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if c := context.Cause(ctx); errors.Is(c, ErrDurationCap) {
		return c
	}
	return ctx.Err()
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connectAll opens the streams, paced and bounded, and returns when every
// connect has finished.
func (r *run) connectAll(ctx context.Context) {
	var interval time.Duration
	switch {
	case r.cfg.ConnectRate > 0:
		interval = time.Duration(float64(time.Second) / r.cfg.ConnectRate)
	case r.cfg.Ramp > 0:
		interval = r.cfg.Ramp / time.Duration(r.cfg.streams)
	}
	sem := make(chan struct{}, r.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < r.cfg.streams; i++ {
		if interval > 0 && !sleep(ctx, time.Until(start.Add(time.Duration(i)*interval))) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s, d, err := r.dial(ctx, i)
			if err != nil {
				if ctx.Err() == nil {
					r.connectFailed.Add(1)
					r.errs.add("connect: " + err.Error())
				}
				return
			}
			r.connect.record(d)
			r.mu.Lock()
			if r.closing.Load() {
				r.mu.Unlock()
				s.close()
				return
			}
			r.streams = append(r.streams, s)
			r.readers.Add(1)
			r.mu.Unlock()
			r.opened.Add(1)
			// A fresh goroutine keeps the reader's stack small: the
			// connect path's deeper stack is left behind.
			go func() {
				defer r.readers.Done()
				s.read()
			}()
		})
	}
	wg.Wait()
}

// closeStreams closes every stream and waits for their readers.
func (r *run) closeStreams() {
	r.mu.Lock()
	r.closing.Store(true)
	streams := r.streams
	r.mu.Unlock()
	for _, s := range streams {
		s.close()
	}
	r.readers.Wait()
	if r.h2 != nil {
		r.h2.close()
	}
}

// minHeartbeats returns the fewest comments an open stream has received.
func (r *run) minHeartbeats() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m int64 = -1
	for _, s := range r.streams {
		if s.ended.Load() {
			continue
		}
		if n := s.heartbeats.Load(); m < 0 || n < m {
			m = n
		}
	}
	return max(m, 0)
}

// drain waits until every open stream has received as many events as were
// accepted, or Drain passes. It reports false when ctx ended.
func (r *run) drain(ctx context.Context) bool {
	want := r.pubAccepted.Load()
	deadline := time.Now().Add(r.cfg.Drain)
	r.mu.Lock()
	streams := r.streams
	r.mu.Unlock()
	for {
		done := true
		for _, s := range streams {
			if !s.ended.Load() && s.unique.Load() < want {
				done = false
				break
			}
		}
		if done || time.Now().After(deadline) {
			return true
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return false
		}
	}
}

// publishAll sends the events, paced by Rate, with Publishers workers,
// each over a connection of its own (pubConn).
func (r *run) publishAll(ctx context.Context) {
	dialer := &net.Dialer{Timeout: r.cfg.ConnectTimeout}
	if len(r.cfg.Sources) > 0 {
		dialer.LocalAddr = &net.TCPAddr{IP: r.cfg.Sources[0].AsSlice()}
	}
	// One dialer and request head per node: worker i publishes to node
	// i mod n, over its own kept-alive connection.
	dials := make([]func(context.Context) (net.Conn, error), len(r.publishAddrs))
	heads := make([][]byte, len(r.publishAddrs))
	for i, addr := range r.publishAddrs {
		target := addr.String()
		dials[i] = func(ctx context.Context) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, "tcp", target)
			if err != nil || r.tls == nil {
				return conn, err
			}
			tc, err := handshake(ctx, conn, r.h1TLS()) // publishes over HTTP/1.1 whatever the streams use
			if err != nil {
				conn.Close()
				return nil, err
			}
			return tc, nil
		}
		heads[i] = newPubHead(r.publishHosts[i], r.cfg.PublishPath, r.cfg.Token)
	}

	jobs := make(chan int64)
	var wg sync.WaitGroup
	for w := range r.cfg.Publishers {
		node := w % len(dials)
		wg.Go(func() {
			pc := &pubConn{dial: dials[node], head: heads[node], timeout: r.cfg.PublishTimeout}
			defer pc.close()
			var buf []byte
			for seq := range jobs {
				buf = r.publishOne(ctx, pc, seq, buf)
			}
		})
	}
	var interval time.Duration
	if r.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / r.cfg.Rate)
	}
	start := time.Now()
dispatch:
	for i := 0; i < r.cfg.events; i++ {
		if interval > 0 && !sleep(ctx, time.Until(start.Add(time.Duration(i)*interval))) {
			break
		}
		select {
		case jobs <- int64(i):
		case <-ctx.Done():
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
}

// publishOne publishes event seq; buf is reused between calls.
func (r *run) publishOne(ctx context.Context, pc *pubConn, seq int64, buf []byte) []byte {
	r.pubAttempted.Add(1)
	sent := time.Now()
	pad := r.cfg.PadBytes
	if r.cfg.DataBytes > 0 {
		pad = padFor(seq, sent.UnixNano(), r.cfg.DataBytes)
	}
	payload := appendPayload(nil, seq, sent.UnixNano(), pad)
	data, _ := json.Marshal(string(payload))
	buf = append(buf[:0], `{"topic":`...)
	buf = append(buf, r.topicJSON...)
	buf = append(buf, `,"data":`...)
	buf = append(buf, data...)
	if r.typeJSON != nil {
		buf = append(buf, `,"type":`...)
		buf = append(buf, r.typeJSON...)
	}
	buf = append(buf, '}')

	status, excerpt, err := pc.do(ctx, buf)
	if err != nil {
		if ctx.Err() == nil {
			r.pubFailed.Add(1)
			r.errs.add("publish: " + err.Error())
		}
		return buf
	}
	if status/100 != 2 {
		r.pubFailed.Add(1)
		r.errs.add(fmt.Sprintf("publish answered %d: %s", status, bytes.TrimSpace(excerpt)))
		return buf
	}
	r.publish.record(time.Since(sent))
	r.accepted[seq/64].Or(1 << (uint64(seq) % 64))
	r.pubBytes.Add(int64(len(payload)))
	r.pubAccepted.Add(1)
	return buf
}

// finish fills the report's counts once every goroutine has ended.
func (r *run) finish(rep *Report) {
	rep.Elapsed = time.Since(rep.Started).Seconds()
	opened := r.opened.Load()
	rep.Streams.Requested = r.cfg.streams
	rep.Streams.Opened = opened
	rep.Streams.Failed = r.connectFailed.Load()
	rep.Streams.Connect = r.connect.summary()
	rep.Streams.Heartbeats = r.heartbeats.Load()
	rep.Streams.Disconnects = r.disconnects.Load()

	accepted := r.pubAccepted.Load()
	rep.Publish.Requested = r.cfg.events
	rep.Publish.Attempted = r.pubAttempted.Load()
	rep.Publish.Accepted = accepted
	rep.Publish.Failed = r.pubFailed.Load()
	rep.Publish.Rate = r.cfg.Rate
	rep.Publish.Publishers = r.cfg.Publishers
	if rep.Publish.Seconds > 0 {
		rep.Publish.Throughput = float64(accepted) / rep.Publish.Seconds
	}
	rep.Publish.Latency = r.publish.summary()

	d := &rep.Delivery
	d.Expected = accepted * opened
	d.Delivered = r.delivered.Load()
	d.Duplicates = r.duplicates.Load()
	d.OutOfOrder = r.outOfOrder.Load()
	d.Other = r.other.Load()
	d.Latency = r.latency.summary()
	if accepted > 0 {
		for _, s := range r.streams {
			d.Lost += s.lost(r.accepted)
		}
	}
	if g := &rep.Generator; g.RSSAfter > 0 && opened > 0 {
		g.MemoryPerStreamKB = float64(g.RSSAfter-g.RSSBefore) / float64(opened) / 1024
	}
	if r.cfg.replay {
		r.finishReplay(rep)
	}
	rep.Errors = r.errs.list()
}

// startProgress writes a progress line a second until the returned func
// is called; that func returns once the writer goroutine has ended.
func (r *run) startProgress(w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if line := r.progressLine(); line != "" {
					fmt.Fprintln(w, line)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func (r *run) progressLine() string {
	since := time.Since(time.Unix(0, r.phaseStart.Load())).Round(time.Second)
	switch r.phase.Load() {
	case phaseConnect:
		return fmt.Sprintf("connect: %d/%d open, %d failed, p99 %.1f ms", r.opened.Load(), r.cfg.streams, r.connectFailed.Load(), ms(r.connect.quantile(0.99)))
	case phaseSettle:
		return fmt.Sprintf("settle: %d streams open, %s/%s", r.opened.Load()-r.disconnects.Load(), since, r.cfg.Settle)
	case phaseHold:
		return fmt.Sprintf("hold: %s/%s, %d streams open, %d heartbeats, %d disconnects", since, r.cfg.Hold, r.opened.Load()-r.disconnects.Load(), r.heartbeats.Load(), r.disconnects.Load())
	case phasePublish:
		return fmt.Sprintf("publish: %d/%d accepted, %d failed; %d delivered, p99 %.1f ms", r.pubAccepted.Load(), r.cfg.events, r.pubFailed.Load(), r.delivered.Load(), ms(r.latency.quantile(0.99)))
	case phaseDrain:
		return fmt.Sprintf("drain: %d/%d delivered", r.delivered.Load(), r.pubAccepted.Load()*r.opened.Load())
	case phaseStall, phaseReplayRead, phaseStorm:
		return r.replayProgress(since)
	case phaseClose:
		return "close: closing streams"
	}
	return ""
}

// errorLog counts distinct errors, at most maxErrorKinds of them.
type errorLog struct {
	mu     sync.Mutex
	counts map[string]int64
	more   int64
}

const maxErrorKinds = 20

// portRE matches the port of an address in an error message, so that one
// cause with many local ports counts as one kind.
var portRE = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:.]+\]):\d+`)

func (e *errorLog) add(msg string) {
	msg = portRE.ReplaceAllString(msg, "$1:*")
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[string]int64{}
	}
	if _, ok := e.counts[msg]; !ok && len(e.counts) >= maxErrorKinds {
		e.more++
		return
	}
	e.counts[msg]++
}

func (e *errorLog) list() []ErrorCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ErrorCount
	for msg, n := range e.counts {
		out = append(out, ErrorCount{Error: msg, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Error < out[j].Error
	})
	if e.more > 0 {
		out = append(out, ErrorCount{Error: "errors of other kinds", Count: e.more})
	}
	return out
}
