package scan

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestMergeSpansAndOverlap(t *testing.T) {
	st := mergeSpans([]span{{at(50), at(60)}, {at(0), at(10)}, {at(5), at(20)}, {at(20), at(30)}})
	want := stalls{{at(0), at(30)}, {at(50), at(60)}}
	if len(st) != len(want) || st[0] != want[0] || st[1] != want[1] {
		t.Fatalf("merged %v, want %v", st, want)
	}
	for _, tc := range []struct {
		from, to int
		want     time.Duration
	}{
		{0, 100, 40 * time.Millisecond},
		{25, 55, 10 * time.Millisecond},
		{30, 50, 0},
		{-10, 5, 5 * time.Millisecond},
	} {
		if got := st.overlap(at(tc.from), at(tc.to)); got != tc.want {
			t.Errorf("overlap(%d, %d) = %s, want %s", tc.from, tc.to, got, tc.want)
		}
	}
	if got := st.longest(); got != 30*time.Millisecond {
		t.Errorf("longest = %s", got)
	}
}

// burstWatch is a stream whose reads at the given times (ms after the
// head) each delivered the given number of heartbeats.
func burstWatch(reads [][2]int, st stalls) *watch {
	w := &watch{headers: at(0), stalls: st}
	for i, r := range reads {
		w.reads = append(w.reads, readRec{at: at(r[0]), n: 14 * r[1]})
		for range r[1] {
			w.items = append(w.items, item{at: at(r[0]), read: i, comment: true})
		}
	}
	return w
}

// TestBurstsLeaveOutOwnStalls: two heartbeats in one read are buffering,
// unless the scanner itself was stalled, in the silence before that read,
// for at least half the time two heartbeats take: then the bytes may have
// waited in its own socket.
func TestBurstsLeaveOutOwnStalls(t *testing.T) {
	// Heartbeats 50 ms apart; two arrive together at 205 ms.
	reads := [][2]int{{5, 1}, {55, 1}, {205, 2}, {255, 1}}
	for _, tc := range []struct {
		name      string
		stalls    stalls
		buffered  int
		ownStalls int
	}{
		{"no stall: buffered", nil, 1, 0},
		{"short stall", stalls{{at(60), at(70)}}, 1, 0},
		{"stalled through the silence", stalls{{at(80), at(204)}}, 0, 1},
		{"stalls adding up to half an interval", stalls{{at(60), at(75)}, {at(100), at(112)}}, 0, 1},
		{"stalls adding up to less", stalls{{at(60), at(70)}, {at(100), at(112)}}, 1, 0},
		{"a stall before the silence", stalls{{at(0), at(50)}}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, worst, own := burstWatch(reads, tc.stalls).bursts()
			if n != tc.buffered || own != tc.ownStalls {
				t.Errorf("bursts = %d (%s), own %d; want %d, own %d", n, worst, own, tc.buffered, tc.ownStalls)
			}
		})
	}
	// A proxy that flushes every 400 ms makes the usual interval 400 ms:
	// its bursts of 13 are not the scanner's, even when it stalled 300 ms.
	var buffered [][2]int
	for i := 1; i <= 4; i++ {
		buffered = append(buffered, [2]int{400 * i, 13})
	}
	if n, _, own := burstWatch(buffered, stalls{{at(900), at(1199)}}).bursts(); n != 3 || own != 0 {
		t.Errorf("a proxy's buffer: bursts %d, own %d; want 3, 0", n, own)
	}
	// Without a usual interval, the stalls must cover half the silence. A
	// delivery split over reads in a row is judged from its first read.
	split := burstWatch([][2]int{{205, 1}, {206, 2}}, stalls{{at(90), at(200)}})
	if n, _, own := split.bursts(); n != 0 || own != 1 {
		t.Errorf("split delivery: bursts %d, own %d; want 0, 1", n, own)
	}
	split.stalls = stalls{{at(110), at(200)}}
	if n, _, own := split.bursts(); n != 1 || own != 0 {
		t.Errorf("split delivery, shorter stall: bursts %d, own %d; want 1, 0", n, own)
	}
}

func TestServerSilenceAndLatency(t *testing.T) {
	w := &watch{headers: at(0), gapOver: 100 * time.Millisecond, lastAt: at(900), nreads: 3, maxGap: 700 * time.Millisecond,
		gaps: []span{{at(200), at(900)}}, endAt: at(1000)}
	for _, tc := range []struct {
		name   string
		stalls stalls
		server time.Duration
	}{
		{"no stalls", nil, 700 * time.Millisecond},
		{"stalled for most of it", stalls{{at(300), at(890)}}, 110 * time.Millisecond},
		{"stalled for part of it", stalls{{at(300), at(700)}}, 300 * time.Millisecond},
		{"stalled before it", stalls{{at(0), at(150)}}, 700 * time.Millisecond},
	} {
		w.stalls = tc.stalls
		if seen, server := w.longestSilence(); seen != 700*time.Millisecond || server != tc.server {
			t.Errorf("%s: silence %s, %s; want 700ms, %s", tc.name, seen, server, tc.server)
		}
	}
	for _, tc := range []struct {
		name   string
		stalls stalls
		want   time.Duration
	}{
		{"no stalls", nil, 500 * time.Millisecond},
		{"stalled for most of it", stalls{{at(100), at(490)}}, 110 * time.Millisecond},
		{"stalled for part of it", stalls{{at(100), at(300)}}, 300 * time.Millisecond},
		{"stalled throughout", stalls{{at(-100), at(600)}}, 0},
	} {
		if got := serverLatency(at(0), at(500), tc.stalls); got != tc.want {
			t.Errorf("%s: latency %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestStallProbe: a timestamp that arrives late through the probe's pipe
// is a stall; the probe stops leaving nothing running, and what it returns
// is sorted and disjoint.
func TestStallProbe(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startStallProbe()
	late := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(late.UnixNano()))
	if _, err := p.w.Write(buf[:]); err != nil {
		t.Fatal(err)
	}
	recorded := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.spans {
			if s.from.Equal(late) && s.len() >= time.Second {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !recorded(); {
		if time.Now().After(deadline) {
			t.Fatal("a timestamp a second old was not recorded as a stall")
		}
		runtime.Gosched()
	}
	st := p.stop()
	if st.longest() < time.Second {
		t.Errorf("stalls %v: want one of a second or more", st)
	}
	for i := 1; i < len(st); i++ {
		if !st[i].from.After(st[i-1].to) {
			t.Errorf("stalls overlap or are unsorted: %v", st)
		}
	}
}
