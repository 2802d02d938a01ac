package scan

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// The idle stream: with --publish the main stream is kept busy, so an
// intermediary's idle timeout never fires on it. A second stream, on a
// topic nobody publishes to, is watched beside it for the whole window:
// it carries heartbeats only, and is what idle timeouts cut.

// IdleTopicPrefix starts the topic the idle stream subscribes to; the
// rest is the scan's nonce, so that no one publishes to it.
const IdleTopicPrefix = "sseguard-scan-idle-"

// idleWindow is what watching the idle stream recorded.
type idleWindow struct {
	topic string
	w     *watch
}

// head is one stream head awaited: when it came, or that it never did.
type head struct {
	probe  string
	res    *rawhttp.Response // nil when it never came
	waited time.Duration     // how long it was awaited, when it never came
	stalls stalls            // the scanner's own stalls meanwhile
}

// delay is how long the head took, without the scanner's own stalls.
func (h head) delay() time.Duration {
	return serverLatency(h.res.Timing.Sent, h.res.Timing.Headers, h.stalls)
}

// idleURL is the stream URL with its topic replaced by the idle topic.
func idleURL(u *url.URL, topic string) string {
	iu := *u
	q := iu.Query()
	q.Del("topic")
	q.Set("topic", topic)
	iu.RawQuery = q.Encode()
	return iu.String()
}

// startIdle opens and watches the idle stream when the scan publishes;
// the function it returns waits for it, and returns nil when it did not
// open.
func (s *scanner) startIdle(ctx context.Context, pub *publisher) func() *idleWindow {
	if pub == nil {
		return func() *idleWindow { return nil }
	}
	topic := IdleTopicPrefix + pub.nonce
	spec := probeSpec{name: ProbeIdle, purpose: "a stream that gets no events (topic " + topic + "): idle timeouts and the head of a quiet stream",
		url: idleURL(s.u, topic), header: s.cfg.requestHeader()}
	done := make(chan *idleWindow, 1)
	var heads []head
	go func() {
		res, err := s.sendStream(ctx, spec)
		if err != nil {
			s.exchange(spec, nil, nil, err)
			if errors.Is(err, rawhttp.ErrHeadTimeout) {
				heads = append(heads, head{probe: ProbeIdle, waited: s.headWait()})
			} else {
				s.note("the idle stream could not be opened, so idle timeouts were not watched: %v", err)
			}
			done <- nil
			return
		}
		heads = append(heads, head{probe: ProbeIdle, res: res})
		if !isEventStream(res) {
			body := readBody(res)
			s.exchange(spec, res, body, nil)
			s.note("the idle stream (topic %s) was not opened (status %d), so idle timeouts were not watched", topic, res.StatusCode)
			done <- nil
			return
		}
		s.exchange(spec, res, nil, nil)
		wctx, cancel := context.WithDeadline(ctx, res.Timing.Headers.Add(s.cfg.Duration))
		defer cancel()
		w := watchStream(wctx, res, "", nil, false, s.cfg.HeartbeatMax/4)
		done <- &idleWindow{topic: topic, w: w}
	}()
	return func() *idleWindow {
		iw := <-done
		s.obs.heads = append(s.obs.heads, heads...)
		if iw != nil {
			s.obs.add(&response{probe: ProbeIdle, res: heads[0].res, stream: true})
		}
		return iw
	}
}

// checkHeadDelay: the response head of each stream comes without waiting
// for the body (SSE-HEAD-DELAY).
func checkHeadDelay(p *pass) {
	cfg := p.obs.cfg
	if p.obs.load != nil {
		p.skip("load mode times heads in its header distribution")
		return
	}
	if len(p.obs.heads) == 0 {
		p.skip("no stream request got that far")
		return
	}
	p.evaluated()
	for _, h := range p.obs.heads {
		what := "the stream's"
		if h.probe == ProbeIdle {
			what = "the idle stream's (no events, heartbeats only)"
		}
		if h.res == nil {
			p.report(h.probe, fmt.Sprintf("%s response head never came in %s: an intermediary holds it until the body starts, and the body never did", what, fmtDur(h.waited)))
			continue
		}
		d := h.delay()
		if d <= cfg.HeadMax {
			continue
		}
		cause := ""
		if w := p.obs.watchOf(h.probe); w != nil && len(w.reads) > 0 && w.reads[0].at.Sub(w.headers) < 100*time.Millisecond {
			cause = "; it came with the first bytes of the body: an intermediary holds the head until the body starts (response buffering or compression)"
			if h.probe == ProbeIdle {
				cause += ", so a quiet stream opens only at its first heartbeat"
			}
		}
		p.report(h.probe, fmt.Sprintf("%s response head came %s after the request (limit %s)%s", what, fmtDur(d), cfg.HeadMax, cause))
	}
}

// watchOf returns the watch of the stream the probe names, or nil.
func (o *observations) watchOf(probe string) *watch {
	switch {
	case probe == ProbeStream && o.window != nil:
		return o.window.w
	case probe == ProbeIdle && o.idle != nil:
		return o.idle.w
	}
	return nil
}

// idleCut says how the idle stream ended when it did not last the window:
// the time, compared with the heartbeat interval. It returns "" when it
// held.
func idleCut(iw *idleWindow, main *window) string {
	w := iw.w
	if w.end != endEOF && w.end != endCut {
		return ""
	}
	after := w.endAt.Sub(w.headers)
	how := "ended (a clean end of the body)"
	if w.end == endCut {
		how = fmt.Sprintf("was cut (%v)", w.endErr)
	}
	beat := w.heartbeatInterval()
	if beat == 0 && main != nil {
		beat = main.w.heartbeatInterval()
	}
	comments := 0
	for _, it := range w.items {
		if it.comment {
			comments++
		}
	}
	hb := fmt.Sprintf("heartbeats come every %s", fmtDur(beat))
	switch {
	case comments == 0:
		hb = fmt.Sprintf("no heartbeat came in the %s it lived, so the heartbeat interval is longer than that", fmtDur(after))
	case beat == 0:
		hb = fmt.Sprintf("%d heartbeat(s) came before it", comments)
	}
	return fmt.Sprintf("the idle stream (no events, heartbeats only) %s after %s, %s after its last byte: an intermediary closes idle streams after ~%s; %s. Make its idle timeout longer than the heartbeat interval, or the heartbeat shorter",
		how, fmtDur(after), fmtDur(w.endAt.Sub(lastActivity(w))), fmtDur(w.endAt.Sub(lastActivity(w))), hb)
}
