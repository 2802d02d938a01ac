package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/bench"
	"github.com/sseguard/sseguard/bench/naive"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/server/servertest"
)

// waitGoroutines fails the test unless the goroutine count falls back to
// at most want within a few seconds.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines left, want at most %d:\n%s", n, want, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunAgainstNaive(t *testing.T) {
	srv := httptest.NewServer(naive.New())
	defer srv.Close()
	var progress bytes.Buffer
	rep, err := bench.Run(context.Background(), bench.Config{
		URL:     srv.URL,
		Streams: 50,
		Events:  20,
		Rate:    200,
		Settle:  100 * time.Millisecond,
		PID:     os.Getpid(),
	}, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p := rep.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
	checks := []struct {
		name      string
		got, want int64
	}{
		{"opened", rep.Streams.Opened, 50},
		{"failed", rep.Streams.Failed, 0},
		{"accepted", rep.Publish.Accepted, 20},
		{"expected", rep.Delivery.Expected, 50 * 20},
		{"delivered", rep.Delivery.Delivered, 50 * 20},
		{"lost", rep.Delivery.Lost, 0},
		{"duplicates", rep.Delivery.Duplicates, 0},
		{"out of order", rep.Delivery.OutOfOrder, 0},
		{"disconnects", rep.Streams.Disconnects, 0},
		{"latency samples", rep.Delivery.Latency.Count, 50 * 20},
		{"connect samples", rep.Streams.Connect.Count, 50},
		{"publish samples", rep.Publish.Latency.Count, 20},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	for name, l := range map[string]bench.Latency{
		"delivery": rep.Delivery.Latency, "connect": rep.Streams.Connect, "publish": rep.Publish.Latency,
	} {
		if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
			t.Errorf("%s percentiles not ordered: %+v", name, l)
		}
	}
	if rep.Server == nil {
		t.Fatal("no server report with PID set")
	}
	if want := "pid " + strconv.Itoa(os.Getpid()); rep.Server.Source != want || rep.Server.RSSAfter <= 0 || rep.Server.Streams != 50 {
		t.Errorf("server report %+v, want source %q, RSS and 50 streams", rep.Server, want)
	}
	if got, want := rep.Server.Extrapolated1MGB, rep.Server.MemoryPerStreamKB*1.024; math.Abs(got-want) > 1e-9*math.Abs(want) {
		t.Errorf("1M extrapolation %v GB for %v KB per stream", rep.Server.Extrapolated1MGB, rep.Server.MemoryPerStreamKB)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"50/50 open", "20/20 accepted", "1000/1000 delivered, 0 lost", "KB per stream", "result      clean"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"delivery":`, `"p99":`, `"memory_per_stream_kb":`, `"unexpected_disconnects":0`} {
		if !bytes.Contains(js, []byte(key)) {
			t.Errorf("JSON report lacks %s: %s", key, js)
		}
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name string
		cfg  bench.Config
	}{
		{name: "private IPv4 target", cfg: bench.Config{URL: "http://10.0.0.1:8080"}},
		{name: "public IPv4 target", cfg: bench.Config{URL: "http://192.0.2.1/"}},
		{name: "IPv6 target", cfg: bench.Config{URL: "http://[2001:db8::1]:80"}},
		{name: "unspecified target", cfg: bench.Config{URL: "http://0.0.0.0:8080"}},
		{name: "mapped IPv4 target", cfg: bench.Config{URL: "http://[::ffff:10.0.0.1]:8080"}},
		{name: "non-loopback source", cfg: bench.Config{URL: "http://127.0.0.1:1", Sources: []netip.Addr{netip.MustParseAddr("10.1.1.1")}}},
		{name: "non-loopback metrics", cfg: bench.Config{URL: "http://127.0.0.1:1", MetricsURL: "http://198.51.100.7:9090/metrics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := bench.Run(context.Background(), tt.cfg, nil)
			if !errors.Is(err, bench.ErrNotLoopback) || !errors.Is(err, bench.ErrConfig) {
				t.Fatalf("err = %v, want ErrNotLoopback and ErrConfig", err)
			}
			if rep != nil {
				t.Errorf("got a report for a refused target")
			}
			if !strings.Contains(err.Error(), "loopback") {
				t.Errorf("error %q does not say why", err)
			}
		})
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name, field string
		cfg         bench.Config
	}{
		{name: "no URL", field: "URL", cfg: bench.Config{}},
		{name: "https without a CA", field: "CAFile", cfg: bench.Config{URL: "https://127.0.0.1"}},
		{name: "ftp", field: "URL", cfg: bench.Config{URL: "ftp://127.0.0.1"}},
		{name: "h2 over plain HTTP", field: "H2Conns", cfg: bench.Config{URL: "http://127.0.0.1:1", H2Conns: 2}},
		{name: "h2 over too few connections", field: "H2Conns", cfg: bench.Config{URL: "https://127.0.0.1:1", Insecure: true, Streams: 1000, H2Conns: 2}},
		{name: "CA file missing", field: "CAFile", cfg: bench.Config{URL: "https://127.0.0.1:1", CAFile: "/nonexistent/ca.pem"}},
		{name: "nothing to do", field: "Streams", cfg: bench.Config{URL: "http://127.0.0.1:1", Streams: -1, Events: -1}},
		{name: "too many streams", field: "Streams", cfg: bench.Config{URL: "http://127.0.0.1:1", Streams: bench.MaxStreams + 1}},
		{name: "over the file limit", field: "Streams", cfg: bench.Config{URL: "http://127.0.0.1:1", Streams: 900_000, Events: -1}},
		{name: "negative rate", field: "Rate", cfg: bench.Config{URL: "http://127.0.0.1:1", Rate: -1}},
		{name: "relative path", field: "EventsPath", cfg: bench.Config{URL: "http://127.0.0.1:1", EventsPath: "events"}},
		{name: "replay with live streams", field: "Streams", cfg: bench.Config{URL: "http://127.0.0.1:1", Streams: 5, Replay: bench.Replay{Stalled: 1}}},
		{name: "replay without history", field: "Events", cfg: bench.Config{URL: "http://127.0.0.1:1", Events: -1, Replay: bench.Replay{Readers: 1}}},
		{name: "replay cursor with a space", field: "Replay.Cursor", cfg: bench.Config{URL: "http://127.0.0.1:1", Replay: bench.Replay{Stalled: 1, Cursor: "1 2"}}},
		{name: "too many stalled", field: "Replay.Stalled", cfg: bench.Config{URL: "http://127.0.0.1:1", Replay: bench.Replay{Stalled: bench.MaxStalled, Polls: 1}}},
		{name: "data bytes too small", field: "DataBytes", cfg: bench.Config{URL: "http://127.0.0.1:1", DataBytes: 10}},
		{name: "mixed source families", field: "Sources", cfg: bench.Config{URL: "http://127.0.0.1:1", Sources: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bench.Run(context.Background(), tt.cfg, nil)
			if !errors.Is(err, bench.ErrConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want ErrConfig naming %s", err, tt.field)
			}
		})
	}
}

func TestRunLeavesNoGoroutines(t *testing.T) {
	srv := httptest.NewServer(naive.New())
	before := runtime.NumGoroutine()
	rep, err := bench.Run(context.Background(), bench.Config{
		URL:        srv.URL,
		Streams:    40,
		Events:     10,
		Rate:       0,
		Publishers: 4,
		Settle:     -1,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Delivery.Lost != 0 {
		t.Errorf("lost %d", rep.Delivery.Lost)
	}
	// The server's handler goroutines end once it sees the closed streams.
	waitGoroutines(t, before)
	srv.Close()
}

func TestRunStopsEarly(t *testing.T) {
	tests := []struct {
		name    string
		cancel  time.Duration // cancel the parent context after this
		cap     time.Duration // Config.Duration
		wantErr error
	}{
		{name: "canceled", cancel: 500 * time.Millisecond, wantErr: context.Canceled},
		{name: "duration cap", cap: 500 * time.Millisecond, wantErr: bench.ErrDurationCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(naive.New())
			defer srv.Close()
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			start := time.Now()
			rep, err := bench.Run(ctx, bench.Config{
				URL: srv.URL, Streams: 10, Settle: -1, Hold: time.Minute, Duration: tt.cap,
			}, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Run took %s to stop", d)
			}
			if rep == nil || rep.Stopped == "" || rep.Streams.Opened != 10 {
				t.Fatalf("partial report %+v, want 10 open streams and a stop reason", rep)
			}
			if rep.Streams.Disconnects != 0 {
				t.Errorf("closing the run counted %d disconnects", rep.Streams.Disconnects)
			}
			waitGoroutines(t, before)
		})
	}
}

// fakeHub is a minimal hub whose fan-out misbehaves on purpose.
type fakeHub struct {
	mode string // "drop", "duplicate", "reorder", "disconnect" or "clean"

	mu   sync.Mutex
	subs []chan string
	seq  atomic.Int64
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/events":
		ch := make(chan string, 256)
		h.mu.Lock()
		h.subs = append(h.subs, ch)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "retry: 1000\n\n: hello\n\n")
		w.(http.Flusher).Flush()
		if h.mode == "disconnect" {
			return
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case msg := <-ch:
				fmt.Fprint(w, msg)
				w.(http.Flusher).Flush()
			}
		}
	case "/api/publish":
		var req struct{ Topic, Data string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := h.seq.Add(1)
		id := n
		if h.mode == "reorder" {
			id = 1000 - n
		}
		msg := fmt.Sprintf("id: %d\r\ndata: %s\r\n\r\n", id, req.Data)
		if h.mode == "duplicate" {
			msg += msg
		}
		if h.mode == "drop" && n%2 == 0 {
			msg = ""
		}
		if h.mode == "fail" && n == 3 {
			http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
			return
		}
		h.mu.Lock()
		for _, ch := range h.subs {
			if msg != "" {
				ch <- msg
			}
		}
		h.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"%d"}`, id)
	default:
		http.NotFound(w, r)
	}
}

func TestRunCountsFaults(t *testing.T) {
	const streams, events = 5, 10
	tests := []struct {
		mode                                    string
		lost, dups, ooo, disconnects, pubFailed int64
	}{
		{mode: "clean"},
		{mode: "drop", lost: streams * events / 2},
		{mode: "duplicate", dups: streams * events},
		{mode: "reorder", ooo: streams * (events - 1)},
		{mode: "disconnect", lost: streams * events, disconnects: streams},
		{mode: "fail", pubFailed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			srv := httptest.NewServer(&fakeHub{mode: tt.mode})
			defer srv.Close()
			rep, err := bench.Run(context.Background(), bench.Config{
				URL: srv.URL, Streams: streams, Events: events, Rate: 500,
				Settle: 50 * time.Millisecond, Drain: 300 * time.Millisecond,
			}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := []int64{rep.Delivery.Lost, rep.Delivery.Duplicates, rep.Delivery.OutOfOrder, rep.Streams.Disconnects, rep.Publish.Failed}
			want := []int64{tt.lost, tt.dups, tt.ooo, tt.disconnects, tt.pubFailed}
			names := []string{"lost", "duplicates", "out of order", "disconnects", "publish failures"}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s = %d, want %d", names[i], got[i], want[i])
				}
			}
			if clean := len(rep.Problems()) == 0; clean != (tt.mode == "clean") {
				t.Errorf("problems %v for mode %s", rep.Problems(), tt.mode)
			}
			if tt.mode == "fail" && (len(rep.Errors) == 0 || !strings.Contains(rep.Errors[0].Error, "503")) {
				t.Errorf("errors %+v, want the 503", rep.Errors)
			}
			if rep.Streams.Heartbeats < streams {
				t.Errorf("heartbeats %d, want a comment per stream", rep.Streams.Heartbeats)
			}
		})
	}
}

func TestRunFromSeveralSources(t *testing.T) {
	srv := httptest.NewServer(naive.New())
	defer srv.Close()
	srcs, err := bench.ParseSources("127.0.0.1-3")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bench.Run(context.Background(), bench.Config{
		URL: srv.URL, Streams: 9, Events: 3, Rate: 100, Sources: srcs, Settle: -1,
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Streams.Opened != 9 || rep.Delivery.Lost != 0 || len(rep.Sources) != 3 {
		t.Errorf("opened %d, lost %d, sources %v", rep.Streams.Opened, rep.Delivery.Lost, rep.Sources)
	}
}

func TestRunPublishOnly(t *testing.T) {
	srv := httptest.NewServer(naive.New())
	defer srv.Close()
	rep, err := bench.Run(context.Background(), bench.Config{URL: srv.URL, Streams: -1, Events: 200, Publishers: 8}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Publish.Accepted != 200 || rep.Publish.Throughput <= 0 || rep.Streams.Opened != 0 {
		t.Errorf("publish %+v, streams %+v", rep.Publish, rep.Streams)
	}
}

func TestRunReadsMetrics(t *testing.T) {
	var rss atomic.Int64
	rss.Store(10 << 20)
	mux := http.NewServeMux()
	mux.Handle("/", naive.New())
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// Each scrape reports 1 MiB more: 20 streams then cost 51.2 KB each.
		v := rss.Add(1 << 20)
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\nprocess_cpu_seconds_total 1.5\n", v)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rep, err := bench.Run(context.Background(), bench.Config{
		URL: srv.URL, Streams: 20, Events: -1, Settle: -1, MetricsURL: srv.URL + "/metrics",
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sv := rep.Server
	if sv == nil || sv.Source != srv.URL+"/metrics" {
		t.Fatalf("server report %+v, want one from the metrics URL", sv)
	}
	// Scrapes: the check at start, before connecting, after connecting, after settling.
	if want := 1024.0 / 20; sv.MemoryPerStreamKB != 2*want {
		t.Errorf("memory per stream %v KB, want %v", sv.MemoryPerStreamKB, 2*want)
	}
}

func TestRunReplay(t *testing.T) {
	const events, size, stalled, polls, readers = 50, 16 << 10, 3, 3, 2
	cfg := config.Default()
	cfg.Stream.WriteTimeout = config.Duration(300 * time.Millisecond)
	// Small poll answers: the server writes them whole into the socket
	// buffers and closes, whether or not the client reads.
	cfg.Poll.MaxEvents = 2
	ts := servertest.Start(t, cfg)
	base, tok := ts.URL, ts.Token(t, "bench", auth.Permissions{Publish: []string{"*"}})
	var progress bytes.Buffer
	rep, err := bench.Run(context.Background(), bench.Config{
		URL:       base,
		Topic:     "demo", // anonymous subscribers allowed by default
		Token:     tok,
		Events:    events,
		DataBytes: size,
		Settle:    100 * time.Millisecond,
		PID:       os.Getpid(),
		Replay: bench.Replay{
			Stalled:   stalled,
			Polls:     polls,
			Readers:   readers,
			Window:    time.Second,
			Anonymous: true,
		},
	}, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p := rep.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
	if rep.Streams.Opened != 0 || rep.Publish.Accepted != events {
		t.Errorf("streams %+v, publish %+v: want no live stream and %d publishes", rep.Streams, rep.Publish, events)
	}
	rp := rep.Replay
	if rp == nil || rp.Stall == nil || rp.Read == nil {
		t.Fatalf("replay report %+v, want stall and read phases", rp)
	}
	if rp.Cursor != "0" || rp.HistoryEvents != events || rp.HistoryBytes != events*size {
		t.Errorf("history %+v, want cursor 0, %d events of %d bytes", rp, events, size)
	}
	st := rp.Stall
	checks := []struct {
		name      string
		got, want int64
	}{
		{"stall replays", int64(st.Replays), stalled},
		{"stall polls", int64(st.Polls), polls},
		{"stall opened", st.Opened, stalled + polls},
		{"stall failed", st.Failed, 0},
		{"read completed", rp.Read.Completed, readers},
		{"read failed", rp.Read.Failed, 0},
		{"read events", rp.Read.Events, readers * events},
		{"replay samples", rp.Read.Replay.Count, readers},
		{"RSS peak above idle", st.RSSPeakAboveIdle, st.RSSPeak - st.RSSIdle},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// The polls' answers are whole in the socket buffers and the server
	// closed them; the replays may still be open.
	if st.EndedByServer < polls || st.EndedByServer > stalled+polls || st.ReceivedBytes <= 0 {
		t.Errorf("ended by server %d, read out %d bytes: want %d to %d and some bytes", st.EndedByServer, st.ReceivedBytes, polls, stalled+polls)
	}
	if st.Samples <= 0 || st.RSSIdle <= 0 || st.RSSPeak < st.RSSIdle || st.RSSAfterClose <= 0 || st.AnonIdle <= 0 || st.AnonPeak < st.AnonIdle || st.HeldSeconds <= 0 {
		t.Errorf("stall memory %+v: want samples, idle > 0, peak ≥ idle, an after-close sample", st)
	}
	rd := rp.Read
	if rd.Bytes < events*size*readers || rd.EventsPerSecond <= 0 || rd.MBPerSecond <= 0 || rd.Seconds <= 0 || rd.RSSPeak <= 0 || rd.AnonPeak <= 0 || rd.CPUSeconds < 0 {
		t.Errorf("read %+v: want every event's bytes, positive rates, a memory peak", rd)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"history of 50 events", "3 replays and 3 polls that never read: 6 open", "RSS idle", "2/2 readers read it all", "MB/s"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"replay":`, `"rss_peak_above_idle_bytes":`, `"ended_by_server":`, `"mb_per_second":`} {
		if !bytes.Contains(js, []byte(key)) {
			t.Errorf("JSON report lacks %s: %s", key, js)
		}
	}
	if !strings.Contains(progress.String(), "stall:") {
		t.Errorf("no stall progress line in:\n%s", progress.String())
	}
}
