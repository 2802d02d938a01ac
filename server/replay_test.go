package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// smallPages makes replay pages of two events: 4096 bytes a page, events
// of up to 1024 bytes of data (plus the accounted overhead).
func smallPages(c *config.Config) {
	c.Stream.QueueBytes = 4096
	c.Publish.MaxDataBytes = 1024
}

// TestReplayResetWhenRetentionOvertakesIt: a replay that retention
// overtakes between two pages (a slow reader while publishers go on) gets
// event: reset before the oldest retained events, never a silent gap.
func TestReplayResetWhenRetentionOvertakesIt(t *testing.T) {
	var once sync.Once
	laterc := make(chan []string, 1)
	ts := start(t, func(c *config.Config) {
		smallPages(c)
		n := 10
		c.Store.MaxEventsPerTopic = &n
	}, nil, func(s *Server) {
		s.replayPaged = func(string) {
			once.Do(func() { // after the first page: 20 more events push the rest out
				var later []string
				for i := range 20 {
					res, err := s.hub.Publish(context.Background(), store.Record{Topic: "t", Data: fmt.Sprint("later ", i)})
					if err != nil {
						panic(err)
					}
					later = append(later, res[0].Event.ID)
				}
				laterc <- later
			})
		}
	})
	tok := token(t, allPerms, time.Hour)
	var ids []string
	for i := range 10 {
		ids = append(ids, ts.mustPublish(t, tok, "t", fmt.Sprint("early ", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {ids[1]}})
	for _, want := range ids[2:4] { // the first page
		if e := nextEvent(t, p); e.ID != want {
			t.Fatalf("first page: got %q (%s), want %s", e.ID, e.Data, want)
		}
	}
	later := <-laterc
	if e := nextEvent(t, p); e.Type != "reset" || !strings.Contains(e.Data, `"truncated"`) {
		t.Fatalf("after retention overtook the replay: got %q %q, want event: reset (truncated)", e.Type, e.Data)
	}
	for _, want := range later[10:] { // what retention kept, then nothing twice
		if e := nextEvent(t, p); e.ID != want {
			t.Fatalf("after the reset: got %q, want %s", e.ID, want)
		}
	}
	next := ts.mustPublish(t, tok, "t", "live")
	if e := nextEvent(t, p); e.ID != next {
		t.Fatalf("live: got %q, want %s", e.ID, next)
	}
}

// TestReplayAtShutdownGetsRetry: a stream still replaying when the server
// shuts down ends with a jittered retry hint, like a live one.
func TestReplayAtShutdownGetsRetry(t *testing.T) {
	var once sync.Once
	stopc := make(chan func() error, 1)
	ts := start(t, smallPages, nil, func(s *Server) {
		s.replayPaged = func(string) {
			once.Do(func() {
				stop := <-stopc
				go func() { _ = stop() }()
				<-s.hub.Closing()
			})
		}
	})
	stopc <- ts.stop
	tok := token(t, allPerms, time.Hour)
	var ids []string
	for i := range 10 {
		ids = append(ids, ts.mustPublish(t, tok, "t", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {ids[0]}})
	var seen int
	for {
		if _, err := p.Next(); err != nil {
			break
		}
		seen++
	}
	if seen == 0 || seen >= len(ids)-1 {
		t.Fatalf("saw %d replayed events before the shutdown; want the first page only", seen)
	}
	if d, ok := p.Retry(); !ok || d < time.Second || d > 3*time.Second {
		t.Fatalf("retry after a replay cut by shutdown = %v, %v; want 1-3 s", d, ok)
	}
}

// recordingStore remembers the largest page a Read returned, in bytes.
type recordingStore struct {
	store.Store
	mu      sync.Mutex
	largest int64
}

func (r *recordingStore) Read(ctx context.Context, topics []string, after string, limit int) (store.Page, error) {
	page, err := r.Store.Read(ctx, topics, after, limit)
	r.mu.Lock()
	r.largest = max(r.largest, pageSize(page.Events))
	r.mu.Unlock()
	return page, err
}

// TestReplayAndPollPagesBoundedByBytes: history of large events is read
// in pages of at most stream.queue_bytes, for streams and polls alike, and
// still arrives whole and in order.
func TestReplayAndPollPagesBoundedByBytes(t *testing.T) {
	rec := &recordingStore{Store: memory.New(store.Retention{})}
	ts := start(t, func(c *config.Config) {
		c.Stream.QueueBytes = 256 << 10
		c.Publish.MaxDataBytes = 64 << 10
	}, rec)
	tok := token(t, allPerms, time.Hour)
	big := strings.Repeat("x", 60<<10)
	var ids []string
	for i := range 40 {
		ids = append(ids, ts.mustPublish(t, tok, "big", fmt.Sprint(i, big)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=big", http.Header{"Authorization": {"Bearer " + tok}, "Last-Event-ID": {"0"}})
	for i, want := range ids {
		if e := nextEvent(t, p); e.ID != want || !strings.HasPrefix(e.Data, fmt.Sprint(i, "xxx")) {
			t.Fatalf("replayed event %d: got %s, want %s", i, e.ID, want)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/api/poll?topic=big&after=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("poll: %d", res.StatusCode)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.largest == 0 || rec.largest > 256<<10 {
		t.Fatalf("largest page read: %d bytes; want at most stream.queue_bytes (%d)", rec.largest, 256<<10)
	}
}

// TestHistoryBudgetWaitsThenGivesUp: pages in flight never hold more than
// the budget; a reader that finds no room waits, gets room when a page is
// released, and gives up with errReplayBusy after the wait bound.
func TestHistoryBudgetWaitsThenGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New(store.Retention{})
		ctx := context.Background()
		for i := range 10 {
			if _, err := st.Append(ctx, []store.Record{{Topic: "t", Data: strings.Repeat("d", 900) + fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		// Room for two pages of two events each.
		b := newHistoryBudget(8192, 4096, 1024, 5*time.Second)
		never := make(chan struct{})
		p1, rel1, err := b.read(ctx, never, st, []string{"t"}, "", 0)
		if err != nil || len(p1.Events) != 2 {
			t.Fatalf("first page: %d events, %v; want 2", len(p1.Events), err)
		}
		_, rel2, err := b.read(ctx, never, st, []string{"t"}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		// Small pages give back what they did not need: about 1.8 KB each
		// is held, so a page of room is still free.
		_, rel3, err := b.read(ctx, never, st, []string{"t"}, "", 0)
		if err != nil {
			t.Fatalf("third page with room left: %v", err)
		}
		_, _, err = b.read(ctx, never, st, []string{"t"}, "", 0)
		if !errors.Is(err, errReplayBusy) {
			t.Fatalf("with no room for 5 s: %v; want errReplayBusy", err)
		}
		got := make(chan error, 1)
		go func() {
			_, rel, err := b.read(ctx, never, st, []string{"t"}, "", 0)
			if err == nil {
				rel()
			}
			got <- err
		}()
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("a reader got room while none was free: %v", err)
		default:
		}
		rel1()
		if err := <-got; err != nil {
			t.Fatalf("after a release: %v", err)
		}
		rel2()
		rel3()
		rel3() // releasing twice gives nothing back twice
		if !b.sem.TryAcquire(8192) {
			t.Fatal("the budget did not get all its room back")
		}
	})
}

// TestRetryHintsSpreadPerStream: at shutdown every parked stream gets its
// own retry hint in the documented 1-3 s range, so a restart does not
// bring every client back in the same instant.
func TestRetryHintsSpreadPerStream(t *testing.T) {
	ts := start(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20
	var parsers []*sse.Parser
	for range n {
		_, p := ts.openStream(t, ctx, "topic=demo", nil)
		parsers = append(parsers, p)
	}
	waitSubscribers(t, ts.hub, n)
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[time.Duration]bool{}
	lo, hi := time.Hour, time.Duration(0)
	for i, p := range parsers {
		for {
			if _, err := p.Next(); err != nil {
				break
			}
		}
		d, ok := p.Retry()
		if !ok || d < time.Second || d > 3*time.Second {
			t.Fatalf("stream %d: retry %v, %v; want 1-3 s", i, d, ok)
		}
		seen[d] = true
		lo, hi = min(lo, d), max(hi, d)
	}
	// 20 uniform draws over 2 s: all within 500 ms of each other, or
	// fewer than 10 distinct values, has odds far below 1e-9.
	if len(seen) < n/2 || hi-lo < 500*time.Millisecond {
		t.Fatalf("retry hints %v: %d distinct, spread %v; want each stream its own value across the range", seen, len(seen), hi-lo)
	}
}

// TestTokenValidPast2262: a token whose exp lies beyond what a Unix
// nanosecond count holds ("never expires" tokens) gets a stream that lives
// on through the parked writer's expiry sweeps (the first heartbeat comes
// after one), not one that ends with retry: 0.
func TestTokenValidPast2262(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Stream.Heartbeat = config.Duration(time.Second) }, nil)
	tok, err := auth.Mint(testKey, "forever", allPerms, 290*365*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/events?topic=t", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() {
		switch line := lines.Text(); {
		case strings.HasPrefix(line, ":"):
			return // a heartbeat: the stream outlived the writer's sweeps
		case line == "retry: 0":
			t.Fatal("the stream ended as expired")
		}
	}
	t.Fatalf("the stream ended before its first heartbeat: %v", lines.Err())
}

// headlessStore is a memory store whose Head fails, as a store that is
// down between a stream's subscribe and its start.
type headlessStore struct{ *memory.Store }

func (headlessStore) Head(context.Context, []string) (string, error) {
	return "", errors.New("store down")
}

// TestStreamStartsWithoutHead: a stream with no Last-Event-ID whose store
// cannot say where "now" is still opens and gets live events (from the
// empty cursor), and the failure is logged once, not once per stream.
func TestStreamStartsWithoutHead(t *testing.T) {
	ts := start(t, nil, headlessStore{memory.New(store.Retention{})})
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var parsers []*sse.Parser
	for range 3 {
		_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}})
		parsers = append(parsers, p)
	}
	id := ts.mustPublish(t, tok, "t", "live")
	for i, p := range parsers {
		if e := nextEvent(t, p); e.ID != id {
			t.Fatalf("stream %d got %q, want the live event %s", i, e.ID, id)
		}
	}
	if n := strings.Count(ts.logs(), "the store's head is not available"); n != 1 {
		t.Errorf("the failed head was logged %d times for 3 streams, want once a minute", n)
	}
}
