package scan

import (
	"context"
	"fmt"
	"time"
)

// resumeResult is what the reconnect probe saw: EventSource's reconnect
// with Last-Event-ID after a drop, which SSE-RESUME judges.
type resumeResult struct {
	id     string // the Last-Event-ID sent
	madeUp bool   // the stream gave no ID, so id is one no server knows
	// With --publish: the reconnect resumes after published event
	// sentSeq and must replay wantSeq (0: no such pair was delivered).
	sentSeq, wantSeq int
	published        bool

	err      error     // the request failed
	refused  *response // the answer was no stream
	first    *item     // the first event after reconnecting
	seen     map[int]bool
	listened time.Duration
}

// resumePoint picks the ID to reconnect with: the last one the stream
// gave or, with --publish, that of the first delivered published event
// whose successor was published too, so that its replay can be checked.
func resumePoint(w *watch, pub *publisher) *resumeResult {
	rr := &resumeResult{id: w.lastID, published: pub != nil, seen: map[int]bool{}}
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
				rr.id, rr.sentSeq, rr.wantSeq = ids[seqs[i]], seqs[i], seqs[i+1]
				break
			}
		}
	}
	if rr.id == "" {
		rr.id, rr.madeUp = "sseguard-scan-unknown-id", true
	}
	return rr
}

// reconnect makes the Last-Event-ID probe and records what it saw.
func (s *scanner) reconnect(ctx context.Context, w *watch, pub *publisher) {
	rr := resumePoint(w, pub)
	s.obs.resume = rr
	spec := probeSpec{name: ProbeReconnect, purpose: "EventSource's reconnect: Last-Event-ID " + rr.id, url: s.u.String(),
		header: s.cfg.requestHeader(field("Last-Event-ID", rr.id))}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := s.send(rctx, spec)
	if err != nil {
		s.exchange(spec, nil, nil, err)
		rr.err = err
		return
	}
	r := &response{probe: ProbeReconnect, res: res, stream: true}
	if !isEventStream(res) {
		r.body = readBody(res)
		r.refusal = res.StatusCode >= 400
		s.exchange(spec, res, r.body, nil)
		s.obs.add(r)
		rr.refused = r
		return
	}
	s.exchange(spec, res, nil, nil)
	s.obs.add(r)
	rr.listened = min(1500*time.Millisecond, max(300*time.Millisecond, s.cfg.Duration/2))
	wctx, wcancel := context.WithTimeout(rctx, rr.listened)
	defer wcancel()
	watchStream(wctx, res, rr.id, func(it item) {
		if it.comment {
			return
		}
		if rr.first == nil {
			c := it
			rr.first = &c
		}
		if pub != nil {
			if p, ok := payloadOf(it.event.Data); ok && p.Nonce == pub.nonce {
				rr.seen[p.Seq] = true
				if p.Seq == rr.wantSeq {
					wcancel()
				}
			}
		}
	}, false, s.cfg.HeartbeatMax)
}

// checkResume: a reconnect with Last-Event-ID gets the stream again, goes
// on after that event and replays the next one (SSE-RESUME).
func checkResume(p *pass) {
	rr := p.obs.resume
	switch {
	case p.obs.load != nil:
		p.skip("load mode reconnects with Last-Event-ID and counts loss instead (LOAD-LOSS)")
		return
	case rr == nil:
		p.skip("the stream did not open")
		return
	}
	p.evaluated()
	switch {
	case rr.err != nil:
		p.report(ProbeReconnect, fmt.Sprintf("reconnecting with Last-Event-ID: %s failed: %v", rr.id, rr.err))
		return
	case rr.refused != nil:
		res := rr.refused.res
		p.report(ProbeReconnect, fmt.Sprintf("reconnecting with Last-Event-ID: %s got %d %s, not a stream: EventSource gives up", rr.id, res.StatusCode, quoteOrNone(res.Values("Content-Type"))))
		return
	}
	if f := rr.first; f != nil && !rr.madeUp && f.lastID == rr.id && f.event.ID == rr.id {
		p.report(ProbeReconnect, fmt.Sprintf("after Last-Event-ID: %s the server sent that event again", rr.id))
	}
	if rr.published && rr.wantSeq > 0 {
		if rr.seen[rr.sentSeq] {
			p.report(ProbeReconnect, fmt.Sprintf("after Last-Event-ID: %s (published event #%d) the server replayed #%d again", rr.id, rr.sentSeq, rr.sentSeq))
		}
		if !rr.seen[rr.wantSeq] {
			p.report(ProbeReconnect, fmt.Sprintf("after Last-Event-ID: %s (published event #%d) the next published event #%d was not replayed within %s", rr.id, rr.sentSeq, rr.wantSeq, fmtDur(rr.listened)))
		}
	}
}
