package eventually

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Output collects what a process or server writes (its stdout, its log),
// so that a test can wait for a piece of it without polling. It is safe
// for concurrent use.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // capacity 1: a pending "something was written"
}

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{changed: make(chan struct{}, 1)} }

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(p)
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// ErrExited is what WaitFor returns when the writer's process ended first.
var ErrExited = errors.New("the process exited")

// WaitFor waits until cond holds for everything written so far. It gives
// up after timeout, or when exited (which may be nil) is closed and cond
// still does not hold (ErrExited).
func (o *Output) WaitFor(timeout time.Duration, exited <-chan struct{}, cond func(string) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond(o.String()) {
			return nil
		}
		select {
		case <-o.changed:
		case <-exited:
			if cond(o.String()) {
				return nil
			}
			return ErrExited
		case <-deadline.C:
			return fmt.Errorf("not within %v", timeout)
		}
	}
}
