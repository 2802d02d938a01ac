package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http/httputil"
	"testing"
)

func dechunk(t testing.TB, pieces ...string) (string, bool, error) {
	t.Helper()
	var d dechunker
	var out []byte
	for _, p := range pieces {
		b := []byte(p)
		n, done, err := d.decode(b)
		out = append(out, b[:n]...)
		if done || err != nil {
			return string(out), done, err
		}
	}
	return string(out), false, nil
}

func TestDechunker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []string
		want   string
		done   bool
		err    bool
	}{
		{"one chunk", []string{"5\r\nhello\r\n"}, "hello", false, false},
		{"body end", []string{"5\r\nhello\r\n0\r\n\r\n"}, "hello", true, false},
		{"split everywhere", []string{"0", "f\r", "\ndata: abcdefghi", "\r", "\n0\r\n", "\r\n"}, "data: abcdefghi", true, false},
		{"hex case and extension", []string{"A;name=val\r\n0123456789\r\nb \r\nabcdefghijk\r\n"}, "0123456789abcdefghijk", false, false},
		{"bare LF", []string{"3\nabc\n0\n\n"}, "abc", true, false},
		{"trailers", []string{"2\r\nok\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"}, "ok", true, false},
		{"after the end is ignored", []string{"0\r\n\r\n5\r\nhello\r\n"}, "", true, false},
		{"no digits", []string{"\r\n"}, "", false, true},
		{"not hex", []string{"5g\r\n"}, "", false, true},
		{"digits after space", []string{"1 a\r\n"}, "", false, true},
		{"data not followed by CRLF", []string{"2\r\nabc"}, "ab", false, true},
		{"size too large", []string{"1000000000000000\r\n"}, "", false, true},
		{"control byte in extension", []string{"1;\x00\r\n"}, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, done, err := dechunk(t, tc.pieces...)
			if got != tc.want || done != tc.done || (err != nil) != tc.err {
				t.Fatalf("got %q done %v err %v; want %q done %v err %v", got, done, err, tc.want, tc.done, tc.err)
			}
		})
	}
}

func TestDechunkerLineBounds(t *testing.T) {
	long := "1;" + string(bytes.Repeat([]byte("x"), maxChunkLine)) + "\r\n"
	if _, _, err := dechunk(t, long); err == nil {
		t.Fatal("an endless extension was accepted")
	}
	trailer := "0\r\nX: " + string(bytes.Repeat([]byte("x"), maxTrailerBytes)) + "\r\n\r\n"
	if _, _, err := dechunk(t, trailer); err == nil {
		t.Fatal("an endless trailer was accepted")
	}
}

// FuzzDechunker checks that the incremental decoder reads a body the same
// however its bytes are split, and the same as net/http's reader whenever
// both read it whole.
func FuzzDechunker(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), uint8(3))
	f.Add([]byte("a;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n"), uint8(1))
	f.Add([]byte("3\nabc\n0\n\n"), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		whole, wdone, werr := dechunk(t, string(body))
		var pieces []string
		s := int(step%16) + 1
		for i := 0; i < len(body); i += s {
			pieces = append(pieces, string(body[i:min(i+s, len(body))]))
		}
		split, sdone, serr := dechunk(t, pieces...)
		if whole != split || wdone != sdone || (werr == nil) != (serr == nil) {
			t.Fatalf("whole %q %v %v, split by %d %q %v %v", whole, wdone, werr, s, split, sdone, serr)
		}
		std, stdErr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
		if wdone && werr == nil && stdErr == nil && string(std) != whole {
			t.Fatalf("net/http read %q, the dechunker %q", std, whole)
		}
	})
}

// BenchmarkDechunker decodes a read that holds 16 framed events of 200
// bytes, as a parked stream's relay does with each upstream read.
func BenchmarkDechunker(b *testing.B) {
	event := "id: 12345\ndata: " + string(bytes.Repeat([]byte("x"), 200-len("id: 12345\ndata: \n\n"))) + "\n\n"
	var framed []byte
	for range 16 {
		framed = fmt.Appendf(framed, "%x\r\n%s\r\n", len(event), event)
	}
	buf := make([]byte, len(framed))
	b.SetBytes(int64(len(framed)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, framed)
		var d dechunker
		if n, _, err := d.decode(buf); err != nil || n != 16*len(event) {
			b.Fatalf("decoded %d bytes, err %v", n, err)
		}
	}
}
