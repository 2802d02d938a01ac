package proxy

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
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

// TestStreamBodyEndsAtExpiry checks that a stream whose credentials expire
// ends at its next event boundary with "retry: 0": at once between events,
// and inside an event only once the event is finished, without a byte of
// the next one.
func TestStreamBodyEndsAtExpiry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string // sent before the expiry
		after  string // sent after it, in one chunk
		want   string // what the client reads
	}{
		{"between events", "data: a\n\n", "data: b\n\n", "data: a\n\nretry: 0\n\n"},
		{"mid-event", "data: a\n\ndata: pa", "rt\n\ndata: b\n\n", "data: a\n\ndata: part\n\nretry: 0\n\n"},
		{"mid-event, CRLF", "data: a\r\n\r\ndata: pa", "rt\r\n\r\ndata: b\r\n\r\n", "data: a\r\n\r\ndata: part\r\n\r\nretry: 0\n\n"},
		{"mid-event, several lines", "id: 7\n", "data: x\n\nid: 8\ndata: y\n\n", "id: 7\ndata: x\n\nretry: 0\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pr, pw := io.Pipe()
				sb := newStreamBody(pr, nil, -1)
				sb.expires = time.Now().Add(time.Minute)
				expired := false
				sb.onExpire = func() { expired = true }
				var got []byte
				readDone := make(chan error, 1)
				go func() {
					b, err := io.ReadAll(sb)
					got = b
					readDone <- err
				}()
				if _, err := io.WriteString(pw, tc.before); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Minute) // the fake clock passes the expiry
				synctest.Wait()
				if !expired {
					t.Fatal("onExpire not called at the expiry")
				}
				select {
				case err := <-readDone:
					if strings.HasSuffix(tc.before, "\n\n") {
						if err != nil || string(got) != tc.want {
							t.Fatalf("read %q, %v; want %q", got, err, tc.want)
						}
						_ = sb.Close()
						return
					}
					t.Fatalf("the stream ended mid-event: %q", got)
				default:
				}
				// Mid-event: the stream waits for the rest of the event.
				go func() { _, _ = io.WriteString(pw, tc.after) }()
				if err := <-readDone; err != nil || string(got) != tc.want {
					t.Fatalf("read %q, %v; want %q", got, err, tc.want)
				}
				_ = sb.Close()
				_ = pw.Close()
			})
		})
	}
}

// TestStreamBodyStopsAtFirstBoundary checks that a shutdown that comes
// mid-event ends the stream where that event ends, even when the rest of
// the chunk holds more events.
func TestStreamBodyStopsAtFirstBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pr, pw := io.Pipe()
		sb := newStreamBody(pr, nil, -1)
		stop := make(chan struct{})
		sb.stop = stop
		var got []byte
		readDone := make(chan error, 1)
		go func() {
			b, err := io.ReadAll(sb)
			got = b
			readDone <- err
		}()
		_, _ = io.WriteString(pw, "data: one\n\ndata: tw")
		synctest.Wait()
		close(stop)
		go func() { _, _ = io.WriteString(pw, "o\n\ndata: three\n\n") }()
		if err := <-readDone; err != nil || !endsAtBoundaryWithRetry(string(got)) {
			t.Fatalf("read %q, %v; want the first two events, then a 1-3 s retry hint", got, err)
		}
		_ = sb.Close()
		_ = pw.Close()
	})
}

// endsAtBoundaryWithRetry reports whether body is the two events a test
// upstream sent before the shutdown, then the shutdown's retry hint in the
// documented 1-3 s range.
func endsAtBoundaryWithRetry(body string) bool {
	rest, ok := strings.CutPrefix(body, "data: one\n\ndata: two\n\nretry: ")
	if !ok {
		return false
	}
	ms, ok := strings.CutSuffix(rest, "\n\n")
	n, err := strconv.Atoi(ms)
	return ok && err == nil && n >= 1000 && n <= 3000
}
