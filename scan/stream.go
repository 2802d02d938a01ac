package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
	"github.com/sseguard/sseguard/sse"
)

// Stream end reasons.
const (
	endWindow = "window" // the scan window ended first: the stream held
	endEOF    = "eof"    // the server ended the body cleanly
	endCut    = "cut"    // the connection ended mid-body (no last chunk, reset)
	endError  = "error"  // the body could not be read or decoded
)

// readRec is one read from the connection.
type readRec struct {
	at time.Time
	n  int
}

// item is one thing the parser saw: an event or a comment.
type item struct {
	at      time.Time
	read    int // index of the read that completed it
	comment bool
	event   sse.Event
	lastID  string
}

// watch is what reading one stream body recorded.
type watch struct {
	sent     time.Time // request written
	headers  time.Time // head complete
	reads    []readRec
	bytes    int64
	items    []item
	retry    time.Duration
	retrySet bool
	lastID   string
	encoding string
	end      string
	endAt    time.Time
	endErr   error

	// light keeps no per-read or per-item records (load mode): only
	// counts, the last read, the longest gap and the gaps over gapOver.
	light  bool
	nreads int
	lastAt time.Time
	maxGap time.Duration

	// gaps are the silences between reads longer than gapOver (at most
	// maxGaps), kept so that the scanner's own stalls can be taken out of
	// them once the probe has seen them all.
	gapOver time.Duration
	gaps    []span
	// stalls are the scanner's own stalls while it watched (stallProbe).
	stalls stalls
}

// maxGaps bounds the silences a watch keeps; a stream with more long
// silences than this is silent whatever the scanner's stalls.
const maxGaps = 256

// timedReader records when each read returned bytes.
type timedReader struct {
	r io.Reader
	w *watch
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		w := t.w
		now := time.Now()
		prev := w.lastAt
		if prev.IsZero() {
			prev = w.headers
		}
		gap := now.Sub(prev)
		w.maxGap = max(w.maxGap, gap)
		if gap > w.gapOver && len(w.gaps) < maxGaps {
			w.gaps = append(w.gaps, span{prev, now})
		}
		w.lastAt = now
		w.nreads++
		w.bytes += int64(n)
		if !w.light {
			w.reads = append(w.reads, readRec{at: now, n: n})
		}
	}
	return n, err
}

func (w *watch) lastRead() (time.Time, int) {
	if w.nreads == 0 {
		return w.headers, -1
	}
	return w.lastAt, w.nreads - 1
}

// watchStream reads res's body as an event stream until ctx ends or the
// body does, and closes it. onItem, when set, is called for each event and
// comment as it arrives (on this goroutine).
//
// With light set, no record of each read and item is kept (load mode).
// Silences longer than gapOver are kept either way.
func watchStream(ctx context.Context, res *rawhttp.Response, lastID string, onItem func(item), light bool, gapOver time.Duration) *watch {
	w := &watch{sent: res.Timing.Sent, headers: res.Timing.Headers, light: light, gapOver: gapOver}
	defer res.Body.Close()
	stop := context.AfterFunc(ctx, func() { res.Body.Close() })
	defer stop()

	raw := &timedReader{r: res.Body, w: w}
	body, coding, err := decodeStream(res.Values("Content-Encoding"), raw)
	w.encoding = coding
	if err != nil {
		// A coding the scanner cannot undo: measure arrivals only.
		_, err = io.Copy(io.Discard, raw)
		w.finish(ctx, err)
		if w.end == endEOF || w.end == endWindow {
			w.endErr = fmt.Errorf("Content-Encoding %s cannot be decoded; events were not parsed", coding)
		}
		return w
	}
	w.parse(ctx, body, onItem)
	if w.lastID == "" {
		w.lastID = lastID
	}
	return w
}

// parse reads events and comments from body until it ends.
func (w *watch) parse(ctx context.Context, body io.Reader, onItem func(item)) {
	p := sse.NewParser(body)
	p.OnComment = func(string) {
		at, read := w.lastRead()
		it := item{at: at, read: read, comment: true}
		if !w.light {
			w.items = append(w.items, it)
		}
		if onItem != nil {
			onItem(it)
		}
	}
	for {
		ev, err := p.Next()
		if d, ok := p.Retry(); ok {
			w.retry, w.retrySet = d, true
		}
		if err != nil {
			w.finish(ctx, err)
			return
		}
		at, read := w.lastRead()
		w.lastID = p.LastEventID()
		it := item{at: at, read: read, event: ev, lastID: w.lastID}
		if !w.light {
			w.items = append(w.items, it)
		}
		if onItem != nil {
			onItem(it)
		}
	}
}

// finish classifies how the body ended.
func (w *watch) finish(ctx context.Context, err error) {
	w.endAt = time.Now()
	switch {
	case ctx.Err() != nil:
		w.end = endWindow
	case err == nil || errors.Is(err, io.EOF):
		w.end = endEOF
	case errors.Is(err, sse.ErrEventTooLarge), policy.IsCorruptContent(err):
		w.end, w.endErr = endError, err
	default:
		w.end, w.endErr = endCut, err
	}
}

// scanPayload is the data of an event the scanner published.
type scanPayload struct {
	Nonce string `json:"sseguard_scan"`
	Seq   int    `json:"seq"`
	TS    *int64 `json:"ts"`
}

// payloadOf reads an event's data as JSON with a "ts" (unix milliseconds)
// and, for the scanner's own events, its nonce and sequence number.
func payloadOf(data string) (scanPayload, bool) {
	var p scanPayload
	if !strings.HasPrefix(strings.TrimSpace(data), "{") {
		return p, false
	}
	if err := json.Unmarshal([]byte(data), &p); err != nil {
		return p, false
	}
	return p, p.TS != nil || p.Nonce != ""
}

// silences returns the times without a byte longer than gapOver: from
// the head to the first read, between reads, and from the last read to the
// end.
func (w *watch) silences() []span {
	out := slices.Clip(w.gaps)
	if !w.endAt.IsZero() {
		if prev, _ := w.lastRead(); w.endAt.Sub(prev) > w.gapOver {
			out = append(out, span{prev, w.endAt})
		}
	}
	return out
}

// longestSilence returns the longest time without a byte, as seen, and the
// longest once the scanner's own stalls are taken out of each silence:
// what can be blamed on the server.
func (w *watch) longestSilence() (seen, server time.Duration) {
	seen = w.maxGap
	if !w.endAt.IsZero() {
		prev, _ := w.lastRead()
		seen = max(seen, w.endAt.Sub(prev))
	}
	return seen, serverSilence(w.silences(), w.stalls, seen)
}

// serverSilence returns the longest of silences once the time the scanner
// was stalled in each is taken out; without silences over the watch's
// gapOver, it is seen.
func serverSilence(silences []span, st stalls, seen time.Duration) time.Duration {
	if len(silences) == 0 {
		return seen
	}
	var longest time.Duration
	for _, s := range silences {
		longest = max(longest, s.len()-st.overlap(s.from, s.to))
	}
	return longest
}

// heartbeatInterval returns the median time between consecutive comments.
func (w *watch) heartbeatInterval() time.Duration {
	var gaps []time.Duration
	var prev time.Time
	for _, it := range w.items {
		if !it.comment {
			continue
		}
		if !prev.IsZero() && it.at.Sub(prev) >= deliveryGap { // not one delivery read twice
			gaps = append(gaps, it.at.Sub(prev))
		}
		prev = it.at
	}
	if len(gaps) == 0 {
		return 0
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2]
}

// bursts counts reads that delivered two or more heartbeat comments at
// once. A server sends a heartbeat only after a quiet spell, never two in a
// row, so two in one read waited in a buffer together. (A heartbeat and an
// event together prove nothing: a server on a fixed ticker sends both at
// once.) The first read is left out: servers often open with a comment.
//
// The buffer may be the scanner's own socket, when the scanner could not
// read for a while: a read is not counted when the scanner had been
// stalled long enough to hold its heartbeats itself (see ownDelay); own
// counts those.
func (w *watch) bursts() (n int, worst string, own int) {
	type group struct{ comments, events int }
	byRead := map[int]*group{}
	for _, it := range w.items {
		if it.read <= 0 {
			continue
		}
		g := byRead[it.read]
		if g == nil {
			g = &group{}
			byRead[it.read] = g
		}
		if it.comment {
			g.comments++
		} else {
			g.events++
		}
	}
	interval := w.heartbeatInterval()
	reads := make([]int, 0, len(byRead))
	for r := range byRead {
		reads = append(reads, r)
	}
	slices.Sort(reads)
	worstCount := 0
	for _, r := range reads {
		g := byRead[r]
		if g.comments < 2 {
			continue
		}
		if w.ownDelay(r, g.comments, interval) {
			own++
			continue
		}
		n++
		if g.comments > worstCount {
			worstCount = g.comments
			worst = fmt.Sprintf("one read of %d bytes at %s delivered %d heartbeats and %d events together",
				w.reads[r].n, fmtDur(w.reads[r].at.Sub(w.headers)), g.comments, g.events)
		}
	}
	return n, worst, own
}

// deliveryGap is the most time between reads of one delivery: a
// delivery larger than the reader's buffer takes several reads in a row.
const deliveryGap = 2 * time.Millisecond

// ownDelay reports whether read r, which brought n heartbeats, may have
// waited in the scanner's own socket: in the silence before the delivery
// it belongs to, the scanner was stalled for at least half the time n
// heartbeats take at the stream's usual interval, or, when the stream has
// no usual interval, for at least half the silence. A proxy's buffer makes
// the usual interval long (bursts come a flush apart), so its bursts are
// not taken for the scanner's.
func (w *watch) ownDelay(r, n int, interval time.Duration) bool {
	if len(w.stalls) == 0 {
		return false
	}
	start := r
	for start > 0 && w.reads[start].at.Sub(w.reads[start-1].at) < deliveryGap {
		start--
	}
	from := w.headers
	if start > 0 {
		from = w.reads[start-1].at
	}
	to := w.reads[start].at
	held := time.Duration(n-1) * interval
	if interval == 0 {
		held = to.Sub(from)
	}
	return 2*w.stalls.overlap(from, to) >= held
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000)
	}
	return d.Round(100 * time.Millisecond).String()
}
