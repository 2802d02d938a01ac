package eventually

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitSeesALateTruth(t *testing.T) {
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			n.Add(1)
		}
	}()
	True(t, 0, func() bool { return n.Load() == 5 }, "five increments")
	<-done
}

func TestWaitGivesUp(t *testing.T) {
	calls := 0
	if Wait(20*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("Wait reported a condition that never held")
	}
	if calls < 2 {
		t.Fatalf("the condition was polled %d times", calls)
	}
}
