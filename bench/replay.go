package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Replay configures a replay run: what a hub does when clients reconnect
// with an old cursor and ask for its whole history. The run publishes
// Config.Events (of Config.DataBytes each) as that history, waits
// Config.Settle, samples the server's idle memory, and then:
//
//  1. opens Stalled replays and Polls polls that send their request and
//     never read a byte, and samples the server's memory every 50 ms for
//     at most Window (less once the server has closed every one of them);
//  2. reads out what each stalled connection was sent, to learn whether
//     the server had ended it, closes them, waits Settle and samples the
//     memory once more;
//  3. has Readers clients replay the whole history and read every event:
//     the replay throughput.
//
// Memory is sampled only with Config.PID or Config.MetricsURL; the early
// end of the window needs the server's open file count, from /proc or the
// process_open_fds gauge, and works only when the hub is a process of its
// own (an in-process hub counts the generator's sockets too).
type Replay struct {
	// Stalled is the number of clients that send GET EventsPath?topic=Topic
	// with "Last-Event-ID: Cursor" and never read the answer.
	Stalled int

	// Polls is the number of clients that send GET
	// PollPath?topic=Topic&after=Cursor (with Connection: close, so that
	// the server closes the connection once it has written the answer)
	// and never read the answer.
	Polls int

	// Readers is the number of clients that replay from Cursor and read
	// every event, all at once, after the stalled clients are closed.
	Readers int

	// Storm is the number of clients of a reconnect storm: all reconnect
	// at once from Cursor, read the history, then a live event (see
	// StormReport), before the Readers, if any, run.
	Storm int

	// Cursor is the replays' Last-Event-ID and the polls' after. Empty
	// means "0": the oldest history a store with decimal IDs has.
	Cursor string

	// Window bounds how long the stalled clients are held, and how long
	// the readers may take. Zero means 30 s; set it above the server's
	// write timeout to see it cut off clients that do not read.
	Window time.Duration

	// Anonymous makes the replay clients send no token, as anonymous
	// subscribers do; Config.Token still authenticates the publishes.
	Anonymous bool

	// PollPath is the poll route. Empty means "/api/poll".
	PollPath string
}

// sampleEvery is how often a replay run samples the server.
const sampleEvery = 50 * time.Millisecond

// readOutWait bounds the read-out of the stalled connections after their
// window, and readOutGap is the silence that ends one connection's.
const (
	readOutWait = 5 * time.Second
	readOutGap  = 500 * time.Millisecond
)

// withDefaults fills in p's defaults and checks it, for a run of events
// publishes.
func (p *Replay) withDefaults(events int) error {
	if p.PollPath == "" {
		p.PollPath = "/api/poll"
	}
	if p.Stalled < 0 || p.Polls < 0 || p.Readers < 0 || p.Storm < 0 || p.Window < 0 {
		return configErrorf("Replay.Stalled, Replay.Polls, Replay.Readers, Replay.Storm and Replay.Window must not be negative")
	}
	if p.Storm > MaxStorm {
		return configErrorf("Replay.Storm %d is over the limit %d", p.Storm, MaxStorm)
	}
	if p.Stalled+p.Polls > MaxStalled {
		return configErrorf("Replay.Stalled + Replay.Polls %d is over the limit %d", p.Stalled+p.Polls, MaxStalled)
	}
	if p.Readers > MaxReaders {
		return configErrorf("Replay.Readers %d is over the limit %d", p.Readers, MaxReaders)
	}
	if p.Stalled+p.Polls+p.Readers+p.Storm == 0 {
		return nil
	}
	if events == 0 {
		return configErrorf("Events: a replay run needs history to replay")
	}
	if b := int64(p.Readers+p.Storm) * int64(events/8+8); b > maxTrackingBytes {
		return configErrorf("(Replay.Readers + Replay.Storm) × Events (%d × %d) needs %d MB to track deliveries, over the %d MB bound", p.Readers+p.Storm, events, b>>20, maxTrackingBytes>>20)
	}
	if p.Cursor == "" {
		p.Cursor = "0"
	}
	if strings.ContainsFunc(p.Cursor, func(c rune) bool { return c < 0x21 || c == 0x7f }) {
		return configErrorf("Replay.Cursor %q holds a space or a control character", p.Cursor)
	}
	if p.Window == 0 {
		p.Window = 30 * time.Second
	}
	return nil
}

// ReplayReport is the outcome of a replay run.
type ReplayReport struct {
	// Cursor is the Last-Event-ID and after value the clients sent.
	Cursor string `json:"cursor"`
	// HistoryEvents and HistoryBytes are the accepted publishes and their
	// data bytes: the history the clients asked for.
	HistoryEvents int64 `json:"history_events"`
	HistoryBytes  int64 `json:"history_data_bytes"`
	// Stall covers the clients that never read, when there were any.
	Stall *StallReport `json:"stall,omitempty"`
	// Read covers the clients that read the whole history, when there
	// were any.
	Read *ReadReport `json:"read,omitempty"`
	// Storm covers a reconnect storm, when there was one.
	Storm *StormReport `json:"storm,omitempty"`
}

// StallReport is the phase of the clients that ask for history and never
// read it. Memory is in bytes, from the server's VmRSS (and RssAnon: its
// heap and stacks without the store's mapped file pages), and zero when
// the server was not sampled.
type StallReport struct {
	// Replays and Polls are the clients asked for; Opened sent their
	// request; Failed could not.
	Replays int   `json:"replays"`
	Polls   int   `json:"polls"`
	Opened  int64 `json:"opened"`
	Failed  int64 `json:"failed"`
	// HeldSeconds is how long they were held, from the first connect.
	HeldSeconds float64 `json:"held_seconds"`
	// ServerClosedAll is set when the server's open file count fell back
	// to its idle count within the window: it had closed every one.
	ServerClosedAll bool `json:"server_closed_all"`
	// EndedByServer counts the connections that the server had ended
	// (end of stream or reset) when the bench read them out after the
	// window; ReceivedBytes is what that read-out found.
	EndedByServer int64 `json:"ended_by_server"`
	ReceivedBytes int64 `json:"received_bytes"`
	// RSSIdle is sampled before the first connect; RSSPeak is the most
	// seen over the window: the highest sample (every 50 ms) or, from
	// /proc, the process's high-water mark (VmHWM) when it rose during
	// the window; RSSPeakAboveIdle is their difference, and RSSAfterClose
	// is sampled once the bench has closed them and waited Config.Settle.
	RSSIdle          int64 `json:"rss_idle_bytes"`
	RSSPeak          int64 `json:"rss_peak_bytes"`
	RSSPeakAboveIdle int64 `json:"rss_peak_above_idle_bytes"`
	RSSAfterClose    int64 `json:"rss_after_close_bytes"`
	// AnonIdle and AnonPeak are the same for RssAnon (zero when the
	// source lacks it).
	AnonIdle int64 `json:"anon_idle_bytes"`
	AnonPeak int64 `json:"anon_peak_bytes"`
	// Samples is the number of samples in the window.
	Samples int `json:"samples"`
}

// ReadReport is the phase of the clients that read the whole history.
type ReadReport struct {
	// Readers asked for; Completed read every accepted event; Failed did
	// not, within Replay.Window.
	Readers   int   `json:"readers"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	// Seconds is from the first connect to the last reader done.
	Seconds float64 `json:"seconds"`
	// Events and Bytes are what all readers received (Bytes after chunk
	// decoding), and the rates are over Seconds; a MB is 2^20 bytes.
	Events          int64   `json:"events"`
	Bytes           int64   `json:"bytes"`
	EventsPerSecond float64 `json:"events_per_second"`
	MBPerSecond     float64 `json:"mb_per_second"`
	// Replay is the time one reader took, connect to last event.
	Replay Latency `json:"replay_ms"`
	// RSSPeak is the server's peak RSS while they read, as for
	// StallReport, RSSPeakAboveIdle that above the idle sample of the run
	// (which was before any stalled client), and AnonPeak the peak of its
	// RssAnon; CPUSeconds is its CPU time over the phase.
	RSSPeak          int64   `json:"rss_peak_bytes"`
	RSSPeakAboveIdle int64   `json:"rss_peak_above_idle_bytes"`
	AnonPeak         int64   `json:"anon_peak_bytes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
}

// replayState is the progress of a replay run's phases.
type replayState struct {
	opened, failed        atomic.Int64 // stalled clients
	readersDone, received atomic.Int64
	lastRSS, peakRSS      atomic.Int64
	storm                 stormState
	report                *ReplayReport
}

// replayPhases runs the phases of a replay run, after the history is
// published.
func (r *run) replayPhases(ctx context.Context, smp sampler, rep *Report) error {
	rr := &ReplayReport{Cursor: r.cfg.Replay.Cursor}
	r.rp.report = rr
	rep.Replay = rr
	// Let the publishers' connections close before the idle sample.
	if !sleep(ctx, r.cfg.Settle) {
		return cause(ctx)
	}
	idle := r.sampleOr(ctx, &smp)
	if r.cfg.Replay.Stalled+r.cfg.Replay.Polls > 0 {
		r.setPhase(phaseStall)
		st, err := r.stall(ctx, &smp, idle)
		rr.Stall = st
		if err != nil {
			return err
		}
	}
	if r.cfg.Replay.Storm > 0 {
		r.setPhase(phaseStorm)
		sr, err := r.storm(ctx, smp, idle)
		rr.Storm = sr
		if err != nil {
			return err
		}
	}
	if r.cfg.Replay.Readers > 0 {
		r.setPhase(phaseReplayRead)
		rd, err := r.readHistory(ctx, smp, idle)
		rr.Read = rd
		if err != nil {
			return err
		}
	}
	return nil
}

// finishReplay fills the history figures once every goroutine has ended.
func (r *run) finishReplay(rep *Report) {
	if rep.Replay == nil {
		rep.Replay = &ReplayReport{Cursor: r.cfg.Replay.Cursor}
	}
	rep.Replay.HistoryEvents = r.pubAccepted.Load()
	rep.Replay.HistoryBytes = r.pubBytes.Load()
}

func (r *run) replayProgress(since time.Duration) string {
	if r.phase.Load() == phaseStall {
		n := r.cfg.Replay.Stalled + r.cfg.Replay.Polls
		return fmt.Sprintf("stall: %d/%d open, %d failed, %s/%s; server RSS %.1f MB, peak %.1f MB",
			r.rp.opened.Load(), n, r.rp.failed.Load(), since, r.cfg.Replay.Window, mb(r.rp.lastRSS.Load()), mb(r.rp.peakRSS.Load()))
	}
	if r.phase.Load() == phaseStorm {
		st := &r.rp.storm
		return fmt.Sprintf("storm: %d/%d open, %d refused, %d failed, %d caught up, %d live, %s/%s; server RSS %.1f MB, peak %.1f MB",
			st.opened.Load(), r.cfg.Replay.Storm, st.refused.Load(), st.failed.Load(), st.caughtUp.Load(), st.live.Load(), since, r.cfg.Replay.Window, mb(r.rp.lastRSS.Load()), mb(r.rp.peakRSS.Load()))
	}
	return fmt.Sprintf("replay read: %d/%d readers done, %d events received, %s/%s",
		r.rp.readersDone.Load(), r.cfg.Replay.Readers, r.rp.received.Load(), since, r.cfg.Replay.Window)
}

// replayRequest is the request of a replay from the cursor.
func (r *run) replayRequest() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s?topic=%s HTTP/1.1\r\n", r.cfg.EventsPath, url.QueryEscape(r.cfg.Topic))
	r.commonHeaders(&b, "text/event-stream")
	fmt.Fprintf(&b, "Last-Event-ID: %s\r\n\r\n", r.cfg.Replay.Cursor)
	return b.Bytes()
}

// pollRequest is the request of a poll from the cursor. Connection: close
// lets the server close the connection once the answer is written, so
// that its open file count shows when it is done with the client.
func (r *run) pollRequest() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s?topic=%s&after=%s HTTP/1.1\r\n", r.cfg.Replay.PollPath, url.QueryEscape(r.cfg.Topic), url.QueryEscape(r.cfg.Replay.Cursor))
	r.commonHeaders(&b, "application/json")
	b.WriteString("Connection: close\r\n\r\n")
	return b.Bytes()
}

func (r *run) commonHeaders(b *bytes.Buffer, accept string) {
	fmt.Fprintf(b, "Host: %s\r\n", r.url.Host)
	b.WriteString("User-Agent: sseguard-bench\r\n")
	fmt.Fprintf(b, "Accept: %s\r\n", accept)
	if r.cfg.Token != "" && !r.cfg.Replay.Anonymous {
		fmt.Fprintf(b, "Authorization: Bearer %s\r\n", r.cfg.Token)
	}
}

// sendOnly dials connection i and sends req; it reads nothing.
func (r *run) sendOnly(ctx context.Context, i int, req []byte) (net.Conn, error) {
	conn, err := r.dialConn(ctx, i)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetWriteDeadline(time.Now().Add(r.cfg.ConnectTimeout)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	if _, err := conn.Write(req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send request: %w", err)
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	if err := conn.SetWriteDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clear deadline: %w", err)
	}
	return conn, nil
}

// dialConn dials the target for connection i, from the i-th source.
func (r *run) dialConn(ctx context.Context, i int) (net.Conn, error) {
	d := net.Dialer{Timeout: r.cfg.ConnectTimeout}
	if n := len(r.cfg.Sources); n > 0 {
		d.LocalAddr = &net.TCPAddr{IP: r.cfg.Sources[i%n].AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", r.cfg.target.String())
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return conn, nil
}

// stall holds the clients that never read, sampling the server meanwhile.
func (r *run) stall(ctx context.Context, smp *sampler, idle sample) (*StallReport, error) {
	cfg := r.cfg.Replay
	rep := &StallReport{Replays: cfg.Stalled, Polls: cfg.Polls}
	idleFDs := int64(-1)
	if *smp != nil {
		rep.RSSIdle, rep.AnonIdle, idleFDs = idle.rss, idle.anon, idle.fds
		r.rp.lastRSS.Store(idle.rss)
		r.rp.peakRSS.Store(idle.rss)
	}
	w := r.startWatch(ctx, *smp, idleFDs)
	start := time.Now()
	window := time.NewTimer(cfg.Window)
	defer window.Stop()

	replayReq, pollReq := r.replayRequest(), r.pollRequest()
	conns := make([]net.Conn, cfg.Stalled+cfg.Polls)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	sem := make(chan struct{}, r.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	for i := range conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		req := replayReq
		if i >= cfg.Stalled {
			req = pollReq
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := r.sendOnly(ctx, i, req)
			if err != nil {
				if ctx.Err() == nil {
					r.rp.failed.Add(1)
					r.errs.add("stalled client: " + err.Error())
				}
				return
			}
			conns[i] = c // each goroutine writes its own index
			r.rp.opened.Add(1)
		})
	}
	wg.Wait()
	w.arm()

	var err error
	select {
	case <-window.C:
	case <-w.closedAll:
		rep.ServerClosedAll = true
	case <-ctx.Done():
		err = cause(ctx)
	}
	rep.HeldSeconds = time.Since(start).Seconds()
	peak := w.finish()
	rep.Opened, rep.Failed = r.rp.opened.Load(), r.rp.failed.Load()
	rep.Samples = peak.n
	if peak.err != nil {
		r.errs.add(peak.err.Error())
		*smp = nil
	}
	if rep.RSSIdle > 0 && peak.n > 0 {
		rep.RSSPeak = peak.withHWM(r.sampleOr(ctx, smp), idle)
		rep.AnonPeak = max(peak.anon, rep.AnonIdle)
		rep.RSSPeakAboveIdle = rep.RSSPeak - rep.RSSIdle
	}
	if err != nil {
		return rep, err
	}

	rep.EndedByServer, rep.ReceivedBytes = readOut(ctx, conns)
	for i, c := range conns {
		if c != nil {
			c.Close()
			conns[i] = nil
		}
	}
	if !sleep(ctx, r.cfg.Settle) {
		return rep, cause(ctx)
	}
	if after := r.sampleOr(ctx, smp); *smp != nil {
		rep.RSSAfterClose = after.rss
	}
	return rep, nil
}

// readOut reads every connection until the server's end of stream or
// reset, and returns how many ended so and the bytes read. A connection
// that sends nothing for readOutGap, or is still sending after
// readOutWait, was not ended by the server.
func readOut(ctx context.Context, conns []net.Conn) (ended, received int64) {
	deadline := time.Now().Add(readOutWait)
	var wg sync.WaitGroup
	var endedN, bytesN atomic.Int64
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Go(func() {
			stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
			buf := make([]byte, 64<<10)
			for {
				next := time.Now().Add(readOutGap)
				if next.After(deadline) {
					next = deadline
				}
				if err := c.SetReadDeadline(next); err != nil {
					return
				}
				n, err := c.Read(buf)
				bytesN.Add(int64(n))
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					endedN.Add(1)
					return
				}
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return endedN.Load(), bytesN.Load()
}

// readHistory has the readers replay the whole history.
func (r *run) readHistory(ctx context.Context, smp sampler, idle sample) (*ReadReport, error) {
	cfg := r.cfg.Replay
	rep := &ReadReport{Readers: cfg.Readers}
	want := r.pubAccepted.Load()
	req := r.replayRequest()
	var before sample
	if smp != nil {
		var err error
		if before, err = smp.sample(ctx); err != nil {
			r.errs.add(err.Error())
			smp = nil
		}
	}
	w := r.startWatch(ctx, smp, -1)
	rctx, cancel := context.WithTimeout(ctx, cfg.Window)
	defer cancel()
	times := new(histogram)
	var completed, failed, events, bytesN atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := range cfg.Readers {
		wg.Go(func() {
			defer r.rp.readersDone.Add(1)
			t0 := time.Now()
			got, n, err := r.readOne(rctx, i, req, want)
			events.Add(got)
			bytesN.Add(n)
			if err != nil {
				failed.Add(1)
				if ctx.Err() == nil {
					r.errs.add("replay reader: " + err.Error())
				}
				return
			}
			completed.Add(1)
			times.record(time.Since(t0))
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	peak := w.finish()
	rep.Completed, rep.Failed = completed.Load(), failed.Load()
	rep.Seconds = elapsed.Seconds()
	rep.Events, rep.Bytes = events.Load(), bytesN.Load()
	if rep.Seconds > 0 {
		rep.EventsPerSecond = float64(rep.Events) / rep.Seconds
		rep.MBPerSecond = mb(rep.Bytes) / rep.Seconds
	}
	rep.Replay = times.summary()
	if peak.err != nil {
		r.errs.add(peak.err.Error())
		smp = nil
	}
	if smp != nil {
		after, err := smp.sample(ctx)
		if err == nil {
			rep.CPUSeconds = (after.cpu - before.cpu).Seconds()
		}
		if err == nil && idle.rss > 0 && peak.n > 0 {
			rep.RSSPeak = peak.withHWM(after, before)
			rep.RSSPeakAboveIdle = max(0, rep.RSSPeak-idle.rss)
			rep.AnonPeak = peak.anon
		}
	}
	return rep, cause(ctx)
}

// readBufSize is a replay reader's buffer: a 64 KiB event's line fits.
const readBufSize = 128 << 10

// readOne replays the history on connection i and reads it until every
// one of want events came, returning the events and bytes it read.
func (r *run) readOne(ctx context.Context, i int, req []byte, want int64) (int64, int64, error) {
	conn, err := r.dialConn(ctx, i)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return 0, 0, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, connBufSize), nil)
	if err != nil {
		return 0, 0, fmt.Errorf("read response head: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return 0, 0, fmt.Errorf("replay answered %s: %q", resp.Status, bytes.TrimSpace(msg))
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return 0, 0, fmt.Errorf("replay content type %q, want text/event-stream", resp.Header.Get("Content-Type"))
	}
	body := &countingReader{r: resp.Body}
	s := &stream{lr: bufio.NewReaderSize(body, readBufSize)}
	seen := make([]uint64, (r.cfg.events+63)/64)
	var got int64
	for got < want {
		line, err := s.readLine()
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%d of %d events within the window", got, want)
			}
			return got, body.n, err
		}
		value, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		seq, _, ours := parsePayload(bytes.TrimPrefix(value, []byte(" ")))
		if !ours || seq < 0 || seq >= int64(r.cfg.events) {
			continue
		}
		word, bit := seq/64, uint64(1)<<(uint64(seq)%64)
		if seen[word]&bit == 0 {
			seen[word] |= bit
			got++
			r.rp.received.Add(1)
		}
	}
	return got, body.n, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// peakSamples is the most of each memory figure over a window of samples.
type peakSamples struct {
	rss, anon int64
	n         int
	err       error // the sampling error that stopped the window's samples
}

// withHWM returns the peak RSS of a window that began at start and ended
// at end: the highest sample, or the process's high-water mark when it
// rose during the window (then it is the exact peak, between samples
// too).
func (p peakSamples) withHWM(end, start sample) int64 {
	peak := max(p.rss, start.rss)
	if start.hwm > 0 && end.hwm > start.hwm {
		peak = max(peak, end.hwm)
	}
	return peak
}

// watch samples the server every sampleEvery until finish is called.
type watch struct {
	r         *run
	armed     atomic.Bool
	closedAll chan struct{} // closed once armed and the open files are back to idle
	stop      chan struct{}
	done      chan struct{}
	peak      peakSamples // owned by the goroutine until done
}

// startWatch samples smp (nil: none) until finish. With idleFDs of zero
// or more, closedAll is closed once arm was called and the server's open
// file count is at most idleFDs.
func (r *run) startWatch(ctx context.Context, smp sampler, idleFDs int64) *watch {
	w := &watch{r: r, closedAll: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if smp == nil {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		signaled := false
		for {
			s, err := smp.sample(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.peak.err = err
				}
				return
			}
			w.peak.n++
			w.peak.rss, w.peak.anon = max(w.peak.rss, s.rss), max(w.peak.anon, s.anon)
			r.rp.lastRSS.Store(s.rss)
			r.rp.peakRSS.Store(max(r.rp.peakRSS.Load(), s.rss))
			if !signaled && idleFDs >= 0 && s.fds >= 0 && s.fds <= idleFDs && w.armed.Load() {
				signaled = true
				close(w.closedAll)
			}
			select {
			case <-t.C:
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return w
}

// arm lets closedAll fire: every client is connected.
func (w *watch) arm() { w.armed.Store(true) }

// finish stops the sampling and returns its peaks.
func (w *watch) finish() peakSamples {
	select {
	case <-w.done:
	default:
		close(w.stop)
		<-w.done
	}
	return w.peak
}

// padFor returns the padding that makes event seq's data total bytes.
func padFor(seq, sent int64, total int) int {
	const padField = len(`,"pad":""`)
	return max(0, total-len(appendPayload(nil, seq, sent, 0))-padField)
}
