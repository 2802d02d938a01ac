package proxy

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sseguard/sseguard/sse"
)

// parsed is what a client makes of a stream: its events (without
// comments, which the standard ignores), then the last event ID and the
// reconnection time it ends with.
type parsed struct {
	events []sse.Event
	lastID string
	retry  time.Duration
}

func parseAll(t testing.TB, b []byte) parsed {
	t.Helper()
	p := sse.NewParser(bytes.NewReader(b))
	var out parsed
	for {
		ev, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ev.Comment = ""
		out.events = append(out.events, ev)
	}
	out.lastID = p.LastEventID()
	out.retry, _ = p.Retry()
	return out
}

func equalParsed(a, b parsed) bool {
	if len(a.events) != len(b.events) || a.lastID != b.lastID || a.retry != b.retry {
		return false
	}
	for i := range a.events {
		if a.events[i] != b.events[i] {
			return false
		}
	}
	return true
}

// FuzzBoundary checks the one promise heartbeats rest on: wherever the
// boundary tracker says a comment block may go, inserting one changes
// nothing a client dispatches. It also checks that the tracker's state does
// not depend on how the bytes were split into chunks.
func FuzzBoundary(f *testing.F) {
	for _, s := range []string{
		"data: one\n\n",
		"data: a\r\n\r\ndata: b\r\rdata: c\n\n",
		"event: x\nid: 7\n: note\ndata: y\n\n",
		"id: 3\n\nretry: 100\n\n: comment only\n",
		"data: part\r",
		"\xEF\xBB\xBFdata: bom\n\n",
		"id\n\ndata\n\n:\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if len(data) > 512 {
			return
		}
		data = bytes.TrimPrefix(data, utf8BOM) // the pump strips it
		want := parseAll(t, data)
		var b boundary
		for i := 0; i <= len(data); i++ {
			if i > 0 {
				b.feed(data[i-1 : i])
			}
			if !b.at() {
				continue
			}
			withBeat := append(append(append([]byte(nil), data[:i]...), heartbeat...), data[i:]...)
			if got := parseAll(t, withBeat); !equalParsed(got, want) {
				t.Fatalf("a heartbeat at %d of %q changes what the client sees:\n got %+v\nwant %+v", i, data, got, want)
			}
		}
		var whole, parts boundary
		whole.feed(data)
		cut := int(split) % (len(data) + 1)
		parts.feed(data[:cut])
		parts.feed(data[cut:])
		if whole != parts {
			t.Fatalf("state after %q differs when split at %d: %+v vs %+v", data, cut, whole, parts)
		}
	})
}

// slowReader hands out its chunks one Read at a time, each after a tick;
// Close makes a waiting Read fail.
type slowReader struct {
	chunks []string
	tick   chan struct{}
	closed chan struct{}
}

func (r *slowReader) Read(p []byte) (int, error) {
	select {
	case <-r.tick:
	case <-r.closed:
		return 0, errors.New("closed")
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

func (r *slowReader) Close() error { close(r.closed); return nil }

func TestStreamBodyHeartbeatsAndClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	src := &slowReader{chunks: []string{"data: a\n\n", "data: b"}, tick: make(chan struct{}), closed: make(chan struct{})}
	sb := newStreamBody(src, nil, 20*time.Millisecond)
	var beats, skipped int
	sb.onBeat = func(sent bool) {
		if sent {
			beats++
		} else {
			skipped++
		}
	}
	buf := make([]byte, 64)
	read := func() string {
		n, err := sb.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	go func() { src.tick <- struct{}{} }()
	if got := read(); got != "data: a\n\n" {
		t.Fatalf("read %q", got)
	}
	if got := read(); got != ": keep-alive\n\n" { // idle at a boundary
		t.Fatalf("read %q, want a heartbeat", got)
	}
	go func() { src.tick <- struct{}{} }()
	if got := read(); got != "data: b" {
		t.Fatalf("read %q", got)
	}
	// Mid-event now: a heartbeat is due but skipped, and Close, with the
	// pump blocked in the upstream Read, still returns.
	done := make(chan struct{})
	go func() {
		n, err := sb.Read(buf)
		if n != 0 || err != io.EOF {
			t.Errorf("after close: %d, %v", n, err)
		}
		close(done)
	}()
	time.Sleep(80 * time.Millisecond)
	_ = sb.Close()
	<-done
	if beats != 1 || skipped != 1 {
		t.Errorf("heartbeats sent %d, skipped %d; want 1 and 1", beats, skipped)
	}
}

func TestStreamBodyStripsBOMAcrossReads(t *testing.T) {
	src := io.NopCloser(io.MultiReader(strings.NewReader("\xEF"), strings.NewReader("\xBB\xBFdata: x\n\n")))
	sb := newStreamBody(src, nil, -1)
	defer sb.Close()
	b, err := io.ReadAll(sb)
	if err != nil || string(b) != "data: x\n\n" {
		t.Fatalf("read %q, %v", b, err)
	}
}
