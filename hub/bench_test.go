package hub

import (
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
func benchHub(b *testing.B, n int, opts Options) (*Hub, []*Subscriber) {
	b.Helper()
	opts.Store = memory.New(store.Retention{})
	h := New(opts)
	subs := make([]*Subscriber, n)
	for i := range subs {
		s, err := h.Subscribe([]string{"t"})
		if err != nil {
			b.Fatal(err)
		}
		s.SetLabel("req-" + strconv.Itoa(i))
		s.GoLive("")
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
