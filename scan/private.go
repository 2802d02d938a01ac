package scan

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// Private streams. A cache that ignores Authorization serves the stream
// it stored for one user to everyone. The probes that show it are made
// once the main stream has received an event: a second client with the
// same credentials, one without them and, with --other-credentials, one
// with another principal's. A fresh stream (no Last-Event-ID) starts with
// what is published after it connects, so events the main stream had
// long after its request, received by a probe at once after its own,
// were replayed by a cache; an Age above 0 or a cache HIT header says so
// too.

// More probe names.
const (
	ProbeSecondClient   = "second-client"
	ProbeOtherPrincipal = "other-principal"
)

// lateProbes are the probes made once the main stream has events.
type lateProbes struct {
	once    sync.Once
	trigger chan map[string]time.Duration // the main stream's events so far; nil: none
	done    chan []lateResult
	seen    map[string]time.Duration
}

// startLate starts the late probes; they are sent when fire is called
// (the first call counts), and wait returns their results.
func (s *scanner) startLate(ctx context.Context) (fire func(seen map[string]time.Duration), wait func() ([]lateResult, map[string]time.Duration)) {
	l := &lateProbes{trigger: make(chan map[string]time.Duration, 1), done: make(chan []lateResult, 1)}
	go func() {
		var ids map[string]time.Duration
		select {
		case ids = <-l.trigger:
		case <-ctx.Done():
		}
		var specs []probeSpec
		if len(ids) > 0 {
			specs = append(specs, probeSpec{name: ProbeSecondClient, purpose: "a second client with the same credentials, once the stream had events: it must get its own stream, not a replay",
				url: s.u.String(), header: s.cfg.requestHeader()})
		}
		if drop := s.credentialFields(); len(drop) > 0 {
			specs = append(specs, probeSpec{name: ProbeNoCredentials, purpose: "without the credentials given with -H: the refusal's headers, and no cached stream",
				url: s.u.String(), header: s.cfg.requestHeader(drop...)})
		}
		if len(s.cfg.OtherCredentials) > 0 {
			own := append(s.credentialFields(), s.cfg.OtherCredentials...)
			specs = append(specs, probeSpec{name: ProbeOtherPrincipal, purpose: "with another principal's credentials (--other-credentials): no cached stream of the first",
				url: s.u.String(), header: s.cfg.requestHeader(own...)})
		}
		var wg sync.WaitGroup
		res := make([]lateResult, len(specs))
		for i, spec := range specs {
			wg.Go(func() { res[i] = s.lateProbe(ctx, spec) })
		}
		wg.Wait()
		l.seen = ids
		l.done <- res
	}()
	fire = func(seen map[string]time.Duration) {
		l.once.Do(func() { l.trigger <- maps.Clone(seen) })
	}
	wait = func() ([]lateResult, map[string]time.Duration) {
		fire(nil)
		res := <-l.done
		return res, l.seen
	}
	return fire, wait
}

// replayMin is how long after its request the main stream must have got
// an event before the late probes go: a replay is told from a stream of
// the probe's own by that event coming much sooner to the probe.
const replayMin = 250 * time.Millisecond

// lateResult is a late probe's answer and, when it opened a stream, when
// each event came (since the request was sent).
type lateResult struct {
	probeResult
	events map[string]time.Duration
}

// lateProbe sends spec and, when a stream opens, watches it briefly:
// long enough for a cache's replay, which comes at once.
func (s *scanner) lateProbe(ctx context.Context, spec probeSpec) lateResult {
	res, err := s.send(ctx, spec)
	if err != nil {
		s.exchange(spec, nil, nil, err)
		return lateResult{probeResult: probeResult{spec: spec, err: err}}
	}
	if res.StatusCode != 200 || !isEventStream(res) {
		body := readBody(res)
		s.exchange(spec, res, body, nil)
		return lateResult{probeResult: probeResult{spec: spec, res: res, body: body}}
	}
	s.exchange(spec, res, nil, nil)
	wctx, cancel := context.WithTimeout(ctx, replayMin+150*time.Millisecond)
	defer cancel()
	w := watchStream(wctx, res, "", nil, false, time.Hour)
	events := map[string]time.Duration{}
	for _, it := range w.items {
		if _, dup := events[eventKey(it)]; !it.comment && it.lastID != "" && !dup {
			events[eventKey(it)] = it.at.Sub(w.sent)
		}
	}
	return lateResult{probeResult: probeResult{spec: spec, res: res}, events: events}
}

// eventKey identifies an event by its ID and data: a replay repeats both,
// where a stream whose IDs count from 1 on each connection repeats the
// ID only (its data carries a time or differs).
func eventKey(it item) string { return it.lastID + "\x00" + it.event.Data }

// replayed returns the IDs of the main stream's events (seen, by key and
// when they came) that the probe got, same ID and data, much sooner
// after its request than the main stream did: a stream of the probe's
// own brings them no sooner.
func replayed(seen, got map[string]time.Duration) []string {
	var out []string
	for key, at := range got {
		if first, ok := seen[key]; ok && at+max(150*time.Millisecond, first/2) < first {
			id, _, _ := strings.Cut(key, "\x00")
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// cacheEvidence says what in res's head shows a cache answered from
// storage: an Age above 0 or a cache HIT header; "" when nothing does.
func cacheEvidence(res *rawhttp.Response) string {
	if age := res.Values("Age"); len(age) > 0 {
		if n, err := strconv.ParseInt(strings.TrimSpace(age[0]), 10, 64); err == nil && n > 0 {
			return "Age: " + age[0]
		}
	}
	for _, name := range []string{"X-Cache", "CF-Cache-Status", "X-Cache-Status", "Cache-Status"} {
		for _, v := range res.Values(name) {
			if strings.Contains(strings.ToUpper(v), "HIT") {
				return name + ": " + v
			}
		}
	}
	return ""
}

// privateResult is what a late probe showed about the stream's privacy.
type privateResult struct {
	probe    string
	res      *rawhttp.Response
	replayed []string // the main stream's events it got again
	cached   string   // cacheEvidence of its head
}

// recordLate records the late probes: their responses, judged as side
// probes are, and what they replayed.
func (s *scanner) recordLate(results []lateResult, seen map[string]time.Duration) {
	for _, r := range results {
		if r.err != nil {
			s.note("probe %s failed: %v", r.spec.name, r.err)
			continue
		}
		resp := s.sideResponse(r.probeResult)
		if r.spec.name == ProbeSecondClient {
			resp.refusal = false // a second stream, judged by SSE-CACHE below
		}
		if r.spec.name != ProbeSecondClient || r.res.StatusCode >= 400 || !isEventStream(r.res) {
			s.obs.add(resp)
		}
		if r.res.StatusCode != 200 || !isEventStream(r.res) {
			continue
		}
		s.obs.private = append(s.obs.private, privateResult{probe: r.spec.name, res: r.res, replayed: replayed(seen, r.events), cached: cacheEvidence(r.res)})
	}
}

// checkReplay: a second client gets its own stream, not the first one's
// events again (SSE-CACHE, on the whole scan).
func checkReplay(p *pass) {
	for _, pr := range p.obs.private {
		if pr.probe != ProbeSecondClient {
			continue
		}
		p.evaluated()
		if len(pr.replayed) > 0 {
			p.report(pr.probe, fmt.Sprintf("a second client with the same credentials, connecting after the stream had events, got %s again at once: a cache replays one stream to every client", idList(pr.replayed)))
		}
	}
}

// checkAuthLeak: a request without the credentials, or with another
// principal's, never gets the stream that needed them (SSE-AUTH-LEAK).
func checkAuthLeak(p *pass) {
	if p.obs.load != nil {
		p.skip("load mode makes no credential probes")
		return
	}
	if len(p.obs.cfg.Header) == 0 || !slices.ContainsFunc(p.obs.cfg.Header, isCredential) {
		p.skip("no credentials were given with -H")
		return
	}
	p.evaluated()
	for _, pr := range p.obs.private {
		who := "a request without the credentials given with -H"
		switch pr.probe {
		case ProbeSecondClient:
			continue
		case ProbeOtherPrincipal:
			who = "a request with another principal's credentials (--other-credentials)"
		}
		var ev []string
		if len(pr.replayed) > 0 {
			ev = append(ev, fmt.Sprintf("got the credentialed stream's %s again", idList(pr.replayed)))
		}
		if pr.cached != "" {
			ev = append(ev, "was answered from a cache ("+pr.cached+")")
		}
		if o := p.obs.origin; o != nil && pr.probe == ProbeNoCredentials && o.noCredsStatus >= 400 {
			ev = append(ev, fmt.Sprintf("opened the stream where the origin (--origin) answers %d without them", o.noCredsStatus))
		}
		if len(ev) == 0 {
			continue
		}
		p.report(pr.probe, fmt.Sprintf("%s %s: a cache serves the private stream to whoever asks (it ignores Authorization and Cookie)", who, strings.Join(ev, ", and ")))
	}
}

func isCredential(f rawhttp.Field) bool {
	switch strings.ToLower(f.Name) {
	case "authorization", "cookie", "proxy-authorization":
		return true
	}
	return false
}

func idList(ids []string) string {
	if len(ids) == 1 {
		return "event id " + ids[0]
	}
	return "event ids " + strings.Join(clipList(ids, 5), ", ")
}
