package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// MaxStorm is the most clients one reconnect storm opens.
const MaxStorm = 20_000

// A reconnect storm (Replay.Storm) is what a hub meets after a restart or
// a node loss: every client reconnects at once with its Last-Event-ID and
// asks for what it missed. The run publishes Config.Events as that
// history, waits Config.Settle, samples the server, then:
//
//  1. opens Storm streams as fast as Config.ConnectConcurrency allows,
//     each sending "Last-Event-ID: Replay.Cursor", and reads each until it
//     has every event of the history, counting an event seen twice as a
//     duplicate and a stream that ends early or is refused as a failure;
//  2. once every stream has caught up, publishes one more event and waits
//     until every stream has it: the streams are live;
//  3. waits Config.Settle with every stream live, samples the server (the
//     steady state) and closes them.
//
// The server is sampled every 50 ms throughout, for its peak memory.
type stormState struct {
	opened, caughtUp, live, failed atomic.Int64
	refused                        atomic.Int64 // answers other than 200
	duplicates, received           atomic.Int64
}

// StormReport is the outcome of a reconnect storm.
type StormReport struct {
	// Clients asked for; Opened got a 200 stream; Refused got another
	// answer; Failed includes them and the streams that ended, or did not
	// catch up or go live, within the window.
	Clients int   `json:"clients"`
	Opened  int64 `json:"opened"`
	Refused int64 `json:"refused"`
	Failed  int64 `json:"failed"`
	// CaughtUp and Live count the streams that read the whole history and
	// then the live event; Duplicates the events a stream read twice.
	CaughtUp   int64 `json:"caught_up"`
	Live       int64 `json:"live"`
	Duplicates int64 `json:"duplicates"`
	// ConnectSeconds is from the first dial to the last stream's response
	// head; CaughtUpSeconds to the last stream having the history;
	// LiveSeconds to the last stream having the live event.
	ConnectSeconds  float64 `json:"connect_seconds"`
	CaughtUpSeconds float64 `json:"caught_up_seconds"`
	LiveSeconds     float64 `json:"live_seconds"`
	// CatchUp is each stream's time from its dial to its last history
	// event.
	CatchUp Latency `json:"catch_up"`
	// RSSIdle is the server before the storm, RSSSteady with every stream
	// live, RSSPeak the most during the storm (VmHWM included), in bytes;
	// zero when the server was not sampled. CPUSeconds is its CPU time
	// from the first dial to the steady sample.
	RSSIdle          int64   `json:"rss_idle"`
	RSSSteady        int64   `json:"rss_steady"`
	RSSPeak          int64   `json:"rss_peak"`
	RSSPeakAboveIdle int64   `json:"rss_peak_above_idle"`
	CPUSeconds       float64 `json:"cpu_seconds"`
}

// storm runs the reconnect storm; idle is the server's sample before it.
func (r *run) storm(ctx context.Context, smp sampler, idle sample) (*StormReport, error) {
	cfg := r.cfg.Replay
	st := &r.rp.storm
	rep := &StormReport{Clients: cfg.Storm, RSSIdle: idle.rss}
	want := r.pubAccepted.Load()
	liveSeq := int64(r.cfg.events) // one past the history: no history event has it
	req := r.replayRequest()
	w := r.startWatch(ctx, smp, -1)
	sctx, cancel := context.WithTimeout(ctx, cfg.Window)
	defer cancel()

	caught := make(chan struct{}) // closed when every open stream caught up or failed
	var pending atomic.Int64      // clients neither caught up nor failed
	pending.Store(int64(cfg.Storm))
	settle := func() {
		if pending.Add(-1) == 0 {
			close(caught)
		}
	}
	release := make(chan struct{}) // closed once the steady state is sampled
	times := new(histogram)
	var lastHead atomic.Int64 // unix nanoseconds of the last response head
	var clients sync.WaitGroup
	var live sync.WaitGroup // clients neither live nor failed
	live.Add(cfg.Storm)
	slots := make(chan struct{}, r.cfg.ConnectConcurrency)
	start := time.Now()
dispatch:
	for i := range cfg.Storm {
		select {
		case slots <- struct{}{}:
		case <-sctx.Done():
			for range cfg.Storm - i { // never started
				st.failed.Add(1)
				settle()
				live.Done()
			}
			break dispatch
		}
		clients.Go(func() {
			c := stormClient{r: r, want: want, liveSeq: liveSeq, settle: settle, slot: slots, live: sync.OnceFunc(live.Done)}
			defer c.live()
			err := c.run(sctx, i, req, release, &lastHead, times)
			if err != nil {
				st.failed.Add(1)
				if ctx.Err() == nil {
					r.errs.add("storm: " + err.Error())
				}
			}
		})
	}
	select {
	case <-caught:
	case <-sctx.Done():
	}
	rep.CaughtUpSeconds = time.Since(start).Seconds()
	if sctx.Err() == nil && st.caughtUp.Load() > 0 {
		r.publishLive(sctx, liveSeq)
	}
	live.Wait()
	rep.LiveSeconds = time.Since(start).Seconds()
	if t := lastHead.Load(); t > 0 {
		rep.ConnectSeconds = time.Unix(0, t).Sub(start).Seconds()
	}
	// The steady state: every stream live, the storm's garbage given a
	// Settle to be collected.
	if smp != nil && sleep(ctx, r.cfg.Settle) {
		if steady, err := smp.sample(ctx); err == nil {
			rep.RSSSteady = steady.rss
			rep.CPUSeconds = (steady.cpu - idle.cpu).Seconds()
		} else {
			r.errs.add(err.Error())
		}
	}
	close(release)
	clients.Wait()
	peak := w.finish()
	if peak.err != nil {
		r.errs.add(peak.err.Error())
	} else if smp != nil && idle.rss > 0 && peak.n > 0 {
		after := sample{rss: rep.RSSSteady}
		rep.RSSPeak = max(peak.withHWM(after, idle), rep.RSSSteady)
		rep.RSSPeakAboveIdle = max(0, rep.RSSPeak-idle.rss)
	}
	rep.Opened, rep.Refused, rep.Failed = st.opened.Load(), st.refused.Load(), st.failed.Load()
	rep.CaughtUp, rep.Live, rep.Duplicates = st.caughtUp.Load(), st.live.Load(), st.duplicates.Load()
	rep.CatchUp = times.summary()
	return rep, cause(ctx)
}

// stormClient is one stream of a storm.
type stormClient struct {
	r       *run
	want    int64 // history events
	liveSeq int64
	settle  func() // called once: caught up or failed
	slot    chan struct{}
	live    func() // called once: live or failed
	settled bool
}

func (c *stormClient) done() {
	if !c.settled {
		c.settled = true
		c.settle()
	}
}

// run connects, reads the history and the live event, and holds the
// stream until release.
func (c *stormClient) run(ctx context.Context, i int, req []byte, release <-chan struct{}, lastHead *atomic.Int64, times *histogram) error {
	defer c.done()
	freeSlot := sync.OnceFunc(func() { <-c.slot })
	defer freeSlot()
	st := &c.r.rp.storm
	t0 := time.Now()
	conn, err := c.r.dialConn(ctx, i)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	br := bufio.NewReaderSize(conn, connBufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read response head: %w", err)
	}
	freeSlot() // the connect is done: let the next client dial
	for {
		old := lastHead.Load()
		if now := time.Now().UnixNano(); now <= old || lastHead.CompareAndSwap(old, now) {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		st.refused.Add(1)
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("answered %s: %q", resp.Status, bytes.TrimSpace(msg))
	}
	st.opened.Add(1)
	s := &stream{lr: bufio.NewReaderSize(resp.Body, readBufSize)}
	seen := make([]uint64, (c.want+63)/64+1)
	var got int64
	for {
		line, err := s.readLine()
		if err != nil {
			switch {
			case ctx.Err() != nil && got < c.want:
				err = fmt.Errorf("%d of %d history events within the window", got, c.want)
			case ctx.Err() != nil:
				err = fmt.Errorf("no live event within the window")
			case got < c.want:
				err = fmt.Errorf("stream ended after %d of %d history events: %w", got, c.want, err)
			default:
				err = fmt.Errorf("stream ended before the live event: %w", err)
			}
			return err
		}
		value, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		seq, _, ours := parsePayload(bytes.TrimPrefix(value, []byte(" ")))
		if !ours {
			continue
		}
		if seq == c.liveSeq {
			if got < c.want {
				return fmt.Errorf("live event after %d of %d history events", got, c.want)
			}
			st.live.Add(1)
			c.live()
			break
		}
		if seq < 0 || seq >= c.want {
			continue
		}
		word, bit := seq/64, uint64(1)<<(uint64(seq)%64)
		if seen[word]&bit != 0 {
			st.duplicates.Add(1)
			continue
		}
		seen[word] |= bit
		got++
		st.received.Add(1)
		if got == c.want {
			times.record(time.Since(t0))
			st.caughtUp.Add(1)
			c.done()
		}
	}
	select { // hold the live stream for the steady sample
	case <-release:
	case <-ctx.Done():
	}
	return nil
}

// publishLive publishes the event with sequence seq, the storm's live
// event, retrying a failed attempt while ctx lasts.
func (r *run) publishLive(ctx context.Context, seq int64) {
	dialer := &net.Dialer{Timeout: r.cfg.ConnectTimeout}
	pc := &pubConn{
		dial: func(ctx context.Context) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", r.cfg.target.String())
		},
		head:    newPubHead(r.url.Host, r.cfg.PublishPath, r.cfg.Token),
		timeout: r.cfg.PublishTimeout,
	}
	defer pc.close()
	data, _ := json.Marshal(string(appendPayload(nil, seq, time.Now().UnixNano(), 0)))
	body := fmt.Appendf(nil, `{"topic":%s,"data":%s}`, r.topicJSON, data)
	for ctx.Err() == nil {
		status, excerpt, err := pc.do(ctx, body)
		if err == nil && status/100 == 2 {
			return
		}
		if err != nil {
			r.errs.add("storm live publish: " + err.Error())
		} else {
			r.errs.add(fmt.Sprintf("storm live publish answered %d: %s", status, bytes.TrimSpace(excerpt)))
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
}

func (rp *StormReport) writeText(ew *errWriter) {
	ew.printf("  storm     %d clients: %d opened, %d refused, %d failed; %d caught up, %d live, %d duplicates\n",
		rp.Clients, rp.Opened, rp.Refused, rp.Failed, rp.CaughtUp, rp.Live, rp.Duplicates)
	ew.printf("  times     all connected %.2f s, all caught up %.2f s, all live %.2f s\n", rp.ConnectSeconds, rp.CaughtUpSeconds, rp.LiveSeconds)
	ew.printf("  catch-up  %s\n", rp.CatchUp)
	if rp.RSSSteady > 0 {
		ew.printf("  server    RSS idle %.1f MB, peak %.1f MB, steady (all live) %.1f MB: peak is steady + %.1f MB; %.2f s CPU\n",
			mb(rp.RSSIdle), mb(rp.RSSPeak), mb(rp.RSSSteady), mb(rp.RSSPeak-rp.RSSSteady), rp.CPUSeconds)
	}
}
