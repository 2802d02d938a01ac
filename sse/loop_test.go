package sse_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sseguard/sseguard/sse"
)

// wire is an http.ResponseWriter that keeps what was flushed, safe to read
// while the stream runs.
type wire struct {
	mu      sync.Mutex
	header  http.Header
	pending bytes.Buffer
	flushed bytes.Buffer
}

func (w *wire) Header() http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *wire) WriteHeader(int) {}

func (w *wire) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending.Write(b)
}

func (w *wire) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.pending.WriteTo(&w.flushed)
}

// take returns what was flushed since the last take.
func (w *wire) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.flushed.String()
	w.flushed.Reset()
	return s
}

// chanFeed is a Feed the test fills by hand.
type chanFeed struct {
	mu    sync.Mutex
	queue [][]byte
	cut   bool
	ready chan struct{}
}

func newChanFeed() *chanFeed { return &chanFeed{ready: make(chan struct{}, 1)} }

func (f *chanFeed) Ready() <-chan struct{} { return f.ready }

func (f *chanFeed) Pull(dst [][]byte) ([][]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst = append(dst, f.queue...)
	f.queue = nil
	return dst, f.cut
}

func (f *chanFeed) push(e sse.Event, cut bool) {
	b, err := e.Encode()
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	f.queue = append(f.queue, b)
	f.cut = f.cut || cut
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// served starts Serve on a stream with opts in the bubble and returns the
// wire (its retry field already taken), the feed and Serve's result.
func served(t *testing.T, ctx context.Context, opts sse.StreamOptions) (*wire, *chanFeed, <-chan error) {
	t.Helper()
	w := &wire{}
	r := httptest.NewRequest("GET", "/events", nil).WithContext(ctx)
	opts.Retry = -1
	st, err := sse.NewStream(w, r, &opts)
	if err != nil {
		t.Fatal(err)
	}
	feed := newChanFeed()
	done := make(chan error, 1)
	go func() { done <- st.Serve(ctx, feed) }()
	synctest.Wait()
	return w, feed, done
}

// retryMS parses a stream's last block as a retry field.
func retryMS(t *testing.T, got string) int {
	t.Helper()
	v, ok := strings.CutPrefix(got, "retry: ")
	n, err := strconv.Atoi(strings.TrimSuffix(v, "\n\n"))
	if !ok || !strings.HasSuffix(v, "\n\n") || err != nil {
		t.Fatalf("wrote %q, want a retry field", got)
	}
	return n
}

// TestServeHeartbeatAfterIdle: a heartbeat goes out when nothing was
// written for the heartbeat interval, counted from the last write, not on
// a fixed tick.
func TestServeHeartbeatAfterIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const beat = 15 * time.Second
		w, feed, done := served(t, t.Context(), sse.StreamOptions{Heartbeat: beat})
		time.Sleep(10 * time.Second)
		feed.push(sse.Event{Data: "x"}, false)
		synctest.Wait()
		if got := w.take(); got != "data: x\n\n" {
			t.Fatalf("wrote %q, want the event", got)
		}
		time.Sleep(beat - time.Nanosecond) // 25 s since the start, not yet 15 s idle
		synctest.Wait()
		if got := w.take(); got != "" {
			t.Fatalf("wrote %q %v after the last event; want nothing before %v idle", got, beat-time.Nanosecond, beat)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := w.take(); got != ": keep-alive\n\n" {
			t.Fatalf("wrote %q after %v idle, want the heartbeat", got, beat)
		}
		time.Sleep(beat)
		synctest.Wait()
		if got := w.take(); got != ": keep-alive\n\n" {
			t.Fatalf("wrote %q after another %v, want the next heartbeat", got, beat)
		}
		select {
		case err := <-done:
			t.Fatalf("Serve returned %v", err)
		default:
		}
	})
}

// TestServeEnds: each way a server ends a stream itself writes its hint
// last and returns its error.
func TestServeEnds(t *testing.T) {
	tests := []struct {
		name    string
		opts    func(shutdown chan struct{}) sse.StreamOptions
		act     func(shutdown chan struct{}, feed *chanFeed)
		wantErr error
		wantMS  [2]int // the retry hint's range, in ms, upper bound excluded
		events  string // written before the hint
	}{{
		name: "expiry",
		opts: func(chan struct{}) sse.StreamOptions {
			return sse.StreamOptions{Heartbeat: -1, Expires: time.Now().Add(time.Hour)}
		},
		act:     func(chan struct{}, *chanFeed) { time.Sleep(time.Hour) },
		wantErr: sse.ErrExpired,
		wantMS:  [2]int{0, 1},
	}, {
		name: "shutdown",
		opts: func(sd chan struct{}) sse.StreamOptions { return sse.StreamOptions{Heartbeat: -1, Shutdown: sd} },
		act: func(sd chan struct{}, _ *chanFeed) {
			time.Sleep(time.Minute)
			close(sd)
		},
		wantErr: sse.ErrShutdown,
		wantMS:  [2]int{1000, 3000},
	}, {
		name: "cut off",
		opts: func(chan struct{}) sse.StreamOptions { return sse.StreamOptions{Heartbeat: -1} },
		act: func(_ chan struct{}, f *chanFeed) {
			f.push(sse.Event{ID: "1", Data: "last"}, true)
		},
		wantErr: sse.ErrCutOff,
		wantMS:  [2]int{500, 1500},
		events:  "id: 1\ndata: last\n\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				shutdown := make(chan struct{})
				w, feed, done := served(t, t.Context(), tt.opts(shutdown))
				start := time.Now()
				tt.act(shutdown, feed)
				synctest.Wait()
				select {
				case err := <-done:
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Serve = %v, want %v", err, tt.wantErr)
					}
				default:
					t.Fatalf("Serve still running %v in", time.Since(start))
				}
				got := w.take()
				hint, ok := strings.CutPrefix(got, tt.events)
				if !ok {
					t.Fatalf("wrote %q, want %q first", got, tt.events)
				}
				if ms := retryMS(t, hint); ms < tt.wantMS[0] || ms >= tt.wantMS[1] {
					t.Fatalf("retry %d ms, want %d to %d", ms, tt.wantMS[0], tt.wantMS[1]-1)
				}
			})
		})
	}
}

// TestServeExpiryIsExact: the stream lives until its expiry and not a
// moment longer, however long that is.
func TestServeExpiryIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, _, done := served(t, t.Context(), sse.StreamOptions{Heartbeat: -1, Expires: time.Now().Add(90 * time.Minute)})
		time.Sleep(90*time.Minute - time.Nanosecond)
		synctest.Wait()
		if got := w.take(); got != "" {
			t.Fatalf("wrote %q before the expiry", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := w.take(); got != "retry: 0\n\n" {
			t.Fatalf("wrote %q at the expiry, want retry: 0", got)
		}
		if err := <-done; !errors.Is(err, sse.ErrExpired) {
			t.Fatalf("Serve = %v", err)
		}
	})
}

// TestServeClientGone: when the client leaves nothing more is written
// and Serve returns the context's error.
func TestServeClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		shutdown := make(chan struct{})
		w, _, done := served(t, ctx, sse.StreamOptions{Heartbeat: time.Second, Shutdown: shutdown})
		cancel()
		synctest.Wait()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
		close(shutdown)
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := w.take(); got != "" {
			t.Fatalf("wrote %q after the client left", got)
		}
	})
}

// TestRunEndsLikeServe: Run, fed by a channel, ends at shutdown and at
// expiry as Serve does.
func TestRunEndsLikeServe(t *testing.T) {
	for _, expire := range []bool{false, true} {
		t.Run("expire="+strconv.FormatBool(expire), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				shutdown := make(chan struct{})
				opts := &sse.StreamOptions{Retry: -1, Heartbeat: -1, Shutdown: shutdown}
				if expire {
					opts.Expires = time.Now().Add(time.Minute)
				}
				w := &wire{}
				st, err := sse.NewStream(w, httptest.NewRequest("GET", "/", nil).WithContext(t.Context()), opts)
				if err != nil {
					t.Fatal(err)
				}
				events := make(chan sse.Event)
				done := make(chan error, 1)
				go func() { done <- st.Run(t.Context(), events) }()
				events <- sse.Event{Data: "a"}
				time.Sleep(30 * time.Second)
				if !expire {
					close(shutdown)
				} else {
					time.Sleep(30 * time.Second)
				}
				synctest.Wait()
				err = <-done
				got, ok := strings.CutPrefix(w.take(), "data: a\n\n")
				if !ok {
					t.Fatalf("the event is missing: %q", got)
				}
				ms := retryMS(t, got)
				switch {
				case expire && (!errors.Is(err, sse.ErrExpired) || ms != 0):
					t.Fatalf("Run = %v, retry %d; want ErrExpired, retry: 0", err, ms)
				case !expire && (!errors.Is(err, sse.ErrShutdown) || ms < 1000 || ms >= 3000):
					t.Fatalf("Run = %v, retry %d; want ErrShutdown, 1000-2999", err, ms)
				}
			})
		})
	}
}
