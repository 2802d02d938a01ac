package eventually

import (
	"errors"
	"strings"
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

func TestOutputWaitFor(t *testing.T) {
	o := NewOutput()
	go func() {
		for _, s := range []string{"starting\n", "listening on 127.0.0.1:1\n"} {
			_, _ = o.Write([]byte(s))
		}
	}()
	if err := o.WaitFor(DefaultWithin, nil, func(s string) bool { return strings.Contains(s, "listening") }); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	close(exited)
	if err := o.WaitFor(DefaultWithin, exited, func(s string) bool { return strings.Contains(s, "never") }); !errors.Is(err, ErrExited) {
		t.Fatalf("after the process exited: %v, want ErrExited", err)
	}
}
