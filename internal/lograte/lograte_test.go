package lograte

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// step is one call on a Limiter and what it must answer.
type step struct {
	op         string // "allow", "flush" or "forget"
	key        string
	at         time.Duration // after t0
	suppressed int
	ok         bool
}

func TestLimiter(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		maxKeys  int
		steps    []step
	}{
		{
			name: "first at once, then one line a minute for the rest",
			steps: []step{
				{op: "allow", key: "a", at: 0, ok: true},
				{op: "allow", key: "a", at: time.Second},
				{op: "allow", key: "a", at: 59 * time.Second},
				{op: "allow", key: "a", at: time.Minute, suppressed: 2, ok: true},
				{op: "allow", key: "a", at: time.Minute + time.Second},
				{op: "allow", key: "a", at: 2*time.Minute + time.Second, suppressed: 1, ok: true},
			},
		},
		{
			name: "keys are apart",
			steps: []step{
				{op: "allow", key: "a", at: 0, ok: true},
				{op: "allow", key: "b", at: time.Second, ok: true},
				{op: "allow", key: "a", at: 2 * time.Second},
				{op: "allow", key: "b", at: 3 * time.Second},
				{op: "allow", key: "b", at: 4 * time.Second},
				{op: "allow", key: "a", at: time.Minute, suppressed: 1, ok: true},
				{op: "allow", key: "b", at: time.Minute, ok: false},
				{op: "allow", key: "b", at: time.Minute + time.Second, suppressed: 3, ok: true},
			},
		},
		{
			name: "flush reports the tail of a burst once the interval passed",
			steps: []step{
				{op: "allow", key: "a", at: 0, ok: true},
				{op: "allow", key: "a", at: time.Second},
				{op: "allow", key: "a", at: 2 * time.Second},
				{op: "flush", key: "a", at: 30 * time.Second},
				{op: "flush", key: "a", at: time.Minute, suppressed: 2, ok: true},
				{op: "flush", key: "a", at: 3 * time.Minute},
				{op: "allow", key: "a", at: 3 * time.Minute, suppressed: 0, ok: true},
				{op: "flush", key: "b", at: 3 * time.Minute},
			},
		},
		{
			name: "forget returns what was not logged and starts over",
			steps: []step{
				{op: "allow", key: "a", at: 0, ok: true},
				{op: "allow", key: "a", at: time.Second},
				{op: "forget", key: "a", suppressed: 1},
				{op: "forget", key: "a", suppressed: 0},
				{op: "allow", key: "a", at: 2 * time.Second, ok: true},
			},
		},
		{
			name:     "custom interval",
			interval: 10 * time.Second,
			steps: []step{
				{op: "allow", key: "a", at: 0, ok: true},
				{op: "allow", key: "a", at: 5 * time.Second},
				{op: "allow", key: "a", at: 10 * time.Second, suppressed: 1, ok: true},
			},
		},
		{
			name: "a clock that goes back suppresses",
			steps: []step{
				{op: "allow", key: "a", at: time.Minute, ok: true},
				{op: "allow", key: "a", at: 0},
				{op: "allow", key: "a", at: 2 * time.Minute, suppressed: 1, ok: true},
			},
		},
		{
			name:    "full: idle keys are forgotten first",
			maxKeys: 2,
			steps: []step{
				{op: "allow", key: "idle", at: 0, ok: true},
				{op: "allow", key: "busy", at: time.Minute, ok: true},
				{op: "allow", key: "busy", at: time.Minute + time.Second},
				{op: "allow", key: "new", at: time.Minute + 2*time.Second, ok: true},
				// busy kept its count; idle was forgotten.
				{op: "forget", key: "busy", suppressed: 1},
				{op: "allow", key: "idle", at: time.Minute + 3*time.Second, ok: true},
			},
		},
		{
			name:    "full with no idle key: starts over",
			maxKeys: 2,
			steps: []step{
				{op: "allow", key: "a", at: 0, ok: true},
				{op: "allow", key: "b", at: 0, ok: true},
				{op: "allow", key: "c", at: time.Second, ok: true},
				{op: "allow", key: "a", at: 2 * time.Second, ok: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := &Limiter{Interval: tt.interval, MaxKeys: tt.maxKeys}
			for i, s := range tt.steps {
				var n int
				var ok bool
				switch s.op {
				case "allow":
					n, ok = lim.Allow(s.key, t0.Add(s.at))
				case "flush":
					n, ok = lim.Flush(s.key, t0.Add(s.at))
				case "forget":
					n, ok = lim.Forget(s.key), s.ok
				}
				if n != s.suppressed || ok != s.ok {
					t.Errorf("step %d, %s(%q) at %v = %d, %v; want %d, %v", i, s.op, s.key, s.at, n, ok, s.suppressed, s.ok)
				}
			}
		})
	}
}

func TestDrain(t *testing.T) {
	var lim Limiter
	lim.Allow("a", t0)
	lim.Allow("a", t0)
	lim.Allow("a", t0)
	lim.Allow("b", t0)
	lim.Allow("c", t0)
	lim.Allow("c", t0)
	got := map[string]int{}
	lim.Drain(func(key string, n int) { got[key] = n })
	if len(got) != 2 || got["a"] != 2 || got["c"] != 1 {
		t.Errorf("Drain reported %v, want a: 2, c: 1", got)
	}
	if _, ok := lim.Allow("a", t0); !ok {
		t.Error("a key was remembered after Drain")
	}
}

// TestConcurrent counts occurrences from several goroutines: every one is
// either allowed or counted in a later line.
func TestConcurrent(t *testing.T) {
	var lim Limiter
	const workers, each = 8, 1000
	allowed := make(chan int, workers)
	for w := range workers {
		go func() {
			n := 0
			for i := range each {
				if s, ok := lim.Allow("k", t0.Add(time.Duration(w*each+i)*time.Millisecond)); ok {
					n += s + 1
				}
			}
			allowed <- n
		}()
	}
	total := 0
	for range workers {
		total += <-allowed
	}
	total += lim.Forget("k")
	if total != workers*each {
		t.Errorf("lines stand for %d occurrences, want %d", total, workers*each)
	}
}

func ExampleLimiter() {
	var lim Limiter // one line a minute per key
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range 150 {
		now := start.Add(time.Duration(i) * time.Second)
		if suppressed, ok := lim.Allow("store", now); ok {
			fmt.Printf("%s: %d store failures\n", now.Format("15:04:05"), suppressed+1)
		}
	}
	if n, ok := lim.Flush("store", start.Add(4*time.Minute)); ok {
		fmt.Printf("later: %d more store failures\n", n)
	}
	// Output:
	// 12:00:00: 1 store failures
	// 12:01:00: 60 store failures
	// 12:02:00: 60 store failures
	// later: 29 more store failures
}
