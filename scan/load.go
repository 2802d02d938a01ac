package scan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// ProbeLoad names the load run's streams in findings.
const ProbeLoad = "load"

// reconnectDelay is how long a load-mode stream waits before reconnecting
// after a drop; shorter than browsers' 3 s so the run stays bounded.
const reconnectDelay = 250 * time.Millisecond

// LoadStats is what a load run measured.
type LoadStats struct {
	Streams       int           `json:"streams"`
	RampMS        float64       `json:"ramp_ms"`
	WindowMS      float64       `json:"window_ms"`
	Opened        int           `json:"opened"`         // streams that opened at least once
	Failed        int           `json:"failed"`         // streams that never opened
	ConnectErrors int           `json:"connect_errors"` // failed attempts, reconnects included
	Drops         int           `json:"drops"`          // streams that ended before the window did
	Resets        int           `json:"resets"`         // drops that were resets, not clean ends
	Reconnects    int           `json:"reconnects"`
	Events        int64         `json:"events"`
	Published     int           `json:"published,omitempty"`
	Missing       int           `json:"missing,omitempty"` // (stream, published event) pairs never delivered
	Headers       *Distribution `json:"time_to_headers,omitempty"`
	Latency       *Distribution `json:"latency,omitempty"`
	LatencySource string        `json:"latency_source,omitempty"`
}

// loadAgg collects the streams' results: the run's figures, and what the
// rules made of each stream's head, replayed into the scan's passes as
// findings that say on how many responses they were seen.
type loadAgg struct {
	mu          sync.Mutex
	findings    map[[2]string]int // (rule, evidence) → streams that showed it
	findOrder   [][2]string
	ran         map[string]bool
	reasons     map[string]string
	nginx       bool
	published   bool // --publish
	stats       LoadStats
	errs        map[string]int
	dropWhy     map[string]int
	headerTimes []time.Duration
	latencies   []time.Duration
	tsTimes     []span   // events with a "ts": from it to their arrival
	silences    [][]span // each stream's long silences, judged at the end
	seenSilent  int      // streams silent over HeartbeatMax, the scanner's stalls included
	silent      int      // streams silent over HeartbeatMax for the server
	worstSilent time.Duration
	stalls      stalls // the scanner's own stalls during the run
	open        int
	events      atomic.Int64 // live, for the progress line
}

func newLoadAgg(cfg *Config) *loadAgg {
	a := &loadAgg{findings: map[[2]string]int{}, ran: map[string]bool{}, reasons: map[string]string{},
		errs: map[string]int{}, dropWhy: map[string]int{}}
	a.stats.Streams = cfg.Concurrency
	a.stats.RampMS, a.stats.WindowMS = ms(cfg.Ramp), ms(cfg.Duration)
	return a
}

// merge adds what the rules made of one stream's head.
func (a *loadAgg) merge(passes []*pass, nginx bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range passes {
		id := p.rule.ID
		for _, f := range p.findings {
			k := [2]string{id, f.Evidence}
			if _, seen := a.findings[k]; !seen {
				a.findOrder = append(a.findOrder, k)
			}
			a.findings[k]++
		}
		if p.ran {
			a.ran[id] = true
		} else if p.reason != "" {
			a.reasons[id] = p.reason
		}
	}
	a.nginx = a.nginx || nginx
}

// replay gives p what its rule made of the run's stream heads: each
// finding with the share of responses it was seen on.
func (a *loadAgg) replay(p *pass) {
	id := p.rule.ID
	attempts := a.stats.Opened + a.stats.Reconnects + a.stats.ConnectErrors
	for _, k := range a.findOrder {
		if k[0] == id {
			p.report(ProbeLoad, fmt.Sprintf("%s (on %d of %d responses)", k[1], a.findings[k], attempts))
		}
	}
	if a.ran[id] {
		p.evaluated()
	}
	if why := a.reasons[id]; why != "" {
		p.skip(why)
	}
}

// failed counts a failed attempt to open a stream.
func (a *loadAgg) failed(why string) {
	a.mu.Lock()
	a.stats.ConnectErrors++
	a.errs[why]++
	a.mu.Unlock()
}

// opened counts a stream that opened, the first time or again.
func (a *loadAgg) opened(st *loadStream, res *rawhttp.Response, first bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if first {
		a.stats.Opened++
		st.opened = res.Timing.Headers
	} else {
		a.stats.Reconnects++
	}
	a.open++
	a.headerTimes = append(a.headerTimes, res.Timing.Headers.Sub(res.Timing.Sent))
}

// ended counts how a stream ended: the arrival of its events with a "ts",
// its long silences (judged by judgeSilences once the run's stalls are
// known), and a drop when it ended before the window did.
func (a *loadAgg) ended(st *loadStream, w *watch, tsTimes []span) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.open--
	a.tsTimes = append(a.tsTimes, tsTimes...)
	if sil := w.silences(); len(sil) > 0 {
		a.silences = append(a.silences, sil)
	}
	if w.end == endWindow {
		return
	}
	a.stats.Drops++
	why := "the server ended the stream"
	if w.end != endEOF {
		why = shortErr(w.endErr)
		if isReset(w.endErr) {
			a.stats.Resets++
		}
	}
	a.dropWhy[why]++
	st.droppedAt = append(st.droppedAt, w.endAt)
}

// loadStream is one stream of the run.
type loadStream struct {
	opened    time.Time // first successful open
	lastID    string
	seen      map[int]time.Time // published seq → first arrival
	droppedAt []time.Time
}

// runLoad opens cfg.Concurrency streams over cfg.Ramp and watches them for
// cfg.Duration, judging the head of every one.
func (s *scanner) runLoad(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(s.cfg.Duration)
	lctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	agg := newLoadAgg(s.cfg)
	probe := startStallProbe()
	side := s.startSide(ctx) // the side probes run once
	pub, pubDone := s.startPublisher(lctx, nil, s.cfg.Ramp+100*time.Millisecond,
		deadline.Add(-min(s.cfg.MaxLatency, (s.cfg.Duration-s.cfg.Ramp)/2)))
	agg.published = pub != nil
	stopProgress := s.progress(agg, start)
	streams := s.runStreams(lctx, agg, start, pub)
	agg.stalls = probe.stop()
	<-pubDone
	stopProgress()
	s.addSide(side())
	s.sortExchanges()
	return s.finishLoad(agg, streams, pub)
}

// runStreams opens the run's streams, spread over the ramp, and returns
// when every one has ended.
func (s *scanner) runStreams(ctx context.Context, agg *loadAgg, start time.Time, pub *publisher) []*loadStream {
	n := s.cfg.Concurrency
	// The rules judge each stream's head on its own.
	lite := &observations{cfg: s.cfg, https: s.obs.https}
	streams := make([]*loadStream, n)
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(int64(s.cfg.Ramp) * int64(i) / int64(n)))
		streams[i] = &loadStream{seen: map[int]time.Time{}}
		wg.Go(func() {
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
				return
			}
			s.loadOne(ctx, lite, agg, streams[i], pub)
		})
	}
	wg.Wait()
	return streams
}

// loadOne runs one stream until the deadline, reconnecting after drops.
func (s *scanner) loadOne(ctx context.Context, lite *observations, agg *loadAgg, st *loadStream, pub *publisher) {
	first := true
	for ctx.Err() == nil {
		res := s.openLoadStream(ctx, lite, agg, st)
		if res == nil {
			if !sleepCtx(ctx, reconnectDelay) {
				return
			}
			continue
		}
		agg.opened(st, res, first)
		first = false
		w, tsTimes := s.watchLoadStream(ctx, agg, st, res, pub)
		agg.ended(st, w, tsTimes)
		if w.end == endWindow || !sleepCtx(ctx, reconnectDelay) {
			return
		}
	}
}

// openLoadStream opens one stream of the run, with Last-Event-ID after a
// drop, and judges its head. It returns nil when no stream opened, which
// it counts unless the run is over.
func (s *scanner) openLoadStream(ctx context.Context, lite *observations, agg *loadAgg, st *loadStream) *rawhttp.Response {
	var own []rawhttp.Field
	if st.lastID != "" {
		own = append(own, field("Last-Event-ID", st.lastID))
	}
	res, err := s.send(ctx, probeSpec{name: ProbeLoad, url: s.u.String(), header: s.cfg.requestHeader(own...)})
	if err != nil {
		if ctx.Err() == nil {
			agg.failed(shortErr(err))
		}
		return nil
	}
	agg.merge(judgeEach(lite, &response{probe: ProbeLoad, res: res, stream: true, cors: true}), viaNginx(res))
	if !isEventStream(res) {
		res.Body.Close()
		agg.failed(fmt.Sprintf("status %d, Content-Type %s", res.StatusCode, quoteOrNone(res.Values("Content-Type"))))
		return nil
	}
	return res
}

// watchLoadStream reads one stream of the run until it ends, keeping its
// last ID and when each published event arrived; without --publish it
// returns the "ts" and arrival of events that carry one.
func (s *scanner) watchLoadStream(ctx context.Context, agg *loadAgg, st *loadStream, res *rawhttp.Response, pub *publisher) (*watch, []span) {
	var tsTimes []span
	w := watchStream(ctx, res, st.lastID, func(it item) {
		if it.comment {
			return
		}
		agg.events.Add(1)
		if it.lastID != "" {
			st.lastID = it.lastID
		}
		p, ok := payloadOf(it.event.Data)
		if !ok {
			return
		}
		switch {
		case pub != nil && p.Nonce == pub.nonce:
			if _, dup := st.seen[p.Seq]; !dup {
				st.seen[p.Seq] = it.at
			}
		case pub == nil && p.TS != nil:
			ts := time.UnixMilli(*p.TS)
			if lat := it.at.Sub(ts); lat > -time.Second && lat < time.Hour {
				tsTimes = append(tsTimes, span{ts, it.at})
			}
		}
	}, true, s.cfg.HeartbeatMax/4)
	return w, tsTimes
}

func isReset(err error) bool {
	var rst *rawhttp.StreamResetError
	return errors.As(err, &rst) || errors.Is(err, syscall.ECONNRESET)
}

// shortErr is an error's text without addresses that differ per stream.
func shortErr(err error) string {
	if err == nil {
		return "unknown"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg[:i], "127.0.0.1:") {
		msg = msg[i+2:]
	}
	return clip(msg, 120)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// progress writes a status line every 500 ms (the streams open now) until
// the returned function is called, and then a last one (the streams that
// opened at all).
func (s *scanner) progress(agg *loadAgg, start time.Time) func() {
	w := s.cfg.Progress
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	line := func(last bool) {
		agg.mu.Lock()
		st := agg.stats
		open, what := agg.open, "open"
		agg.mu.Unlock()
		if last {
			open, what = st.Opened, "opened"
		}
		st.Events = agg.events.Load()
		fmt.Fprintf(w, "\r\x1b[Kload %s/%s · %s %d/%d · failed %d · drops %d · reconnects %d · events %d",
			time.Since(start).Round(time.Second), s.cfg.Duration, what, open, st.Streams, st.ConnectErrors, st.Drops, st.Reconnects, st.Events)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				line(true)
				fmt.Fprintln(w)
				return
			case <-t.C:
				line(false)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// finishLoad completes the run's figures and records the run for the
// rules. The error is that of a --publish that failed.
func (s *scanner) finishLoad(agg *loadAgg, streams []*loadStream, pub *publisher) error {
	st := &agg.stats
	st.Events = agg.events.Load()
	st.Failed = st.Streams - st.Opened
	st.Headers = distribution(agg.headerTimes)
	s.rep.Load = st
	s.obs.load = agg
	if agg.nginx {
		s.obs.saw(Nginx)
	}
	agg.judgeSilences(s.cfg.HeartbeatMax)
	var pubErr error
	if pub != nil {
		sent, _, err := pub.snapshot()
		if err != nil {
			pubErr = fmt.Errorf("--publish: %w", err)
		}
		st.Published = len(sent)
		st.LatencySource = "publish"
		s.countDeliveries(agg, streams, sent)
	} else if len(agg.tsTimes) > 0 {
		st.LatencySource = "ts"
		for _, t := range agg.tsTimes {
			agg.latencies = append(agg.latencies, serverLatency(t.from, t.to, agg.stalls))
		}
	}
	st.Latency = distribution(agg.latencies)
	return pubErr
}

// countDeliveries times each published event on each stream that was open
// when it was sent, and counts those that never arrived.
func (s *scanner) countDeliveries(agg *loadAgg, streams []*loadStream, sent map[int]time.Time) {
	for _, ls := range streams {
		if ls.opened.IsZero() {
			continue
		}
		for seq, t := range sent {
			if at, ok := ls.seen[seq]; ok {
				agg.latencies = append(agg.latencies, serverLatency(t, at, agg.stalls))
				continue
			}
			if t.Before(ls.opened) || t.After(time.Now().Add(-s.cfg.MaxLatency)) {
				continue
			}
			agg.stats.Missing++
		}
	}
}

// judgeSilences counts the streams that were silent longer than max, as
// seen and once the scanner's own stalls are taken out.
func (a *loadAgg) judgeSilences(limit time.Duration) {
	for _, sil := range a.silences {
		seen := serverSilence(sil, nil, 0)
		server := serverSilence(sil, a.stalls, 0)
		if seen > limit {
			a.seenSilent++
		}
		if server > limit {
			a.silent++
			a.worstSilent = max(a.worstSilent, server)
		}
	}
}

// loadRun returns the load run the load rules judge, or says that there
// was none.
func loadRun(p *pass) *loadAgg {
	if p.obs.load == nil {
		p.skip("load mode not used (--concurrency)")
	}
	return p.obs.load
}

// checkLoadConnect: every stream of the run opens (LOAD-CONNECT).
func checkLoadConnect(p *pass) {
	agg := loadRun(p)
	if agg == nil {
		return
	}
	p.evaluated()
	if st := agg.stats; st.Failed > 0 || st.ConnectErrors > 0 {
		p.report(ProbeLoad, fmt.Sprintf("%d of %d streams never opened; %d attempts failed: %s",
			st.Failed, st.Streams, st.ConnectErrors, topCounts(agg.errs)))
	}
}

// checkLoadDrop: no stream of the run drops (LOAD-DROP).
func checkLoadDrop(p *pass) {
	agg := loadRun(p)
	if agg == nil {
		return
	}
	p.evaluated()
	if st := agg.stats; st.Drops > 0 {
		p.report(ProbeLoad, fmt.Sprintf("%d drops (%d resets) across %d streams in %s, %d reconnects: %s",
			st.Drops, st.Resets, st.Streams, p.obs.cfg.Duration, st.Reconnects, topCounts(agg.dropWhy)))
	}
}

// checkLoadLoss: every open stream receives every published event
// (LOAD-LOSS).
func checkLoadLoss(p *pass) {
	agg := loadRun(p)
	switch {
	case agg == nil:
		return
	case !agg.published:
		p.skip("no --publish: the events sent are unknown")
		return
	}
	p.evaluated()
	if st := agg.stats; st.Missing > 0 {
		p.report(ProbeLoad, fmt.Sprintf("%d deliveries missing: %d events published to %d open streams", st.Missing, st.Published, st.Opened))
	}
}

// checkLoadLatency: the run's p99 delivery latency stays below MaxLatency
// (LOAD-LATENCY).
func checkLoadLatency(p *pass) {
	agg := loadRun(p)
	switch {
	case agg == nil:
		return
	case agg.stats.Latency == nil:
		p.skip("no latency measured: use --publish, or events with a ts")
		return
	}
	p.evaluated()
	l, limit := agg.stats.Latency, p.obs.cfg.MaxLatency
	if p99 := time.Duration(l.P99 * float64(time.Millisecond)); p99 > limit {
		p.report(ProbeLoad, fmt.Sprintf("p99 delivery latency %s over %d deliveries exceeds %s (p50 %s, max %s)",
			fmtDur(p99), l.Count, limit, fmtMS(l.P50), fmtMS(l.Max)))
	}
}

// checkLoadHeartbeat is SSE-HEARTBEAT in load mode: no stream of the run
// was silent longer than HeartbeatMax.
func checkLoadHeartbeat(p *pass, agg *loadAgg) {
	cfg := p.obs.cfg
	if n := agg.seenSilent - agg.silent; n > 0 {
		p.notef("%d streams were silent longer than %s only because the scanner itself was stalled (longest stall %s; a busy machine?): not counted against the server",
			n, cfg.HeartbeatMax, fmtDur(agg.stalls.longest()))
	}
	switch {
	case agg.silent > 0:
		p.report(ProbeLoad, fmt.Sprintf("%d streams were silent longer than %s (worst %s)", agg.silent, cfg.HeartbeatMax, fmtDur(agg.worstSilent)))
	case cfg.Duration >= cfg.HeartbeatMax:
		p.evaluated()
	default:
		p.skip("the run was shorter than --heartbeat-max")
	}
}

func fmtMS(v float64) string { return fmtDur(time.Duration(v * float64(time.Millisecond))) }

// topCounts lists the most frequent messages with their counts.
func topCounts(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var list []kv
	for k, v := range m {
		list = append(list, kv{k, v})
	}
	slices.SortFunc(list, func(a, b kv) int {
		if a.v != b.v {
			return b.v - a.v
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for i, e := range list {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d other kinds", len(list)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", e.v, e.k))
	}
	return strings.Join(parts, "; ")
}
