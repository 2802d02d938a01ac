package scan

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// TestDecodeStreamPerEvent: a deflate stream whose events share one
// compressed block, each event's bytes sent as soon as they make it
// decodable (as a proxy that flushes its compressor's output per event
// does), is decoded event by event. The writer sends the next event's
// bytes only once the decoder has handed out the previous event, so a
// decoder that waits for the block's end never gets there.
func TestDecodeStreamPerEvent(t *testing.T) {
	t.Parallel()
	var plain strings.Builder
	var ends []int // end of each event in plain
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&plain, "id: %d\nevent: tick\ndata: {\"n\":%d,\"text\":\"event number %d of the compressed stream\"}\n\n", i, i, i)
		ends = append(ends, plain.Len())
	}
	var comp bytes.Buffer
	zw, err := zlib.NewWriterLevel(&comp, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write([]byte(plain.String())); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil { // one final block: no block ends between events
		t.Fatal(err)
	}
	data := comp.Bytes()

	// cuts[i] is the shortest prefix of data that decodes through event i.
	decodedLen := func(prefix []byte) int {
		zr, err := zlib.NewReader(bytes.NewReader(prefix))
		if err != nil {
			return 0
		}
		out, _ := io.ReadAll(zr)
		return len(out)
	}
	cuts := make([]int, len(ends))
	k := 0
	for i, end := range ends {
		for k < len(data) && decodedLen(data[:k]) < end {
			k++
		}
		cuts[i] = k
	}
	if cuts[0] >= cuts[len(cuts)-1] {
		t.Fatalf("cut points %v: the events do not arrive apart", cuts)
	}

	pr, pw := io.Pipe()
	dec, coding, err := decodeStream([]string{"deflate"}, pr)
	if err != nil || coding != "deflate" {
		t.Fatalf("decodeStream: %q, %v", coding, err)
	}
	got := make(chan int, len(ends)) // events decoded so far
	go func() {
		prev := 0
		for i, c := range cuts {
			if _, err := pw.Write(data[prev:c]); err != nil {
				return
			}
			prev = c
			if n, ok := <-got; !ok || n <= i {
				return
			}
		}
		_, _ = pw.Write(data[prev:])
		pw.Close()
	}()
	done := make(chan error, 1)
	go func() {
		defer close(got)
		var out []byte
		buf := make([]byte, 4096)
		seen := 0
		for {
			n, err := dec.Read(buf)
			out = append(out, buf[:n]...)
			for seen < len(ends) && len(out) >= ends[seen] {
				seen++
				got <- seen
			}
			if err != nil {
				if errors.Is(err, io.EOF) && string(out) == plain.String() {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("decoding: %v", err)
		}
	case <-time.After(10 * time.Second):
		pw.CloseWithError(errors.New("test timed out"))
		<-done
		t.Fatal("the decoder held an event until more compressed bytes came: events would be timed per block, not per event")
	}
}
