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

// loadAgg collects the streams' results.
type loadAgg struct {
	mu          sync.Mutex
	findings    map[[2]string]int // (rule, evidence) → streams that showed it
	findOrder   [][2]string
	checked     map[string]bool
	na          map[string]string
	nginx       bool
	stats       LoadStats
	errs        map[string]int
	dropWhy     map[string]int
	headerTimes []time.Duration
	latencies   []time.Duration
	silent      int // streams with a silence over HeartbeatMax
	worstSilent time.Duration
	open        int
	events      atomic.Int64 // live, for the progress line
}

func (a *loadAgg) merge(c *collector) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range c.findings {
		k := [2]string{f.Rule, f.Evidence}
		if _, seen := a.findings[k]; !seen {
			a.findOrder = append(a.findOrder, k)
		}
		a.findings[k]++
	}
	for id := range c.checked {
		a.checked[id] = true
	}
	for id, why := range c.na {
		a.na[id] = why
	}
	a.nginx = a.nginx || c.nginx
}

// loadStream is one stream of the run.
type loadStream struct {
	opened    time.Time // first successful open
	lastID    string
	seen      map[int]time.Time // published seq → first arrival
	droppedAt []time.Time
}

// runLoad opens cfg.Concurrency streams over cfg.Ramp and watches them for
// cfg.Duration, asserting the headers of every one.
func (s *scanner) runLoad(ctx context.Context) error {
	n := s.cfg.Concurrency
	start := time.Now()
	deadline := start.Add(s.cfg.Duration)
	lctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	agg := &loadAgg{findings: map[[2]string]int{}, checked: map[string]bool{}, na: map[string]string{},
		errs: map[string]int{}, dropWhy: map[string]int{}}
	agg.stats.Streams = n
	agg.stats.RampMS, agg.stats.WindowMS = ms(s.cfg.Ramp), ms(s.cfg.Duration)

	// The side probes run once.
	var sideWG sync.WaitGroup
	var side []probeResult
	var sideMu sync.Mutex
	for _, spec := range s.sideProbes() {
		sideWG.Go(func() {
			r := s.probe(ctx, spec)
			sideMu.Lock()
			side = append(side, r)
			sideMu.Unlock()
		})
	}

	var pub *publisher
	pubDone := make(chan struct{})
	if s.cfg.Publish != nil {
		pub = newPublisher(s.cfg)
		go func() {
			defer close(pubDone)
			select {
			case <-time.After(s.cfg.Ramp + 100*time.Millisecond):
				pub.run(lctx, deadline.Add(-min(s.cfg.MaxLatency, (s.cfg.Duration-s.cfg.Ramp)/2)))
			case <-lctx.Done():
			}
		}()
	} else {
		close(pubDone)
	}

	stopProgress := s.progress(agg, start)
	streams := make([]*loadStream, n)
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(int64(s.cfg.Ramp) * int64(i) / int64(n)))
		streams[i] = &loadStream{seen: map[int]time.Time{}}
		wg.Go(func() {
			select {
			case <-time.After(time.Until(at)):
			case <-lctx.Done():
				return
			}
			s.loadOne(lctx, agg, streams[i], pub)
		})
	}
	wg.Wait()
	<-pubDone
	stopProgress()
	sideWG.Wait()
	slices.SortFunc(side, func(a, b probeResult) int { return strings.Compare(a.spec.name, b.spec.name) })
	for _, r := range side {
		s.evalSide(r)
	}
	s.sortExchanges()
	return s.evalLoad(agg, streams, pub)
}

// loadOne runs one stream until the deadline, reconnecting after drops.
func (s *scanner) loadOne(ctx context.Context, agg *loadAgg, st *loadStream, pub *publisher) {
	spec := probeSpec{name: ProbeLoad, url: s.u.String()}
	first := true
	for ctx.Err() == nil {
		own := []rawhttp.Field{}
		if st.lastID != "" {
			own = append(own, field("Last-Event-ID", st.lastID))
		}
		spec.header = s.cfg.requestHeader(own...)
		res, err := s.send(ctx, spec)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			agg.mu.Lock()
			agg.stats.ConnectErrors++
			agg.errs[shortErr(err)]++
			agg.mu.Unlock()
			if !sleepCtx(ctx, reconnectDelay) {
				return
			}
			continue
		}
		c := newCollector()
		k := &checker{cfg: s.cfg, https: s.chk.https, c: c}
		ok := k.streamHead(ProbeLoad, res)
		k.cors(ProbeLoad, "", res)
		agg.merge(c)
		if !ok {
			res.Body.Close()
			agg.mu.Lock()
			agg.stats.ConnectErrors++
			agg.errs[fmt.Sprintf("status %d, Content-Type %s", res.StatusCode, quoteOrNone(res.Values("Content-Type")))]++
			agg.mu.Unlock()
			if !sleepCtx(ctx, reconnectDelay) {
				return
			}
			continue
		}
		agg.mu.Lock()
		if first {
			agg.stats.Opened++
			st.opened = res.Timing.Headers
		} else {
			agg.stats.Reconnects++
		}
		agg.open++
		agg.headerTimes = append(agg.headerTimes, res.Timing.Headers.Sub(res.Timing.Sent))
		agg.mu.Unlock()
		first = false

		var lats []time.Duration
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
				if lat := it.at.Sub(time.UnixMilli(*p.TS)); lat > -time.Second && lat < time.Hour {
					lats = append(lats, max(lat, 0))
				}
			}
		}, true)

		agg.mu.Lock()
		agg.open--
		agg.latencies = append(agg.latencies, lats...)
		if sil := w.longestSilence(); sil > s.cfg.HeartbeatMax {
			agg.silent++
			agg.worstSilent = max(agg.worstSilent, sil)
		}
		if w.end != endWindow {
			agg.stats.Drops++
			why := "the server ended the stream"
			if w.end != endEOF {
				why = shortErr(w.endErr)
				if isReset(w.endErr) {
					agg.stats.Resets++
				}
			}
			agg.dropWhy[why]++
			st.droppedAt = append(st.droppedAt, w.endAt)
		}
		agg.mu.Unlock()
		if w.end == endWindow || !sleepCtx(ctx, reconnectDelay) {
			return
		}
	}
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

// progress writes a status line every 500 ms until the returned function
// is called.
func (s *scanner) progress(agg *loadAgg, start time.Time) func() {
	w := s.cfg.Progress
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	line := func() {
		agg.mu.Lock()
		st := agg.stats
		open := agg.open
		agg.mu.Unlock()
		st.Events = agg.events.Load()
		fmt.Fprintf(w, "\r\x1b[Kload %s/%s · open %d/%d · failed %d · drops %d · reconnects %d · events %d",
			time.Since(start).Round(time.Second), s.cfg.Duration, open, st.Streams, st.ConnectErrors, st.Drops, st.Reconnects, st.Events)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				line()
				fmt.Fprintln(w)
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// evalLoad turns the run's results into stats and findings.
func (s *scanner) evalLoad(agg *loadAgg, streams []*loadStream, pub *publisher) error {
	st := &agg.stats
	st.Events = agg.events.Load()
	st.Failed = st.Streams - st.Opened
	st.Headers = distribution(agg.headerTimes)
	s.rep.Load = st

	// Header findings, each with the share of streams it was seen on.
	attempts := st.Opened + st.Reconnects + st.ConnectErrors
	for _, k := range agg.findOrder {
		s.col.add(k[0], ProbeLoad, fmt.Sprintf("%s (on %d of %d responses)", k[1], agg.findings[k], attempts))
	}
	for id := range agg.checked {
		s.col.check(id)
	}
	for id, why := range agg.na {
		s.col.skip(id, why)
	}
	s.col.nginx = s.col.nginx || agg.nginx

	s.col.check(RuleLoadConnect, RuleLoadDrop)
	if st.Failed > 0 || st.ConnectErrors > 0 {
		s.col.add(RuleLoadConnect, ProbeLoad, fmt.Sprintf("%d of %d streams never opened; %d attempts failed: %s",
			st.Failed, st.Streams, st.ConnectErrors, topCounts(agg.errs)))
	}
	if st.Drops > 0 {
		s.col.add(RuleLoadDrop, ProbeLoad, fmt.Sprintf("%d drops (%d resets) across %d streams in %s, %d reconnects: %s",
			st.Drops, st.Resets, st.Streams, s.cfg.Duration, st.Reconnects, topCounts(agg.dropWhy)))
	}
	if agg.silent > 0 {
		s.col.add(RuleHeartbeat, ProbeLoad, fmt.Sprintf("%d streams were silent longer than %s (worst %s)", agg.silent, s.cfg.HeartbeatMax, fmtDur(agg.worstSilent)))
	} else if s.cfg.Duration >= s.cfg.HeartbeatMax {
		s.col.check(RuleHeartbeat)
	} else {
		s.col.skip(RuleHeartbeat, "the run was shorter than --heartbeat-max")
	}
	s.col.skip(RuleFlush, "load mode measures delivery latency instead (LOAD-LATENCY)")
	s.col.skip(RuleCut, "load mode counts drops instead (LOAD-DROP)")
	s.col.skip(RuleResume, "load mode reconnects with Last-Event-ID and counts loss instead (LOAD-LOSS)")
	s.col.skip(RuleOrder, "not checked in load mode")

	var pubErr error
	if pub != nil {
		sent, _, err := pub.snapshot()
		if err != nil {
			pubErr = fmt.Errorf("--publish: %w", err)
		}
		st.Published = len(sent)
		st.LatencySource = "publish"
		s.col.check(RuleLoadLoss)
		for _, ls := range streams {
			if ls.opened.IsZero() {
				continue
			}
			for seq, t := range sent {
				if at, ok := ls.seen[seq]; ok {
					agg.latencies = append(agg.latencies, at.Sub(t))
					continue
				}
				if t.Before(ls.opened) || t.After(time.Now().Add(-s.cfg.MaxLatency)) {
					continue
				}
				st.Missing++
			}
		}
		if st.Missing > 0 {
			s.col.add(RuleLoadLoss, ProbeLoad, fmt.Sprintf("%d deliveries missing: %d events published to %d open streams", st.Missing, st.Published, st.Opened))
		}
	} else {
		s.col.skip(RuleLoadLoss, "no --publish: the events sent are unknown")
		if len(agg.latencies) > 0 {
			st.LatencySource = "ts"
		}
	}
	st.Latency = distribution(agg.latencies)
	if st.Latency != nil {
		s.col.check(RuleLoadLatency)
		if p99 := time.Duration(st.Latency.P99 * float64(time.Millisecond)); p99 > s.cfg.MaxLatency {
			s.col.add(RuleLoadLatency, ProbeLoad, fmt.Sprintf("p99 delivery latency %s over %d deliveries exceeds %s (p50 %s, max %s)",
				fmtDur(p99), st.Latency.Count, s.cfg.MaxLatency, fmtMS(st.Latency.P50), fmtMS(st.Latency.Max)))
		}
	} else {
		s.col.skip(RuleLoadLatency, "no latency measured: use --publish, or events with a ts")
	}
	if len(s.cfg.ExpectOrder) == 0 {
		s.col.skip(RuleOrder, "no --expect-order")
	}
	if s.cfg.Baseline == nil {
		s.col.skip(RuleDrift, "no --baseline")
	} else {
		s.col.skip(RuleDrift, "not checked in load mode; scan without --concurrency")
	}
	return pubErr
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
