package scan

import (
	"fmt"
	"strings"
	"time"
)

// window is what watching the main stream recorded, and what the
// streaming rules (SSE-FLUSH, SSE-HEARTBEAT, SSE-CUT) judge.
type window struct {
	w     *watch
	pub   *publisher // nil without --publish
	stats *StreamStats
	d     delivery
}

// delivery is when events arrived compared with when they were sent.
type delivery struct {
	latencies []time.Duration
	source    string // "publish", "ts" or ""

	// With --publish: how many were published and arrived, which arrived
	// later than MaxLatency, which never did, and why publishing stopped.
	published, delivered int
	late, missing        []string
	publishErr           error

	// Without latencies of published events, from the events' "ts": how
	// many were late, and the worst.
	tsLate  int
	tsWorst time.Duration
}

// measureDelivery times the scanner's own published events or, when none
// was timed, the events that carry a "ts".
func measureDelivery(cfg *Config, w *watch, pub *publisher) delivery {
	var d delivery
	if pub != nil {
		d = publishedDelivery(cfg, w, pub)
	}
	if len(d.latencies) == 0 {
		tsDelivery(cfg, w, pub, &d)
	}
	return d
}

// publishedDelivery times the events the scanner published.
func publishedDelivery(cfg *Config, w *watch, pub *publisher) delivery {
	sent, _, err := pub.snapshot()
	d := delivery{source: "publish", publishErr: err}
	arrived := map[int]time.Time{}
	for _, it := range w.items {
		if p, ok := payloadOf(it.event.Data); ok && p.Nonce == pub.nonce {
			if _, dup := arrived[p.Seq]; !dup {
				arrived[p.Seq] = it.at
			}
		}
	}
	d.published, d.delivered = len(sent), len(arrived)
	// Publishing does not wait for the head (a proxy may hold it until
	// the first event), so events sent before the subscription reached
	// the hub cannot arrive: only events sent after the head, or after the
	// first one that arrived, count as missing.
	since := w.headers
	for seq := range arrived {
		if sent[seq].Before(since) {
			since = sent[seq]
		}
	}
	for _, seq := range sortedKeys(sent) {
		at, ok := arrived[seq]
		if !ok {
			if !sent[seq].Before(since) && w.endAt.Sub(sent[seq]) >= cfg.MaxLatency {
				d.missing = append(d.missing, fmt.Sprint(seq))
			}
			continue
		}
		lat := serverLatency(sent[seq], at, w.stalls)
		d.latencies = append(d.latencies, lat)
		if lat > cfg.MaxLatency {
			d.late = append(d.late, fmt.Sprintf("#%d after %s", seq, fmtDur(lat)))
		}
	}
	return d
}

// tsDelivery times the events whose data carries a "ts", other than the
// scanner's own.
func tsDelivery(cfg *Config, w *watch, pub *publisher, d *delivery) {
	for _, it := range w.items {
		p, ok := payloadOf(it.event.Data)
		if !ok || p.TS == nil || (pub != nil && p.Nonce == pub.nonce) {
			continue
		}
		ts := time.UnixMilli(*p.TS)
		if lat := it.at.Sub(ts); lat < -time.Second || lat > time.Hour {
			continue // clocks apart, or an old event replayed
		}
		lat := serverLatency(ts, it.at, w.stalls)
		d.latencies = append(d.latencies, lat)
		if lat > cfg.MaxLatency {
			d.tsLate++
			d.tsWorst = max(d.tsWorst, lat)
		}
	}
	if len(d.latencies) > 0 {
		d.source = "ts"
	}
}

// streamStats is the report's summary of the window.
func (win *window) streamStats(cfg *Config, connect time.Duration) *StreamStats {
	w := win.w
	seen, _ := w.longestSilence()
	st := &StreamStats{
		WindowMS: ms(cfg.Duration), ConnectMS: ms(connect), HeadersMS: ms(w.headers.Sub(w.sent)),
		Bytes: w.bytes, Reads: len(w.reads), LastEventID: w.lastID, Encoding: w.encoding, End: w.end,
		LongestGapMS: ms(seen), HeartbeatMS: ms(w.heartbeatInterval()),
		Published: win.d.published, Delivered: win.d.delivered, LatencySource: win.d.source,
		Latency: distribution(win.d.latencies),
	}
	if len(w.reads) > 0 {
		st.FirstByteMS = ms(w.reads[0].at.Sub(w.sent))
	}
	if w.retrySet {
		st.Retry = w.retry.String()
	}
	var prevEvent time.Time
	for _, it := range w.items {
		if it.comment {
			st.Comments++
			continue
		}
		st.Events++
		if !prevEvent.IsZero() && len(st.GapsMS) < 200 {
			st.GapsMS = append(st.GapsMS, ms(it.at.Sub(prevEvent)))
		}
		prevEvent = it.at
	}
	st.Bursts, _, _ = w.bursts()
	if w.end != endWindow {
		st.EndAfterMS = ms(w.endAt.Sub(w.headers))
	}
	if w.endErr != nil {
		st.EndError = w.endErr.Error()
	}
	return st
}

// serverLatency is the time from sent to at in which the scanner was not
// stalled itself: what can be blamed on the server. It is never negative.
func serverLatency(sent, at time.Time, st stalls) time.Duration {
	return max(at.Sub(sent)-st.overlap(sent, at), 0)
}

// checkFlush: a response head that never came; events that arrived late,
// never, or buffered together (SSE-FLUSH).
func checkFlush(p *pass) {
	cfg := p.obs.cfg
	if p.obs.headTimeout {
		p.report(ProbeStream, fmt.Sprintf("no response head within %s: the server or a proxy holds the headers back (until the first event?)", cfg.Timeout))
	}
	win := p.obs.window
	switch {
	case p.obs.load != nil:
		p.skip("load mode measures delivery latency instead (LOAD-LATENCY)")
		return
	case win == nil:
		p.skip("the stream did not open")
		return
	}
	p.evaluated()
	d := win.d
	if d.publishErr != nil {
		p.notef("publishing failed, so latency was measured only where events carry a ts: %v", d.publishErr)
	}
	if len(d.missing) > 0 {
		p.report(ProbeStream, fmt.Sprintf("%d of %d events published during the window never arrived (#%s), though the stream stayed open at least %s after each%s",
			len(d.missing), d.published, strings.Join(clipList(d.missing, 8), ", #"), cfg.MaxLatency, compressionCause(win)))
	}
	if len(d.late) > 0 {
		p.report(ProbeStream, fmt.Sprintf("%d of %d published events arrived later than %s: %s%s",
			len(d.late), d.published, cfg.MaxLatency, strings.Join(clipList(d.late, 5), ", "), compressionCause(win)))
	}
	if d.tsLate > 0 {
		p.report(ProbeStream, fmt.Sprintf("%d of %d events arrived more than %s after their ts (worst %s; this assumes the server's clock is close to ours)%s",
			d.tsLate, len(d.latencies), cfg.MaxLatency, fmtDur(d.tsWorst), compressionCause(win)))
	}
	n, worst, own := win.w.bursts()
	if n > 0 {
		p.report(ProbeStream, fmt.Sprintf("events and heartbeats arrived buffered: %d reads each delivered what was sent at different times; %s%s", n, worst, compressionCause(win)))
	}
	if own > 0 {
		p.notef("%d reads brought several heartbeats at once after the scanner itself had been stalled (longest stall %s; a busy machine?): they were not counted as buffering",
			own, fmtDur(win.w.stalls.longest()))
	}
	if len(d.latencies) == 0 && win.pub == nil {
		p.notef("no event carried a timestamp, so latency was not measured: scan with --publish URL --token T (an sseguard hub), or send events whose data is JSON with \"ts\" in unix milliseconds")
	}
}

// checkHeartbeat: no silence longer than HeartbeatMax on the main stream,
// or on any stream of a load run (SSE-HEARTBEAT).
func checkHeartbeat(p *pass) {
	cfg := p.obs.cfg
	if p.obs.load != nil {
		checkLoadHeartbeat(p, p.obs.load)
		return
	}
	win := p.obs.window
	if win == nil {
		p.skip("the stream did not open")
		return
	}
	if iw := p.obs.idle; iw != nil {
		// The idle stream carries heartbeats only: its silences are the
		// heartbeat's, which the busy main stream hides.
		if _, silence := iw.w.longestSilence(); silence > cfg.HeartbeatMax {
			p.report(ProbeIdle, fmt.Sprintf("%s without a byte on the idle stream (no events, heartbeats only; limit %s)%s", fmtDur(silence), cfg.HeartbeatMax, heldByCompressor(iw.w)))
		}
	}
	w := win.w
	observed := w.endAt.Sub(w.headers)
	seen, silence := w.longestSilence()
	if seen > cfg.HeartbeatMax && silence <= cfg.HeartbeatMax {
		p.notef("%s without a byte, but the scanner itself was stalled for part of it (longest stall %s; a busy machine?): not counted against the server",
			fmtDur(seen), fmtDur(w.stalls.longest()))
	}
	switch {
	case silence > cfg.HeartbeatMax:
		p.report(ProbeStream, fmt.Sprintf("%s without a byte (limit %s)%s", fmtDur(silence), cfg.HeartbeatMax, heldByCompressor(w)))
	case observed >= cfg.HeartbeatMax:
		p.evaluated()
	default:
		p.skip(fmt.Sprintf("the stream was watched %s, shorter than --heartbeat-max %s", fmtDur(observed), cfg.HeartbeatMax))
		if win.stats.Comments == 0 {
			p.notef("no heartbeat seen in %s; run with --duration longer than --heartbeat-max (%s) to judge the heartbeat", fmtDur(observed), cfg.HeartbeatMax)
		}
	}
}

// heldByCompressor names compression as the likely cause of a silence on
// a compressed stream: a compressor (Varnish do_gzip, Caddy encode) holds
// heartbeats as it holds events, so the server may well send them.
func heldByCompressor(w *watch) string {
	if w.encoding == "" {
		return ""
	}
	return fmt.Sprintf("; the stream is compressed (Content-Encoding %s): an intermediary's compressor holds the heartbeats, which the server may well send; stop compressing text/event-stream (SSE-NO-COMPRESS)", w.encoding)
}

// checkCut: the main stream stays open for the whole window (SSE-CUT).
func checkCut(p *pass) {
	win := p.obs.window
	switch {
	case p.obs.load != nil:
		p.skip("load mode counts drops instead (LOAD-DROP)")
		return
	case win == nil && p.obs.idle == nil:
		p.skip("the stream did not open")
		return
	}
	p.evaluated()
	if iw := p.obs.idle; iw != nil {
		if msg := idleCut(iw, win); msg != "" {
			p.report(ProbeIdle, msg)
		}
	}
	if win == nil {
		return
	}
	w := win.w
	after := fmtDur(w.endAt.Sub(w.headers))
	idle := fmtDur(w.endAt.Sub(lastActivity(w)))
	switch w.end {
	case endEOF:
		retry := ""
		if w.retrySet {
			retry = fmt.Sprintf("; it had asked for retry: %s", w.retry)
		}
		p.report(ProbeStream, fmt.Sprintf("the stream ended after %s (a clean end of the body, %s after the last byte)%s", after, idle, retry))
	case endCut:
		p.report(ProbeStream, fmt.Sprintf("the stream was cut after %s, %s after the last byte: %v", after, idle, w.endErr))
	case endError:
		p.notef("the stream could not be read after %s: %v", after, w.endErr)
	}
	if w.end == endEOF && w.endErr != nil {
		p.notef("%v", w.endErr)
	}
}

// compressionCause names compression as the cause of late or buffered
// delivery on a compressed stream: latency is timed on the arrival of the
// compressed bytes that make an event decodable (decodeStream), so what
// is late here is held by the compressor. With --publish it says whether
// each event waited for the next one, the mark of a compressor that
// flushes only when more input comes.
func compressionCause(win *window) string {
	coding := win.w.encoding
	if coding == "" {
		return ""
	}
	cause := fmt.Sprintf(" (the stream is compressed, Content-Encoding %s: the compressor holds events; timed on the arrival of the compressed bytes, as a browser decodes them)", coding)
	if win.pub == nil {
		return cause
	}
	sent, _, _ := win.pub.snapshot()
	arrived := map[int]time.Time{}
	for _, it := range win.w.items {
		if pl, ok := payloadOf(it.event.Data); ok && pl.Nonce == win.pub.nonce {
			if _, dup := arrived[pl.Seq]; !dup {
				arrived[pl.Seq] = it.at
			}
		}
	}
	held, late := 0, 0
	every := win.pub.cfg.Every
	for seq, at := range arrived {
		next, ok := sent[seq+1]
		if !ok || at.Sub(sent[seq]) < every/2 {
			continue
		}
		late++
		if d := at.Sub(next); d > -every/4 && d < every/2 {
			held++
		}
	}
	if late > 0 && 2*held >= late {
		return fmt.Sprintf(" (the stream is compressed, Content-Encoding %s: the compressor holds each event until the next one pushes it out; %d of %d late events arrived just after the next was sent)", coding, held, late)
	}
	return cause
}
