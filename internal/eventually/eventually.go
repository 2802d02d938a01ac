// Package eventually lets a test wait for a condition that another
// goroutine, process or browser will make true: a server that starts
// listening, a stream the hub registers, a page that renders.
//
// It polls the condition, first every millisecond and then less often,
// until it holds or a deadline passes, and then fails the test with what it
// waited for. That is the one way tests here wait for each other: never a
// fixed sleep, which is either too short on a loaded machine (a flaky test)
// or longer than needed everywhere else. Timers in code under test are
// better driven with testing/synctest, which needs no waiting at all.
//
// Package eventually is for tests only.
package eventually

import (
	"fmt"
	"testing"
	"time"
)

// DefaultWithin is how long True waits when within is zero: long enough for
// a loaded two-core CI machine, short enough that a broken test fails in
// reasonable time.
const DefaultWithin = 20 * time.Second

// True waits until cond returns true, or fails tb (with t.Fatalf) after
// within (DefaultWithin when zero), saying what was awaited. cond is
// called from the test's goroutine.
func True(tb testing.TB, within time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	if !Wait(within, cond) {
		if within <= 0 {
			within = DefaultWithin
		}
		tb.Fatalf("after %v, still not: %s", within, fmt.Sprintf(format, args...))
	}
}

// Wait polls cond until it returns true, and reports false if within
// (DefaultWithin when zero) passes first. It is for callers that report a
// timeout their own way.
func Wait(within time.Duration, cond func() bool) bool {
	if within <= 0 {
		within = DefaultWithin
	}
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause) // polling a condition, not synchronising on time
		pause = min(2*pause, 50*time.Millisecond)
	}
	return true
}
