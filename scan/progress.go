package scan

import (
	"fmt"
	"sync/atomic"
	"time"
)

// streamProgress counts what the main stream has shown so far, for the
// progress line of a single-stream scan (Config.Progress): a window of
// up to an hour must not look hung.
type streamProgress struct {
	head       atomic.Int64 // the head's status, 0 until it comes
	headMS     atomic.Int64
	events     atomic.Int64
	heartbeats atomic.Int64
}

// item counts one event or comment of the main stream.
func (p *streamProgress) item(it item) {
	if it.comment {
		p.heartbeats.Add(1)
	} else {
		p.events.Add(1)
	}
}

// startProgress writes a status line to Config.Progress every 500 ms
// until the returned function is called, which ends the line.
func (s *scanner) startProgress(start time.Time) func() {
	w := s.cfg.Progress
	if w == nil {
		return func() {}
	}
	p := &s.prog
	line := func() {
		head := "head: waiting"
		if st := p.head.Load(); st != 0 {
			head = fmt.Sprintf("head: %d after %s", st, fmtDur(time.Duration(p.headMS.Load())*time.Millisecond))
		}
		fmt.Fprintf(w, "\r\x1b[Kscan %s/%s · %s · events %d · heartbeats %d",
			time.Since(start).Round(time.Second), s.cfg.Duration, head, p.events.Load(), p.heartbeats.Load())
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				line()
				fmt.Fprintln(w)
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
