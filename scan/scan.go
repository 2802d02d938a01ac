package scan

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// Probe names, as findings and exchanges cite them.
const (
	ProbeStream        = "stream"
	ProbeAcceptAny     = "accept-any"
	ProbeAcceptJSON    = "accept-json"
	ProbeOriginForeign = "origin-foreign"
	ProbeOriginNull    = "origin-null"
	ProbePreflight     = "preflight"
	ProbeNoCredentials = "no-credentials"
	ProbeReconnect     = "reconnect"
	ProbePage          = "page"
)

// ForeignOrigin is the Origin the CORS probes send: a name under .invalid
// (RFC 6761), which no real site can have.
const ForeignOrigin = "https://attacker.sseguard-scan.invalid"

// Run scans cfg.URL and returns the report. The error is non-nil when the
// scan could not be made: an invalid Config (wrapping ErrConfig), a target
// that cannot be reached, or a --publish that failed; the report may still
// hold what was found before it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	c, u, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &scanner{cfg: &c, u: u, col: newCollector()}
	s.chk = &checker{cfg: &c, https: strings.EqualFold(u.Scheme, "https"), c: s.col}
	s.rep = &Report{
		Tool: "sseguard scan", Version: c.Version, Target: u.String(), Profile: c.Profile.Name,
		Protocol: c.Proto.String(), Started: time.Now().UTC(),
	}
	if s.rep.Version == "" {
		s.rep.Version = "devel"
	}
	if c.Concurrency > 1 {
		err = s.runLoad(ctx)
	} else {
		err = s.run(ctx)
	}
	s.rep.Finished = time.Now().UTC()
	if c.Baseline != nil && s.main != nil {
		c.Baseline.drift(s.col, s.main)
	}
	s.col.finish(s.rep)
	if c.Baseline != nil {
		s.rep.Notes = append(s.rep.Notes, c.Baseline.accept(s.rep.Findings)...)
	}
	if err != nil && s.main == nil && s.rep.Load == nil {
		return nil, err
	}
	return s.rep, err
}

// scanner holds one scan's state.
type scanner struct {
	cfg  *Config
	u    *url.URL
	col  *collector
	chk  *checker
	rep  *Report
	main *rawhttp.Response // the main stream's head, for baseline drift

	mu sync.Mutex // guards rep.Exchanges and rep.Notes from probe goroutines
}

func (s *scanner) note(format string, args ...any) {
	s.mu.Lock()
	s.rep.Notes = append(s.rep.Notes, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// probeSpec is one request to make.
type probeSpec struct {
	name, purpose, method, url string
	header                     []rawhttp.Field
}

// probeResult is a probe's response head and the start of its body.
type probeResult struct {
	spec probeSpec
	res  *rawhttp.Response
	body []byte
	err  error
}

// exchange records a probe in the report.
func (s *scanner) exchange(spec probeSpec, res *rawhttp.Response, body []byte, err error) {
	ex := Exchange{Probe: spec.name, Purpose: spec.purpose, Method: spec.method, URL: spec.url, Request: redact(spec.header)}
	if ex.Method == "" {
		ex.Method = http.MethodGet
	}
	if res != nil {
		ex.Proto, ex.Status, ex.Header, ex.Framing = res.Proto, res.StatusCode, redact(res.Header), string(res.Framing)
		ex.HeadersMS = ms(res.Timing.Headers.Sub(res.Timing.Sent))
		if res.StatusCode >= 300 {
			ex.Body = clip(string(body), 1024)
		}
	}
	if err != nil {
		ex.Error = err.Error()
	}
	s.mu.Lock()
	s.rep.Exchanges = append(s.rep.Exchanges, ex)
	s.mu.Unlock()
}

// redact hides credentials in recorded header lines: reports end up in CI
// logs and artifacts.
func redact(fields []rawhttp.Field) []rawhttp.Field {
	out := slices.Clone(fields)
	for i, f := range out {
		switch strings.ToLower(f.Name) {
		case "authorization", "proxy-authorization":
			scheme, _, _ := strings.Cut(f.Value, " ")
			out[i].Value = scheme + " (redacted)"
		case "cookie", "set-cookie":
			name, _, _ := strings.Cut(f.Value, "=")
			out[i].Value = name + "=(redacted)"
		}
	}
	return out
}

func (s *scanner) send(ctx context.Context, spec probeSpec) (*rawhttp.Response, error) {
	u, err := url.Parse(spec.url)
	if err != nil {
		return nil, err
	}
	return s.cfg.client().Do(ctx, &rawhttp.Request{Method: spec.method, URL: u, Header: spec.header})
}

// probe sends spec and reads the start of the body: up to 16 KiB within
// 2 s for refusals and pages, a moment for streams (only the head matters).
func (s *scanner) probe(ctx context.Context, spec probeSpec) probeResult {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := s.send(pctx, spec)
	if err != nil {
		s.exchange(spec, nil, nil, err)
		return probeResult{spec: spec, err: err}
	}
	wait := 2 * time.Second
	if mt, _ := policy.ExtractMIMEType(res.Values("Content-Type")); mt.Essence == "text/event-stream" && res.StatusCode == 200 {
		wait = 300 * time.Millisecond
	}
	body := readSome(res.Body, 16<<10, wait)
	res.Body.Close()
	body = decodeBody(res, body)
	s.exchange(spec, res, body, nil)
	return probeResult{spec: spec, res: res, body: body}
}

// decodeBody undoes a gzip Content-Encoding of a refusal's body, so its
// shape can be checked; anything else is returned as it came.
func decodeBody(res *rawhttp.Response, body []byte) []byte {
	enc := strings.ToLower(strings.TrimSpace(strings.Join(res.Values("Content-Encoding"), ",")))
	if enc != "gzip" && enc != "x-gzip" {
		return body
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return body
	}
	out, _ := io.ReadAll(io.LimitReader(zr, 64<<10))
	return out
}

// readSome reads up to n bytes or until d has passed or the body ends.
func readSome(r io.ReadCloser, n int, d time.Duration) []byte {
	t := time.AfterFunc(d, func() { r.Close() })
	defer t.Stop()
	b, _ := io.ReadAll(io.LimitReader(r, int64(n)))
	return b
}

// credentialFields returns the configured credential headers with empty
// values, which requestHeader reads as "leave out": the no-credentials
// probe's request.
func (s *scanner) credentialFields() []rawhttp.Field {
	var drop []rawhttp.Field
	for _, f := range s.cfg.Header {
		switch strings.ToLower(f.Name) {
		case "authorization", "cookie", "proxy-authorization":
			drop = append(drop, rawhttp.Field{Name: f.Name, Value: ""})
		}
	}
	return drop
}

func field(name, value string) rawhttp.Field { return rawhttp.Field{Name: name, Value: value} }

// sideProbes are the requests made alongside the main stream.
func (s *scanner) sideProbes() []probeSpec {
	target := s.u.String()
	specs := []probeSpec{
		{name: ProbeAcceptAny, purpose: "legacy XHR streaming (Accept: */*) must get 406 in strict mode", url: target,
			header: s.cfg.requestHeader(field("Accept", "*/*"))},
		{name: ProbeAcceptJSON, purpose: "a JSON client must get 406 and a JSON error", url: target,
			header: s.cfg.requestHeader(field("Accept", "application/json"))},
		{name: ProbeOriginForeign, purpose: "a foreign Origin must not be reflected", url: target,
			header: s.cfg.requestHeader(field("Origin", ForeignOrigin))},
		{name: ProbeOriginNull, purpose: "Origin: null must not be allowed", url: target,
			header: s.cfg.requestHeader(field("Origin", "null"))},
		{name: ProbePreflight, purpose: "a CORS preflight from a foreign Origin must not be allowed", method: http.MethodOptions, url: target,
			header: s.cfg.requestHeader(field("Origin", ForeignOrigin), field("Access-Control-Request-Method", "GET"),
				field("Access-Control-Request-Headers", "last-event-id"))},
	}
	if drop := s.credentialFields(); len(drop) > 0 {
		specs = append(specs, probeSpec{name: ProbeNoCredentials, purpose: "without the credentials given with -H: the refusal's headers", url: target,
			header: s.cfg.requestHeader(drop...)})
	}
	if s.cfg.PageURL != "" {
		specs = append(specs, probeSpec{name: ProbePage, purpose: "the HTML page that opens the stream: CSP and headers", url: s.cfg.PageURL,
			header: s.cfg.requestHeader(field("Accept", "text/html,application/xhtml+xml"), field("Cache-Control", ""), field("Accept-Encoding", ""))})
	}
	return specs
}

// run is a scan of one stream.
func (s *scanner) run(ctx context.Context) error {
	mainSpec := probeSpec{name: ProbeStream, purpose: "what EventSource sends: the stream's headers and timing", url: s.u.String(),
		header: s.cfg.requestHeader()}
	res, err := s.send(ctx, mainSpec)
	if err != nil {
		s.exchange(mainSpec, nil, nil, err)
		if !errors.Is(err, rawhttp.ErrHeadTimeout) {
			return fmt.Errorf("stream %s: %w", s.u, err)
		}
		s.col.add(RuleFlush, ProbeStream, fmt.Sprintf("no response head within %s: the server or a proxy holds the headers back (until the first event?)", s.cfg.Timeout))
	}

	// The side probes run while the main stream is watched.
	var wg sync.WaitGroup
	var side []probeResult
	var sideMu sync.Mutex
	for _, spec := range s.sideProbes() {
		wg.Go(func() {
			r := s.probe(ctx, spec)
			sideMu.Lock()
			side = append(side, r)
			sideMu.Unlock()
		})
	}

	var w *watch
	var pub *publisher
	if res != nil {
		s.main = res
		isStream := s.chk.streamHead(ProbeStream, res)
		s.chk.cors(ProbeStream, "", res)
		if len(s.cfg.ExpectOrder) > 0 {
			s.chk.order(ProbeStream, res, s.cfg.ExpectOrder)
		}
		if isStream {
			s.exchange(mainSpec, res, nil, nil)
			wctx, cancel := context.WithDeadline(ctx, res.Timing.Headers.Add(s.cfg.Duration))
			var pubDone chan struct{}
			if s.cfg.Publish != nil {
				pub = newPublisher(s.cfg)
				pubDone = make(chan struct{})
				// Publish until late enough that a prompt event still
				// arrives within the window.
				stopAt := res.Timing.Headers.Add(s.cfg.Duration - min(s.cfg.MaxLatency, s.cfg.Duration/2))
				go func() {
					defer close(pubDone)
					// Let the subscription settle before the first event.
					select {
					case <-time.After(50 * time.Millisecond):
						pub.run(wctx, stopAt)
					case <-wctx.Done():
					}
				}()
			}
			w = watchStream(wctx, res, "", nil, false)
			cancel()
			if pubDone != nil {
				<-pubDone
			}
		} else {
			body := decodeBody(res, readSome(res.Body, 16<<10, 2*time.Second))
			res.Body.Close()
			s.exchange(mainSpec, res, body, nil)
			if res.StatusCode >= 400 {
				s.chk.refusal(ProbeStream, res, body)
			}
			s.note("the stream was not opened (status %d, Content-Type %s): streaming checks were skipped", res.StatusCode, quoteOrNone(res.Values("Content-Type")))
		}
	}
	wg.Wait()
	slices.SortFunc(side, func(a, b probeResult) int { return strings.Compare(a.spec.name, b.spec.name) })
	for _, r := range side {
		s.evalSide(r)
	}
	s.sortExchanges()

	var pubErr error
	if w != nil {
		pubErr = s.evalStream(w, pub)
		s.reconnect(ctx, w, pub)
	} else {
		for _, id := range []string{RuleFlush, RuleHeartbeat, RuleCut, RuleResume} {
			s.col.skip(id, "the stream did not open")
		}
	}
	for _, id := range []string{RuleLoadConnect, RuleLoadDrop, RuleLoadLoss, RuleLoadLatency} {
		s.col.skip(id, "load mode not used (--concurrency)")
	}
	if len(s.cfg.ExpectOrder) == 0 {
		s.col.skip(RuleOrder, "no --expect-order")
	}
	if s.cfg.Baseline == nil {
		s.col.skip(RuleDrift, "no --baseline")
	}
	return pubErr
}

// sortExchanges puts the exchanges in a stable order: main stream first.
func (s *scanner) sortExchanges() {
	order := map[string]int{ProbeStream: 0, ProbeAcceptAny: 1, ProbeAcceptJSON: 2, ProbeOriginForeign: 3, ProbeOriginNull: 4,
		ProbePreflight: 5, ProbeNoCredentials: 6, ProbePage: 7, ProbeReconnect: 8}
	s.mu.Lock()
	slices.SortStableFunc(s.rep.Exchanges, func(a, b Exchange) int { return order[a.Probe] - order[b.Probe] })
	s.mu.Unlock()
}

// evalSide applies the rules to a side probe's response.
func (s *scanner) evalSide(r probeResult) {
	name := r.spec.name
	if r.err != nil {
		s.note("probe %s failed: %v", name, r.err)
		return
	}
	res := r.res
	isStream := false
	if mt, ok := policy.ExtractMIMEType(res.Values("Content-Type")); ok && mt.Essence == "text/event-stream" && res.StatusCode == 200 {
		isStream = true
	}
	switch name {
	case ProbeAcceptAny, ProbeAcceptJSON:
		accept := rawhttp.Values(r.spec.header, "Accept")[0]
		if !refusedAccept(s.cfg.Profile, accept) {
			s.chk.common(name, res)
			s.note("profile %s accepts a stream request with Accept: %s: not expected to be refused", s.cfg.Profile.Name, accept)
			break
		}
		s.col.check(RuleAccept)
		switch {
		case res.StatusCode == http.StatusNotAcceptable:
		case isStream:
			s.col.add(RuleAccept, name, fmt.Sprintf("Accept: %s got 200 text/event-stream: the stream is served to clients that did not ask for it", accept))
		default:
			s.col.add(RuleAccept, name, fmt.Sprintf("Accept: %s got %d, not 406", accept, res.StatusCode))
		}
		if res.StatusCode >= 400 {
			s.chk.refusal(name, res, r.body)
		} else {
			s.chk.common(name, res)
		}
	case ProbeOriginForeign, ProbeOriginNull, ProbePreflight:
		origin := rawhttp.Values(r.spec.header, "Origin")[0]
		s.chk.cors(name, origin, res)
		if res.StatusCode >= 400 {
			s.chk.refusal(name, res, r.body)
		} else {
			s.chk.common(name, res)
		}
	case ProbeNoCredentials:
		if res.StatusCode >= 400 {
			s.chk.refusal(name, res, r.body)
		} else {
			s.chk.common(name, res)
			if isStream {
				s.note("the stream opened without the credentials given with -H: is it meant to be public?")
			}
		}
	case ProbePage:
		s.chk.common(name, res)
		s.chk.hsts(name, res)
		if res.StatusCode != http.StatusOK {
			s.note("the page %s answered %d; its headers were checked anyway", r.spec.url, res.StatusCode)
		}
		s.chk.xcto(name, res)
		s.chk.csp(name, res, policy.KindPage)
		s.chk.policyHeaders(name, res, policy.KindPage, 1, 1)
	}
}

// evalStream turns what the window recorded into stats and findings.
func (s *scanner) evalStream(w *watch, pub *publisher) error {
	st := &StreamStats{
		WindowMS:  ms(s.cfg.Duration),
		ConnectMS: ms(s.main.Timing.Connected.Sub(s.main.Timing.Start)),
		HeadersMS: ms(w.headers.Sub(w.sent)),
		Bytes:     w.bytes, Reads: len(w.reads), LastEventID: w.lastID, Encoding: w.encoding, End: w.end,
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
		if !prevEvent.IsZero() {
			st.GapsMS = append(st.GapsMS, ms(it.at.Sub(prevEvent)))
		}
		prevEvent = it.at
	}
	if len(st.GapsMS) > 200 {
		st.GapsMS = st.GapsMS[:200]
	}
	st.LongestGapMS = ms(w.longestSilence())
	st.HeartbeatMS = ms(w.heartbeatInterval())
	if w.end != endWindow {
		st.EndAfterMS = ms(w.endAt.Sub(w.headers))
	}
	if w.endErr != nil {
		st.EndError = w.endErr.Error()
	}
	s.rep.Stream = st

	// SSE-FLUSH: latency of the scanner's own events, of events with a
	// "ts", and heartbeats delivered together.
	s.col.check(RuleFlush)
	var latencies []time.Duration
	var pubErr error
	if pub != nil {
		sent, _, err := pub.snapshot()
		if err != nil {
			pubErr = fmt.Errorf("--publish: %w", err)
			s.note("publishing failed, so latency was measured only where events carry a ts: %v", err)
		}
		arrived := map[int]time.Time{}
		for _, it := range w.items {
			if p, ok := payloadOf(it.event.Data); ok && p.Nonce == pub.nonce {
				if _, dup := arrived[p.Seq]; !dup {
					arrived[p.Seq] = it.at
				}
			}
		}
		st.Published, st.Delivered = len(sent), len(arrived)
		st.LatencySource = "publish"
		var late, missing []string
		seqs := sortedKeys(sent)
		for _, seq := range seqs {
			at, ok := arrived[seq]
			if !ok {
				if w.endAt.Sub(sent[seq]) >= s.cfg.MaxLatency {
					missing = append(missing, fmt.Sprint(seq))
				}
				continue
			}
			lat := at.Sub(sent[seq])
			latencies = append(latencies, lat)
			if lat > s.cfg.MaxLatency {
				late = append(late, fmt.Sprintf("#%d after %s", seq, fmtDur(lat)))
			}
		}
		if len(missing) > 0 {
			s.col.add(RuleFlush, ProbeStream, fmt.Sprintf("%d of %d events published during the window never arrived (#%s), though the stream stayed open at least %s after each",
				len(missing), len(sent), strings.Join(clipList(missing, 8), ", #"), s.cfg.MaxLatency))
		}
		if len(late) > 0 {
			s.col.add(RuleFlush, ProbeStream, fmt.Sprintf("%d of %d published events arrived later than %s: %s",
				len(late), len(sent), s.cfg.MaxLatency, strings.Join(clipList(late, 5), ", ")))
		}
	}
	if len(latencies) == 0 {
		var late int
		var worst time.Duration
		for _, it := range w.items {
			p, ok := payloadOf(it.event.Data)
			if !ok || p.TS == nil || (pub != nil && p.Nonce == pub.nonce) {
				continue
			}
			lat := it.at.Sub(time.UnixMilli(*p.TS))
			if lat < -time.Second || lat > time.Hour {
				continue // clocks apart, or an old event replayed
			}
			lat = max(lat, 0)
			latencies = append(latencies, lat)
			if lat > s.cfg.MaxLatency {
				late++
				worst = max(worst, lat)
			}
		}
		if len(latencies) > 0 {
			st.LatencySource = "ts"
		}
		if late > 0 {
			s.col.add(RuleFlush, ProbeStream, fmt.Sprintf("%d of %d events arrived more than %s after their ts (worst %s; this assumes the server's clock is close to ours)",
				late, len(latencies), s.cfg.MaxLatency, fmtDur(worst)))
		}
	}
	st.Latency = distribution(latencies)
	if n, worst := w.bursts(); n > 0 {
		st.Bursts = n
		s.col.add(RuleFlush, ProbeStream, fmt.Sprintf("events and heartbeats arrived buffered: %d reads each delivered what was sent at different times; %s", n, worst))
	}
	if len(latencies) == 0 && pub == nil {
		s.note("no event carried a timestamp, so latency was not measured: scan with --publish URL --token T (an sseguard hub), or send events whose data is JSON with \"ts\" in unix milliseconds")
	}

	// SSE-HEARTBEAT.
	observed := w.endAt.Sub(w.headers)
	silence := w.longestSilence()
	switch {
	case silence > s.cfg.HeartbeatMax:
		s.col.add(RuleHeartbeat, ProbeStream, fmt.Sprintf("%s without a byte (limit %s)", fmtDur(silence), s.cfg.HeartbeatMax))
	case observed >= s.cfg.HeartbeatMax:
		s.col.check(RuleHeartbeat)
	default:
		s.col.skip(RuleHeartbeat, fmt.Sprintf("the stream was watched %s, shorter than --heartbeat-max %s", fmtDur(observed), s.cfg.HeartbeatMax))
		if st.Comments == 0 {
			s.note("no heartbeat seen in %s; run with --duration longer than --heartbeat-max (%s) to judge the heartbeat", fmtDur(observed), s.cfg.HeartbeatMax)
		}
	}

	// SSE-CUT.
	s.col.check(RuleCut)
	after := fmtDur(w.endAt.Sub(w.headers))
	idle := fmtDur(w.endAt.Sub(lastActivity(w)))
	switch w.end {
	case endEOF:
		retry := ""
		if w.retrySet {
			retry = fmt.Sprintf("; it had asked for retry: %s", w.retry)
		}
		s.col.add(RuleCut, ProbeStream, fmt.Sprintf("the stream ended after %s (a clean end of the body, %s after the last byte)%s", after, idle, retry))
	case endCut:
		s.col.add(RuleCut, ProbeStream, fmt.Sprintf("the stream was cut after %s, %s after the last byte: %v", after, idle, w.endErr))
	case endError:
		s.note("the stream could not be read after %s: %v", after, w.endErr)
	}
	if w.end == endEOF && w.endErr != nil {
		s.note("%v", w.endErr)
	}
	return pubErr
}

func lastActivity(w *watch) time.Time {
	if at, _ := w.lastRead(); !at.IsZero() {
		return at
	}
	return w.headers
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func clipList(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return append(slices.Clone(list[:n]), fmt.Sprintf("… %d more", len(list)-n))
}

// reconnect is the Last-Event-ID probe (SSE-RESUME).
func (s *scanner) reconnect(ctx context.Context, w *watch, pub *publisher) {
	s.col.check(RuleResume)
	resumeID := w.lastID
	var wantSeq, sentSeq int // with --publish: resume after sentSeq's event, expect wantSeq's
	if pub != nil {
		_, ids, _ := pub.snapshot()
		seqs := sortedKeys(ids)
		delivered := map[int]bool{}
		for _, it := range w.items {
			if p, ok := payloadOf(it.event.Data); ok && p.Nonce == pub.nonce {
				delivered[p.Seq] = true
			}
		}
		for i := 0; i+1 < len(seqs); i++ {
			if ids[seqs[i]] != "" && delivered[seqs[i]] {
				resumeID, sentSeq, wantSeq = ids[seqs[i]], seqs[i], seqs[i+1]
				break
			}
		}
	}
	madeUp := resumeID == ""
	if madeUp {
		resumeID = "sseguard-scan-unknown-id"
	}
	spec := probeSpec{name: ProbeReconnect, purpose: "EventSource's reconnect: Last-Event-ID " + resumeID, url: s.u.String(),
		header: s.cfg.requestHeader(field("Last-Event-ID", resumeID))}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := s.send(rctx, spec)
	if err != nil {
		s.exchange(spec, nil, nil, err)
		s.col.add(RuleResume, ProbeReconnect, fmt.Sprintf("reconnecting with Last-Event-ID: %s failed: %v", resumeID, err))
		return
	}
	if !s.chk.streamHead(ProbeReconnect, res) {
		body := decodeBody(res, readSome(res.Body, 16<<10, 2*time.Second))
		res.Body.Close()
		s.exchange(spec, res, body, nil)
		s.col.add(RuleResume, ProbeReconnect, fmt.Sprintf("reconnecting with Last-Event-ID: %s got %d %s, not a stream: EventSource gives up", resumeID, res.StatusCode, quoteOrNone(res.Values("Content-Type"))))
		if res.StatusCode >= 400 {
			s.chk.refusal(ProbeReconnect, res, body)
		}
		return
	}
	s.exchange(spec, res, nil, nil)
	window := min(1500*time.Millisecond, max(300*time.Millisecond, s.cfg.Duration/2))
	wctx, wcancel := context.WithTimeout(rctx, window)
	defer wcancel()
	seen := map[int]bool{}
	var first *item
	watchStream(wctx, res, resumeID, func(it item) {
		if it.comment {
			return
		}
		if first == nil {
			c := it
			first = &c
		}
		if pub != nil {
			if p, ok := payloadOf(it.event.Data); ok && p.Nonce == pub.nonce {
				seen[p.Seq] = true
				if p.Seq == wantSeq {
					wcancel()
				}
			}
		}
	}, false)
	if first != nil && !madeUp && first.lastID == resumeID && first.event.ID == resumeID {
		s.col.add(RuleResume, ProbeReconnect, fmt.Sprintf("after Last-Event-ID: %s the server sent that event again", resumeID))
	}
	if pub != nil && wantSeq > 0 {
		if seen[sentSeq] {
			s.col.add(RuleResume, ProbeReconnect, fmt.Sprintf("after Last-Event-ID: %s (published event #%d) the server replayed #%d again", resumeID, sentSeq, sentSeq))
		}
		if !seen[wantSeq] {
			s.col.add(RuleResume, ProbeReconnect, fmt.Sprintf("after Last-Event-ID: %s (published event #%d) the next published event #%d was not replayed within %s", resumeID, sentSeq, wantSeq, fmtDur(window)))
		}
	}
}
