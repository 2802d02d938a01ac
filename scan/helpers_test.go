package scan_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/sse"
)

// testHub is an sseguard hub started in-process on loopback.
type testHub struct {
	base  string // http://127.0.0.1:PORT
	token string // may subscribe and publish to every topic
}

// startHub starts the project's own hub with the given heartbeat, on a
// memory store, and stops it when the test ends.
func startHub(t testing.TB, heartbeat time.Duration) *testHub {
	t.Helper()
	cfg := config.Default()
	cfg.Stream.Heartbeat = config.Duration(heartbeat)
	ts := servertest.Start(t, cfg)
	return &testHub{base: ts.URL, token: ts.Token(t, "scanner", auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}})}
}

// fault describes a hand-made SSE server, correct by default (the strict
// profile's headers, a 406 problem for other Accepts), with faults turned on
// by its fields.
type fault struct {
	profile       *policy.Profile
	mod           func(h http.Header) // changes the stream headers after the profile's
	heartbeat     time.Duration       // a comment after this much quiet; 0: none
	eventEvery    time.Duration       // 0: no events
	tsLag         time.Duration       // events carry "ts" this far in the past
	flushEvery    time.Duration       // >0: flush only this often (buffering)
	closeAfter    time.Duration       // >0: end the stream after this
	gzip          bool                // compress the stream
	ignoreAccept  bool                // stream whatever Accept says
	textErrors    bool                // refuse with text/plain
	cors          string              // "reflect", "star-credentials", "null"
	resume500     bool                // answer 500 to Last-Event-ID
	replayDup     bool                // after Last-Event-ID, send that event again
	contentLength bool                // send Content-Length on the stream
	refuseEvery   int                 // >0: answer 503 to every n-th stream request
	count         int
	mu            sync.Mutex
}

func (f *fault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := f.profile
	if p == nil {
		p = policy.Strict
	}
	r = r.WithContext(policy.WithProfile(r.Context(), p))
	h := w.Header()
	origin := r.Header.Get("Origin")
	switch f.cors {
	case "reflect":
		if origin != "" {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	case "star-credentials":
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "true")
	case "null":
		if origin == "null" {
			h.Set("Access-Control-Allow-Origin", "null")
			h.Set("Vary", "Origin")
		}
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	refuse := func(status int, prob *policy.Problem) {
		if f.textErrors {
			http.Error(w, http.StatusText(status), status)
			return
		}
		policy.WriteProblem(w, r, prob)
	}
	if f.refuseEvery > 0 {
		f.mu.Lock()
		f.count++
		n := f.count
		f.mu.Unlock()
		if n%f.refuseEvery == 0 {
			refuse(503, policy.NewProblem(503, policy.CodeUnavailable, "test refusal"))
			return
		}
	}
	if !f.ignoreAccept {
		if prob := p.CheckStreamAccept(r); prob != nil {
			refuse(406, prob)
			return
		}
	}
	leid := r.Header.Get("Last-Event-ID")
	if leid != "" && f.resume500 {
		refuse(500, policy.NewProblem(500, policy.CodeInternal, "test"))
		return
	}
	p.ApplyTo(w, r, policy.KindStream)
	if f.mod != nil {
		f.mod(h)
	}
	if f.contentLength {
		h.Set("Content-Length", "100000")
	}
	var out io.Writer = w
	flush := func() { _ = http.NewResponseController(w).Flush() }
	if f.gzip {
		h.Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		out = gz
		flush = func() {
			_ = gz.Flush()
			_ = http.NewResponseController(w).Flush()
		}
	}
	w.WriteHeader(http.StatusOK)
	io.WriteString(out, "retry: 1000\n\n")
	flush()
	seq := 0
	if leid != "" && f.replayDup {
		fmt.Fprintf(out, "id: %s\ndata: again\n\n", leid)
		flush()
	}
	ev, stopEv := every(f.eventEvery)
	defer stopEv()
	fl, stopFl := every(f.flushEvery)
	defer stopFl()
	// The heartbeat waits for a quiet spell, as sseguard's and most hubs'
	// do: a fixed ticker that falls behind on a busy machine sends two
	// heartbeats back to back, which SSE-FLUSH rightly reads as buffering.
	hb, idle, stopHB := quietFor(f.heartbeat)
	defer stopHB()
	end, _, stopEnd := quietFor(f.closeAfter)
	defer stopEnd()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end:
			return
		case <-hb:
			io.WriteString(out, ": keep-alive\n\n")
		case <-ev:
			seq++
			ts := time.Now().Add(-f.tsLag).UnixMilli()
			fmt.Fprintf(out, "id: %d\ndata: {\"n\":%d,\"ts\":%d}\n\n", seq, seq, ts)
		case <-fl:
			flush()
			continue
		}
		idle()
		if f.flushEvery == 0 {
			flush()
		}
	}
}

// every returns a ticker's channel, nil when d is not positive, and a
// function that stops it.
func every(d time.Duration) (<-chan time.Time, func()) {
	if d <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// quietFor returns a timer's channel that fires after d, nil when d is
// not positive, a function that starts d again and one that stops it.
func quietFor(d time.Duration) (<-chan time.Time, func(), func()) {
	if d <= 0 {
		return nil, func() {}, func() {}
	}
	t := time.NewTimer(d)
	return t.C, func() { t.Reset(d) }, func() { t.Stop() }
}

// fakeHub is a minimal publish/subscribe server with knobs for the
// delivery faults the real hub never has.
type fakeHub struct {
	delay    time.Duration // deliver live events this late
	dropOdd  bool          // odd-numbered subscribers never get live events
	noReplay bool          // ignore Last-Event-ID

	mu     sync.Mutex
	events []string // data, by ID-1
	subs   map[int]chan int
	nsubs  int
}

func (f *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/publish":
		var req struct{ Topic, Data string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			policy.WriteProblem(w, r, policy.NewProblem(400, policy.CodeBadRequest, err.Error()))
			return
		}
		f.mu.Lock()
		f.events = append(f.events, req.Data)
		id := len(f.events)
		subs := make([]chan int, 0, len(f.subs))
		for n, c := range f.subs {
			if f.dropOdd && n%2 == 1 {
				continue
			}
			subs = append(subs, c)
		}
		f.mu.Unlock()
		for _, c := range subs {
			time.AfterFunc(f.delay, func() {
				select {
				case c <- id:
				default:
				}
			})
		}
		policy.Strict.ApplyTo(w, r, policy.KindJSON)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"id":"%d"}`, id)
	case "/events":
		if prob := policy.Strict.CheckStreamAccept(r); prob != nil {
			policy.WriteProblem(w, r, prob)
			return
		}
		c := make(chan int, 1024)
		f.mu.Lock()
		if f.subs == nil {
			f.subs = map[int]chan int{}
		}
		f.nsubs++
		n := f.nsubs
		f.subs[n] = c
		after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		var replay []int
		if !f.noReplay && after > 0 {
			for id := after + 1; id <= len(f.events); id++ {
				replay = append(replay, id)
			}
		}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.subs, n)
			f.mu.Unlock()
		}()
		st, err := sse.NewStream(w, r, &sse.StreamOptions{Profile: policy.Strict, Heartbeat: 50 * time.Millisecond})
		if err != nil {
			return
		}
		send := func(id int) bool {
			f.mu.Lock()
			data := f.events[id-1]
			f.mu.Unlock()
			return st.Send(sse.Event{ID: strconv.Itoa(id), Data: data}) == nil
		}
		for _, id := range replay {
			if !send(id) {
				return
			}
		}
		events := make(chan sse.Event)
		go func() {
			defer close(events)
			for {
				select {
				case <-r.Context().Done():
					return
				case id := <-c:
					f.mu.Lock()
					data := f.events[id-1]
					f.mu.Unlock()
					select {
					case events <- sse.Event{ID: strconv.Itoa(id), Data: data}:
					case <-r.Context().Done():
						return
					}
				}
			}
		}()
		_ = st.Run(r.Context(), events)
	default:
		policy.WriteProblem(w, r, policy.NewProblem(404, policy.CodeNotFound, "no route"))
	}
}

// rawServer answers every connection with the same bytes and keeps it open
// until the client leaves: for responses net/http would never write.
func rawServer(t testing.TB, response string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, response)
				_, _ = io.Copy(io.Discard, br) // until the client closes
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// rawH2Server speaks just enough HTTP/2 over TLS to answer each request
// with the given header fields (in order, as given) and a retry line, and
// keeps the stream open until the client leaves.
func rawH2Server(t testing.TB, fields [][2]string) string {
	t.Helper()
	tmp := httptest.NewUnstartedServer(nil)
	tmp.StartTLS()
	certs := tmp.TLS.Certificates
	tmp.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certs, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				_ = fr.WriteSettings()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
						}
					case *http2.HeadersFrame:
						var hb bytes.Buffer
						enc := hpack.NewEncoder(&hb)
						_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
						for _, kv := range fields {
							_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
						}
						_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hb.Bytes(), EndHeaders: true})
						_ = fr.WriteData(f.StreamID, false, []byte("retry: 1000\n\n"))
					}
				}
			})
		}
	})
	return "https://" + ln.Addr().String()
}

// h2Server serves handler over TLS with HTTP/2 enabled.
func h2Server(t testing.TB, handler http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// findings returns the IDs of the rules with findings that are not
// accepted.
func fired(rep *scan.Report) []string {
	var ids []string
	for _, f := range rep.Findings {
		if !f.Accepted && !slices.Contains(ids, f.Rule) {
			ids = append(ids, f.Rule)
		}
	}
	return ids
}

// assertFires fails unless each rule has a finding.
func assertFires(t *testing.T, rep *scan.Report, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if !slices.Contains(fired(rep), id) {
			t.Errorf("%s did not fire; findings: %s", id, describe(rep))
		}
	}
}

// assertQuiet fails unless each rule was checked and has no finding.
func assertQuiet(t *testing.T, rep *scan.Report, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if slices.Contains(fired(rep), id) {
			t.Errorf("%s fired; findings: %s", id, describe(rep))
		} else if !slices.Contains(rep.Checked, id) {
			t.Errorf("%s was not checked (%s)", id, rep.NotApplicable[id])
		}
	}
}

func describe(rep *scan.Report) string {
	if len(rep.Findings) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, f := range rep.Findings {
		fmt.Fprintf(&b, "\n  %s %s: %s %v", f.Severity, f.Rule, f.Evidence, f.Probes)
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintf(&b, "\n  notes: %s", strings.Join(rep.Notes, " | "))
	}
	return b.String()
}

// runScan scans with test defaults: a short window, loopback only.
func runScan(t testing.TB, cfg scan.Config) *scan.Report {
	t.Helper()
	if cfg.Duration == 0 {
		cfg.Duration = 700 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := scan.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("scan %s: %v", cfg.URL, err)
	}
	return rep
}

// runScanErr is runScan for goroutines: it returns the error.
func runScanErr(cfg scan.Config) (*scan.Report, error) {
	if cfg.Duration == 0 {
		cfg.Duration = 700 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := scan.Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", cfg.URL, err)
	}
	return rep, nil
}

// serveT serves h on loopback for the test and returns its base URL.
func serveT(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
