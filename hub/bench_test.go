package hub

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// benchSubscribers is the fan-out width of the benchmarks: the 10k
// streams of the performance targets.
const benchSubscribers = 10_000

// benchHub returns a hub that is not running (the benchmark plays the
// committer) with n live subscribers of topic "t".
func benchHub(b *testing.B, n int, opts Options, topics ...string) (*Hub, []*Subscriber) {
	b.Helper()
	if opts.Store == nil {
		opts.Store = memory.New(store.Retention{})
	}
	if len(topics) == 0 {
		topics = []string{"t"}
	}
	h := New(opts)
	head, err := opts.Store.Head(context.Background(), topics)
	if err != nil {
		b.Fatal(err)
	}
	subs := make([]*Subscriber, n)
	for i := range subs {
		s, err := h.Subscribe(topics)
		if err != nil {
			b.Fatal(err)
		}
		s.SetLabel("req-" + strconv.Itoa(i))
		s.GoLive(head)
		subs[i] = s
	}
	b.Cleanup(func() {
		for _, s := range subs {
			s.Close()
		}
	})
	return h, subs
}

// benchEvent is one committed event of about the size a dashboard or a
// price feed publishes.
func benchEvent(i int) []store.Appended {
	return []store.Appended{{Event: store.Event{
		ID: strconv.Itoa(i + 1), Topic: "t", Type: "price",
		Data: strings.Repeat("x", 200), Time: time.Now(),
	}}}
}

// BenchmarkFanOut fans one event out to 10k subscribers: encoding, the
// pushes, and the wake-ups. The subscribers' queues are drained between
// iterations, outside the timer, as their writers would.
func BenchmarkFanOut(b *testing.B) {
	h, subs := benchHub(b, benchSubscribers, Options{})
	var frames []Delivery
	drain := func() {
		for _, s := range subs {
			<-s.Ready()
			frames, _ = s.Take(frames[:0])
			if len(frames) != 1 {
				b.Fatalf("subscriber took %d frames", len(frames))
			}
		}
	}
	h.fanOut(benchEvent(-1)) // the queues' first growth is not the fan-out's cost
	drain()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.fanOut(benchEvent(i))
		b.StopTimer()
		drain()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSubscribers), "ns/delivery")
}

// BenchmarkFanOutVectorCursors fans one event out to 10k readers of two
// topics on a store with per-topic numbering (memory.Shared, the shape of
// store/redis): each reader's id line is its own cursor, computed and
// framed per reader. It is the price of multi-topic streams over a
// sharded store, beside BenchmarkFanOut's encode-once path.
func BenchmarkFanOutVectorCursors(b *testing.B) {
	h, subs := benchHub(b, benchSubscribers, Options{Store: memory.NewShared(store.Retention{})}, "t", "u")
	var parts [][]byte
	drain := func() {
		for _, s := range subs {
			<-s.Ready()
			parts, _ = s.Pull(parts[:0])
			if len(parts) != 2 {
				b.Fatalf("subscriber pulled %d parts, want the body and its id line", len(parts))
			}
		}
	}
	event := func(i int) []store.Event {
		e := benchEvent(i)[0].Event
		e.ID = "1." + strconv.Itoa(i+2) // topic t is number 1 (Head named it)
		return []store.Event{e}
	}
	// Over a store.Feed the hub fans out what the feed delivers.
	h.deliver(event(-1))
	drain()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.deliver(event(i))
		b.StopTimer()
		drain()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSubscribers), "ns/delivery")
}

// BenchmarkFanOutCutOff cuts 10k slow consumers off in one commit, as a
// network blip does, with a real JSON logger: the time the committer
// holds the hub's lock for it.
func BenchmarkFanOutCutOff(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	b.ReportAllocs()
	for i := range b.N {
		b.StopTimer()
		h, subs := benchHub(b, benchSubscribers, Options{QueueBytes: 1, Logger: log})
		h.fanOut(benchEvent(0)) // fills every queue: the next event overflows it
		b.StartTimer()
		h.fanOut(benchEvent(1))
		b.StopTimer()
		if got := h.Stats().CutOff; got != benchSubscribers {
			b.Fatalf("cut off %d subscribers, want %d", got, benchSubscribers)
		}
		for _, s := range subs {
			s.Close()
		}
		_ = i
	}
}

// BenchmarkFanOutPattern is BenchmarkFanOut with the 10k subscribers on
// the pattern "t*" instead of the topic "t", beside 1000 other patterns of
// other lengths that the event does not match: the price of the prefix
// index against an exact topic.
func BenchmarkFanOutPattern(b *testing.B) {
	h, subs := benchHub(b, benchSubscribers, Options{}, "t*")
	for i := range 1000 {
		s, err := h.Subscribe([]string{"other/" + strconv.Itoa(i) + "/*"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
	}
	var frames []Delivery
	drain := func() {
		for _, s := range subs {
			<-s.Ready()
			frames, _ = s.Take(frames[:0])
			if len(frames) != 1 {
				b.Fatalf("subscriber took %d frames", len(frames))
			}
		}
	}
	h.fanOut(benchEvent(-1))
	drain()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.fanOut(benchEvent(i))
		b.StopTimer()
		drain()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSubscribers), "ns/delivery")
}

// BenchmarkPatternMiss is the price an event pays for the pattern index
// when no pattern matches it, in the index's worst shape: patterns of
// every prefix length up to the topic's (here 64 lengths, one lookup
// each).
func BenchmarkPatternMiss(b *testing.B) {
	h := New(Options{Store: memory.New(store.Retention{})})
	topic := strings.Repeat("t", 64)
	for n := 1; n <= 64; n++ {
		s, err := h.Subscribe([]string{strings.Repeat("x", n) + "*"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
	}
	b.ReportAllocs()
	for b.Loop() {
		if h.patterns.matches(topic) {
			b.Fatal("a pattern matched")
		}
	}
}
