package scan

import (
	"encoding/binary"
	"io"
	"os"
	"slices"
	"sync"
	"time"
)

// The scanner judges time: silences (SSE-HEARTBEAT), heartbeats that
// arrive together (SSE-FLUSH), delivery latency (SSE-FLUSH, LOAD-LATENCY).
// Each is measured when the scanner reads, so a scanner that could not run
// (a busy CI runner, a scan of many streams, a pause of its process) would
// blame the server for its own delay: bytes that waited in its socket look
// like bytes a proxy held. stallProbe measures those delays while a stream
// is watched, and the rules do not count the time the scanner was stalled
// against the server. The probe only approximates the stream readers (on a
// saturated scheduler one goroutine may run while another waits), so the
// whole stalled time within a measured span is taken out, not just the
// stall that ended it.

// stallTick is how often the probe checks on the scanner: a delay shorter
// than this is not recorded.
const stallTick = 10 * time.Millisecond

// span is an interval of wall-clock time.
type span struct{ from, to time.Time }

func (s span) len() time.Duration { return s.to.Sub(s.from) }

// stalls are the spans in which the scanner could not read promptly,
// sorted and disjoint.
type stalls []span

// overlap returns how long the scanner was stalled within [from, to].
func (st stalls) overlap(from, to time.Time) time.Duration {
	var d time.Duration
	for _, s := range st {
		lo, hi := maxTime(s.from, from), minTime(s.to, to)
		if hi.After(lo) {
			d += hi.Sub(lo)
		}
	}
	return d
}

// longest returns the longest stall.
func (st stalls) longest() time.Duration {
	var d time.Duration
	for _, s := range st {
		d = max(d, s.len())
	}
	return d
}

// stallProbe sends the scanner a timestamp through a pipe every stallTick
// and reads it on a goroutine that waits in the same network poller as the
// stream readers: a tick that fires late, or a timestamp read late, marks a
// span in which the scanner would have read late too.
type stallProbe struct {
	r, w *os.File
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	spans []span
}

// startStallProbe starts a probe; stop ends it. Without a pipe (out of
// file descriptors) it records nothing.
func startStallProbe() *stallProbe {
	p := &stallProbe{done: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		return p
	}
	p.r, p.w = r, w
	p.wg.Go(p.send)
	p.wg.Go(p.receive)
	return p
}

func (p *stallProbe) record(from, to time.Time) {
	p.mu.Lock()
	p.spans = append(p.spans, span{from, to})
	p.mu.Unlock()
}

// send writes the time every tick, and records the ticks that came late.
func (p *stallProbe) send() {
	defer p.w.Close() // the receiver then reads EOF
	t := time.NewTimer(stallTick)
	defer t.Stop()
	due := time.Now().Add(stallTick)
	var buf [8]byte
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		now := time.Now()
		if now.Sub(due) > stallTick {
			p.record(due, now)
		}
		binary.LittleEndian.PutUint64(buf[:], uint64(now.UnixNano()))
		if _, err := p.w.Write(buf[:]); err != nil {
			return
		}
		due = now.Add(stallTick)
		t.Reset(stallTick)
	}
}

// receive reads the times and records those that arrived late.
func (p *stallProbe) receive() {
	defer p.r.Close()
	var buf [8]byte
	for {
		if _, err := io.ReadFull(p.r, buf[:]); err != nil {
			return
		}
		sent := time.Unix(0, int64(binary.LittleEndian.Uint64(buf[:])))
		if now := time.Now(); now.Sub(sent) > stallTick {
			p.record(sent, now)
		}
	}
}

// stop ends the probe, waits for it, and returns what it recorded.
func (p *stallProbe) stop() stalls {
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return mergeSpans(p.spans)
}

// mergeSpans sorts spans and joins those that overlap.
func mergeSpans(spans []span) stalls {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	var out stalls
	for _, s := range spans {
		if n := len(out); n > 0 && !s.from.After(out[n-1].to) {
			out[n-1].to = maxTime(out[n-1].to, s.to)
			continue
		}
		out = append(out, s)
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
