package hub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

func startHub(t *testing.T, opts Options) *Hub {
	t.Helper()
	if opts.Store == nil {
		opts.Store = memory.New(store.Retention{})
	}
	h := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

func publish(t *testing.T, h *Hub, topic, data string) store.Event {
	t.Helper()
	res, err := h.Publish(context.Background(), store.Record{Topic: topic, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Event
}

func waitFrames(t *testing.T, s *Subscriber, n int) []Delivery {
	t.Helper()
	var got []Delivery
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-s.Ready():
			var cut bool
			got, cut = s.Take(got)
			if cut {
				t.Fatalf("cut off after %d frames", len(got))
			}
		case <-deadline:
			t.Fatalf("got %d frames, want %d", len(got), n)
		}
	}
	return got
}

// TestFanOutByTopic: each subscriber gets the events of its topics and
// nothing else, all of them sharing one encoding of each event. Publish
// returns after the fan-out, so what a subscriber holds then is all it
// will get.
func TestFanOutByTopic(t *testing.T) {
	h := startHub(t, Options{})
	a, _ := h.Subscribe([]string{"a"})
	ab, _ := h.Subscribe([]string{"a", "b"})
	b, _ := h.Subscribe([]string{"b"})
	defer a.Close()
	defer ab.Close()
	defer b.Close()
	for _, s := range []*Subscriber{a, ab, b} {
		s.GoLive("")
	}
	e1 := publish(t, h, "a", "one")
	e2 := publish(t, h, "b", "two")
	publish(t, h, "c", "three") // nobody's topic
	ids := func(s *Subscriber) []string {
		frames, cut := s.Take(nil)
		if cut {
			t.Fatal("a subscriber was cut off")
		}
		var ids []string
		for _, f := range frames {
			ids = append(ids, f.Event.ID)
		}
		return ids
	}
	for _, tt := range []struct {
		name string
		s    *Subscriber
		want []string
	}{
		{"a", a, []string{e1.ID}},
		{"a+b", ab, []string{e1.ID, e2.ID}},
		{"b", b, []string{e2.ID}},
	} {
		// Take, not waitFrames: the frames are queued already, and
		// waitFrames would stop at the number wanted.
		if got := ids(tt.s); !slices.Equal(got, tt.want) {
			t.Errorf("%s subscriber got events %v, want %v", tt.name, got, tt.want)
		}
	}

	// One encoding per event, shared by every subscriber.
	publish(t, h, "a", "four")
	fa, _ := a.Take(nil)
	fab, _ := ab.Take(nil)
	if len(fa) != 1 || len(fab) != 1 {
		t.Fatalf("subscribers of a got %d and %d frames of one event", len(fa), len(fab))
	}
	if fa[0] != fab[0] {
		t.Error("the same event was encoded twice: frames are not shared")
	}
	if want := "id: " + fa[0].Event.ID + "\ndata: four\n\n"; string(fa[0].Wire) != want {
		t.Errorf("wire %q, want %q", fa[0].Wire, want)
	}
}

func TestGoLiveDropsReplayed(t *testing.T) {
	h := startHub(t, Options{})
	s, _ := h.Subscribe([]string{"t"})
	defer s.Close()
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, publish(t, h, "t", strconv.Itoa(i)).ID)
	}
	s.GoLive(ids[2]) // the replay delivered up to the third
	got := waitFrames(t, s, 2)
	if got[0].Event.ID != ids[3] || got[1].Event.ID != ids[4] {
		t.Fatalf("after GoLive(%s) got %s, %s", ids[2], got[0].Event.ID, got[1].Event.ID)
	}
}

func TestSlowConsumerIsCutNotSkipped(t *testing.T) {
	h := startHub(t, Options{QueueBytes: 200})
	slow, _ := h.Subscribe([]string{"t"})
	defer slow.Close()
	slow.GoLive("")
	for i := 0; i < 20; i++ {
		publish(t, h, "t", fmt.Sprintf("event number %d", i))
	}
	select {
	case <-slow.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no signal")
	}
	frames, cut := slow.Take(nil)
	if !cut {
		t.Fatalf("not cut after overflowing its queue (%d frames)", len(frames))
	}
	if len(frames) != 0 {
		t.Fatalf("a cut subscriber was handed %d frames: a partial queue would skip events", len(frames))
	}
	if st := h.Stats(); st.CutOff != 1 {
		t.Fatalf("CutOff = %d", st.CutOff)
	}
}

func TestPublishRefusesUnsafeType(t *testing.T) {
	h := startHub(t, Options{})
	if _, err := h.Publish(context.Background(), store.Record{Topic: "t", Type: "x\nevent: y"}); err == nil {
		t.Fatal("type with LF accepted")
	}
	if head, _ := h.Store().Head(context.Background(), nil); head != "" {
		t.Fatalf("something was stored: head %q", head)
	}
}

func TestConcurrentPublishesFanOutInOrder(t *testing.T) {
	h := startHub(t, Options{})
	s, _ := h.Subscribe([]string{"t"})
	defer s.Close()
	s.GoLive("")
	const n = 400
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				if _, err := h.Publish(context.Background(), store.Record{Topic: "t", Data: "x"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := waitFrames(t, s, n)
	for i := 1; i < len(got); i++ {
		if h.Store().Compare(got[i-1].Event.ID, got[i].Event.ID) >= 0 {
			t.Fatalf("frame %d (%s) not after frame %d (%s)", i, got[i].Event.ID, i-1, got[i-1].Event.ID)
		}
	}
}

func TestClosedHubRefuses(t *testing.T) {
	h := New(Options{Store: memory.New(store.Retention{})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	cancel()
	<-done
	if _, err := h.Subscribe([]string{"t"}); err != ErrClosed {
		t.Fatalf("Subscribe after close: %v", err)
	}
	if _, err := h.Publish(context.Background(), store.Record{Topic: "t"}); err != ErrClosed {
		t.Fatalf("Publish after close: %v", err)
	}
	select {
	case <-h.Closing():
	default:
		t.Fatal("Closing not closed")
	}
}

// TestFanOutAfterGoLiveIsNotRepeated covers an event committed before the
// replay read it but fanned out only after the subscriber went live: the
// replay sent it, so the live path must not send it again.
func TestFanOutAfterGoLiveIsNotRepeated(t *testing.T) {
	st := memory.New(store.Retention{})
	h := New(Options{Store: st}) // not running: the test plays the committer
	s, err := h.Subscribe([]string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appended, err := st.Append(context.Background(), []store.Record{{Topic: "t", Data: "raced"}})
	if err != nil {
		t.Fatal(err)
	}
	s.GoLive(appended[0].Event.ID) // the replay delivered it
	h.fanOut(appended)             // the committer gets to it only now
	if frames, _ := s.Take(nil); len(frames) != 0 {
		t.Fatalf("event %s delivered again after the replay sent it", frames[0].Event.ID)
	}
	next, _ := st.Append(context.Background(), []store.Record{{Topic: "t", Data: "next"}})
	h.fanOut(next)
	if frames, _ := s.Take(nil); len(frames) != 1 || frames[0].Event.ID != next[0].Event.ID {
		t.Fatalf("the next event was not delivered: %v", frames)
	}
}

func TestEventLargerThanQueueIsNotACut(t *testing.T) {
	h := startHub(t, Options{QueueBytes: 100})
	s, _ := h.Subscribe([]string{"t"})
	defer s.Close()
	s.GoLive("")
	e := publish(t, h, "t", strings.Repeat("x", 500))
	got := waitFrames(t, s, 1)
	if got[0].Event.ID != e.ID {
		t.Fatalf("got %s", got[0].Event.ID)
	}
}

// lockProbe is a slog.Handler that records each line and whether the
// hub's lock was free when it was written.
type lockProbe struct {
	recorder
	h      *Hub
	locked []bool
}

func (p *lockProbe) Handle(ctx context.Context, rec slog.Record) error {
	free := p.h.mu.TryLock()
	if free {
		p.h.mu.Unlock()
	}
	p.mu.Lock()
	p.locked = append(p.locked, !free)
	p.mu.Unlock()
	return p.recorder.Handle(ctx, rec)
}

// TestCutOffsLoggedOnceAfterLock: a commit that cuts off many slow
// consumers at once logs one line with the count and a few request IDs,
// and logs it after releasing the hub's lock, so that subscribes, closes
// and the next commit do not wait for the logger.
func TestCutOffsLoggedOnceAfterLock(t *testing.T) {
	probe := &lockProbe{}
	h := New(Options{Store: memory.New(store.Retention{}), QueueBytes: 1, Logger: slog.New(probe)})
	probe.h = h // not running: the test plays the committer
	const n = 50
	for i := range n {
		s, err := h.Subscribe([]string{"t"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetLabel(fmt.Sprintf("req-%d", i))
		s.GoLive("")
	}
	first, _ := h.Store().Append(context.Background(), []store.Record{{Topic: "t", Data: "fills every queue"}})
	h.fanOut(first)
	if lines := probe.lines(); len(lines) != 0 {
		t.Fatalf("logged %d lines before anyone fell behind", len(lines))
	}
	next, _ := h.Store().Append(context.Background(), []store.Record{{Topic: "t", Data: "overflows them"}})
	h.fanOut(next)

	lines := probe.lines()
	if len(lines) != 1 {
		t.Fatalf("logged %d lines for %d cut-offs in one commit, want one summary", len(lines), n)
	}
	l := lines[0]
	if l.level != slog.LevelWarn || l.msg != "slow consumers cut off" || fmt.Sprint(l.attrs["count"]) != strconv.Itoa(n) {
		t.Fatalf("line %v %q %v, want a warning counting %d", l.level, l.msg, l.attrs, n)
	}
	ids, _ := l.attrs["request_ids"].([]string)
	if len(ids) != cutSamples {
		t.Fatalf("request_ids %v, want %d samples", l.attrs["request_ids"], cutSamples)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "req-") {
			t.Errorf("request ID %q is not a subscriber's label", id)
		}
	}
	if probe.locked[0] {
		t.Error("the cut-off line was logged with the hub's lock held")
	}
	if got := h.Stats().CutOff; got != n {
		t.Errorf("CutOff = %d, want %d", got, n)
	}
}
