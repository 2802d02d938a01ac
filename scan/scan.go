package scan

import (
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
	ProbeIdle          = "idle"
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
	s := &scanner{cfg: &c, u: u}
	s.obs = &observations{cfg: &c, https: strings.EqualFold(u.Scheme, "https")}
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
	err = s.withHint(err)
	s.rep.Finished = time.Now().UTC()
	record(evaluate(s.obs), s.obs.via, s.rep)
	if c.Baseline != nil {
		s.rep.Notes = append(s.rep.Notes, c.Baseline.accept(s.rep.Findings)...)
	}
	if err != nil && s.obs.main == nil && s.rep.Load == nil {
		return nil, err
	}
	return s.rep, err
}

// scanner holds one scan's state: what the probes observed, which the
// rules judge once the probes are done, and the report.
type scanner struct {
	cfg *Config
	u   *url.URL
	obs *observations
	rep *Report
	// prog counts the main stream's progress for Config.Progress.
	prog streamProgress

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
	body := decodeBody(res, readSome(res.Body, 16<<10, wait))
	res.Body.Close()
	s.exchange(spec, res, body, nil)
	return probeResult{spec: spec, res: res, body: body}
}

// readBody reads the start of a body that is no stream (up to 16 KiB
// within 2 s), closes it and undoes its content coding.
func readBody(res *rawhttp.Response) []byte {
	body := decodeBody(res, readSome(res.Body, 16<<10, 2*time.Second))
	res.Body.Close()
	return body
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
	if s.cfg.PageURL != "" {
		specs = append(specs, probeSpec{name: ProbePage, purpose: "the HTML page that opens the stream: CSP and headers", url: s.cfg.PageURL,
			header: s.cfg.requestHeader(field("Accept", "text/html,application/xhtml+xml"), field("Cache-Control", ""), field("Accept-Encoding", ""))})
	}
	return specs
}

// run is a scan of one stream: the main stream, watched for the window
// while the side probes run (and, with --publish, an idle stream beside
// it), then the reconnect.
//
// Nothing waits for the main stream's head: a proxy that holds the head
// until the first body byte gets that byte from the scanner's own
// publishing, and the head is awaited for the whole window so that every
// header rule runs on it when it comes.
func (s *scanner) run(ctx context.Context) error {
	spec := probeSpec{name: ProbeStream, purpose: "what EventSource sends: the stream's headers and timing", url: s.u.String(),
		header: s.cfg.requestHeader()}
	start := time.Now()
	probe := startStallProbe()
	side := s.startSide(ctx)
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	headed := make(chan struct{})
	pub, pubDone := s.startPublisher(pctx, headed, publishSettle, start.Add(s.cfg.Duration-min(s.cfg.MaxLatency, s.cfg.Duration/2)))
	idle := s.startIdle(ctx, pub)
	fireLate, late := s.startLate(ctx)
	origin := s.startOrigin(ctx)
	stopProgress := s.startProgress(start)
	defer stopProgress()
	res, err := s.sendStream(ctx, spec)
	close(headed)
	if err == nil {
		s.prog.headMS.Store(res.Timing.Headers.Sub(res.Timing.Sent).Milliseconds())
		s.prog.head.Store(int64(res.StatusCode))
	}
	var win *window
	switch {
	case err == nil:
		win = s.watchMain(ctx, spec, res, pub, fireLate)
	case errors.Is(err, rawhttp.ErrHeadTimeout):
		s.exchange(spec, nil, nil, err)
		s.obs.headTimeout = true
		s.obs.heads = append(s.obs.heads, head{probe: ProbeStream, waited: s.headWait()})
		err = nil
	default:
		s.exchange(spec, nil, nil, err)
		err = fmt.Errorf("stream %s: %w", s.u, err)
	}
	if win == nil {
		stopPub()
	}
	<-pubDone
	iw := idle()
	lateRes, seen := late()
	st := probe.stop()
	s.addSide(side())
	s.recordLate(lateRes, seen)
	origin()
	s.sortExchanges()
	for i := range s.obs.heads {
		s.obs.heads[i].stalls = st
	}
	if iw != nil {
		iw.w.stalls = st
		s.obs.idle = iw
	}
	if err != nil || win == nil {
		return err
	}
	win.w.stalls = st
	win.d = measureDelivery(s.cfg, win.w, pub)
	win.stats = win.streamStats(s.cfg, res.Timing.Connected.Sub(res.Timing.Start))
	s.obs.window, s.rep.Stream = win, win.stats
	s.reconnect(ctx, win.w, win.pub)
	if err := win.d.publishErr; err != nil {
		return fmt.Errorf("--publish: %w", err)
	}
	return nil
}

// headWait is how long a stream's head is awaited: the whole window, or
// --timeout when longer.
func (s *scanner) headWait() time.Duration { return max(s.cfg.Timeout, s.cfg.Duration) }

// sendStream sends a stream request and awaits its head for headWait.
func (s *scanner) sendStream(ctx context.Context, spec probeSpec) (*rawhttp.Response, error) {
	u, err := url.Parse(spec.url)
	if err != nil {
		return nil, err
	}
	c := s.cfg.client()
	c.Timeout = s.headWait()
	return c.Do(ctx, &rawhttp.Request{Method: spec.method, URL: u, Header: spec.header})
}

// watchMain records the main stream's head and, when it opened a stream,
// watches it for the window. It returns nil when the stream did not open.
// The window's delivery figures are measured by the caller, once the
// scanner's own stalls are known.
//
// fireLate is called with the events received so far (by ID, when they
// came) once an event came replayMin after the request: the late probes
// (private.go) then start.
func (s *scanner) watchMain(ctx context.Context, spec probeSpec, res *rawhttp.Response, pub *publisher, fireLate func(map[string]time.Duration)) *window {
	s.obs.main = res
	s.obs.heads = append(s.obs.heads, head{probe: ProbeStream, res: res})
	r := &response{probe: ProbeStream, res: res, stream: true, cors: true, order: len(s.cfg.ExpectOrder) > 0}
	if !isEventStream(res) {
		r.body = readBody(res)
		r.refusal = res.StatusCode >= 400
		s.exchange(spec, res, r.body, nil)
		s.obs.add(r)
		s.note("the stream was not opened (status %d, Content-Type %s): streaming checks were skipped", res.StatusCode, quoteOrNone(res.Values("Content-Type")))
		return nil
	}
	s.exchange(spec, res, nil, nil)
	s.obs.add(r)
	wctx, cancel := context.WithDeadline(ctx, res.Timing.Headers.Add(s.cfg.Duration))
	defer cancel()
	seen := map[string]time.Duration{}
	onItem := func(it item) {
		s.prog.item(it)
		if _, dup := seen[eventKey(it)]; it.comment || it.lastID == "" || dup {
			return
		}
		seen[eventKey(it)] = it.at.Sub(res.Timing.Sent)
		if seen[eventKey(it)] >= replayMin {
			fireLate(seen)
		}
	}
	w := watchStream(wctx, res, "", onItem, false, s.cfg.HeartbeatMax/4)
	return &window{w: w, pub: pub}
}

// publishSettle is how long publishing waits for the main stream's head
// before it starts anyway: a proxy may hold the head until the first
// event.
const publishSettle = 500 * time.Millisecond

// startPublisher publishes to the hub with --publish (pub is nil
// without), from shortly after headed is closed (nil: never) or settle
// after now, whichever comes first, until stopAt or until ctx ends; done
// is closed when it has stopped.
func (s *scanner) startPublisher(ctx context.Context, headed <-chan struct{}, settle time.Duration, stopAt time.Time) (pub *publisher, done <-chan struct{}) {
	stopped := make(chan struct{})
	if s.cfg.Publish == nil {
		close(stopped)
		return nil, stopped
	}
	pub = newPublisher(s.cfg)
	go func() {
		defer close(stopped)
		fallback := time.NewTimer(settle)
		defer fallback.Stop()
		select {
		case <-headed:
			// Let the subscription settle before the first event.
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		case <-fallback.C:
		case <-ctx.Done():
			return
		}
		pub.run(ctx, stopAt)
	}()
	return pub, stopped
}

// startSide starts the side probes; the function it returns waits for
// them and returns their results by name.
func (s *scanner) startSide(ctx context.Context) func() []probeResult {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var side []probeResult
	for _, spec := range s.sideProbes() {
		wg.Go(func() {
			r := s.probe(ctx, spec)
			mu.Lock()
			side = append(side, r)
			mu.Unlock()
		})
	}
	return func() []probeResult {
		wg.Wait()
		slices.SortFunc(side, func(a, b probeResult) int { return strings.Compare(a.spec.name, b.spec.name) })
		return side
	}
}

// addSide records the side probes' responses.
func (s *scanner) addSide(side []probeResult) {
	for _, r := range side {
		if r.err != nil {
			s.note("probe %s failed: %v", r.spec.name, r.err)
			continue
		}
		s.obs.add(s.sideResponse(r))
	}
}

// sideResponse says what a side probe's response is judged as.
func (s *scanner) sideResponse(pr probeResult) *response {
	res := pr.res
	r := &response{probe: pr.spec.name, res: res, body: pr.body, refusal: res.StatusCode >= 400}
	switch r.probe {
	case ProbeAcceptAny, ProbeAcceptJSON:
		accept := rawhttp.Values(pr.spec.header, "Accept")[0]
		if !refusedAccept(s.cfg.Profile, accept) {
			r.refusal = false
			s.note("profile %s accepts a stream request with Accept: %s: not expected to be refused", s.cfg.Profile.Name, accept)
			break
		}
		r.accept = accept
	case ProbeOriginForeign, ProbeOriginNull, ProbePreflight:
		r.cors, r.origin = true, rawhttp.Values(pr.spec.header, "Origin")[0]
	case ProbeNoCredentials:
		if !r.refusal && isEventStream(res) {
			s.note("the stream opened without the credentials given with -H: is it meant to be public?")
		}
	case ProbePage:
		r.refusal, r.page = false, true
		if res.StatusCode != http.StatusOK {
			s.note("the page %s answered %d; its headers were checked anyway", pr.spec.url, res.StatusCode)
		}
	}
	return r
}

// sortExchanges puts the exchanges in a stable order: main stream first.
func (s *scanner) sortExchanges() {
	order := map[string]int{ProbeStream: 0, ProbeAcceptAny: 1, ProbeAcceptJSON: 2, ProbeOriginForeign: 3, ProbeOriginNull: 4,
		ProbePreflight: 5, ProbeNoCredentials: 6, ProbeOtherPrincipal: 7, ProbeSecondClient: 8, ProbePage: 9, ProbeIdle: 10, ProbeReconnect: 11, ProbeOriginDirect: 12, ProbeOriginNoCredentials: 13}
	s.mu.Lock()
	slices.SortStableFunc(s.rep.Exchanges, func(a, b Exchange) int { return order[a.Probe] - order[b.Probe] })
	s.mu.Unlock()
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
