package sse

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// received returns what a receiver sees of e once encoded and parsed: line
// breaks in data and comments become LF, an empty type is "message", retry is
// in whole milliseconds, and text is decoded as the WHATWG UTF-8 decoder does.
func received(e Event) Event {
	lf := strings.NewReplacer("\r\n", "\n", "\r", "\n")
	e.ID = whatwgDecode([]byte(e.ID))
	e.Type = whatwgDecode([]byte(e.Type))
	if e.Type == "" {
		e.Type = "message"
	}
	e.Data = lf.Replace(whatwgDecode([]byte(e.Data)))
	e.Comment = lf.Replace(whatwgDecode([]byte(e.Comment)))
	if e.Retry > 0 {
		e.Retry = max(e.Retry.Truncate(time.Millisecond), time.Millisecond)
	}
	return e
}

// checkRoundTrip checks that a valid e encodes to one event that parses as
// received(e).
func checkRoundTrip(t *testing.T, e Event) {
	t.Helper()
	b, err := e.AppendTo(nil)
	if err != nil {
		t.Fatalf("AppendTo(%+q): %v", e, err)
	}
	p := parseWith(bytes.NewReader(b), -1)
	if p.err != nil || len(p.events) != 1 {
		t.Fatalf("%q parsed as %q, %v; want one event", b, p.events, p.err)
	}
	if want := received(e); p.events[0] != want {
		t.Fatalf("round trip of %q\n got %+q\nwant %+q", b, p.events[0], want)
	}
	if p.lastID != p.events[0].ID || p.retrySet != (e.Retry > 0) {
		t.Fatalf("parser state: last event ID %q, retry %v %v", p.lastID, p.retry, p.retrySet)
	}
}

// checkParsed checks what must hold of any parse, whatever the input.
func checkParsed(t *testing.T, p parsed) {
	t.Helper()
	text := func(what, s, forbidden string) {
		t.Helper()
		if !utf8.ValidString(s) {
			t.Fatalf("%s %q is not valid UTF-8", what, s)
		}
		if strings.ContainsAny(s, forbidden) {
			t.Fatalf("%s %q holds one of %q", what, s, forbidden)
		}
	}
	for _, e := range p.events {
		text("ID", e.ID, "\x00\r\n")
		text("type", e.Type, "\r\n")
		text("data", e.Data, "\r")
		text("comment", e.Comment, "\r")
		if e.Type == "" || e.Retry < 0 || e.Retry%time.Millisecond != 0 {
			t.Fatalf("event %+q", e)
		}
		// A parsed event that the encoder accepts encodes back to itself.
		if e.Validate() == nil {
			checkRoundTrip(t, e)
		}
	}
	text("LastEventID()", p.lastID, "\x00\r\n")
	for _, c := range p.comments {
		text("comment", c, "\r\n")
	}
	if p.err != nil && !errors.Is(p.err, ErrEventTooLarge) {
		t.Fatalf("error %v", p.err)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseTests {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte("data: a\r"))
	f.Add([]byte("\xEF\xBB\xBF\xEF\xBB\xBFdata: x\r\n\r\n"))
	f.Add([]byte("id: 1\x00\nretry: 18446744073709551616\ndata\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, limit := range []int{0, 16} {
			whole := parseWith(bytes.NewReader(in), limit)
			checkParsed(t, whole)
			bytewise := parseWith(iotest.OneByteReader(bytes.NewReader(in)), limit)
			if !reflect.DeepEqual(whole, bytewise) {
				t.Fatalf("limit %d: one byte at a time\n got %+v\nwant %+v", limit, bytewise, whole)
			}
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("1", "message", "hello", "", int64(0))
	f.Add("", "", "", "", int64(0))
	f.Add("42", "tick", "x\n\nevent: admin\ndata: pwned", "c\r\n", int64(1500*time.Millisecond))
	f.Add("a\nb", "t", "d", "", int64(0))
	f.Add("a", "t\x00", "d", "", int64(0))
	f.Add("a", "t", "d", "", int64(-1))
	f.Add(" ", " ", " ", " ", int64(999999))
	f.Fuzz(func(t *testing.T, id, typ, data, comment string, retry int64) {
		e := Event{ID: id, Type: typ, Data: data, Comment: comment, Retry: time.Duration(retry)}
		if err := e.Validate(); err != nil {
			got, err2 := e.AppendTo([]byte("prefix"))
			if string(got) != "prefix" || err2 == nil {
				t.Fatalf("invalid event %+q (%v): AppendTo = %q, %v", e, err, got, err2)
			}
			return
		}
		checkRoundTrip(t, e)
	})
}

// TestRoundTripProperty encodes generated events, alone and as one stream,
// and checks that a receiver sees each as it was sent.
func TestRoundTripProperty(t *testing.T) {
	pieces := []string{
		"", "a", "data", " ", "  ", ":", ": ", "\n", "\r", "\r\n", "\n\r", "\uFEFF",
		"é", "…", "😀", "\uFFFD", "\x00", "\t", "id: 1", "event: admin", "retry: 1",
	}
	rng := rand.New(rand.NewPCG(7, 11))
	text := func(safe bool) string {
		var b strings.Builder
		for range rng.IntN(6) {
			p := pieces[rng.IntN(len(pieces))]
			if safe && strings.ContainsAny(p, "\r\n\x00") {
				continue
			}
			b.WriteString(p)
		}
		return b.String()
	}
	for range 200 {
		var stream []byte
		var sent []Event
		for range 1 + rng.IntN(8) {
			e := Event{ID: text(true), Type: text(true), Data: text(false), Comment: text(false)}
			if rng.IntN(3) == 0 {
				e.Retry = time.Duration(rng.Int64N(1e6)) * time.Millisecond
			}
			checkRoundTrip(t, e)
			var err error
			if stream, err = e.AppendTo(stream); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, e)
		}

		p := parseWith(bytes.NewReader(stream), 0)
		if p.err != nil || len(p.events) != len(sent) {
			t.Fatalf("%q: %d events, %v; want %d", stream, len(p.events), p.err, len(sent))
		}
		id, retry := "", time.Duration(-1)
		for i, e := range sent {
			want := received(e)
			if e.ID == "" {
				want.ID = id // no id field: the last event ID persists
			}
			id = want.ID
			if e.Retry > 0 {
				retry = want.Retry
			}
			if p.events[i] != want {
				t.Fatalf("event %d of %q\n got %+q\nwant %+q", i, stream, p.events[i], want)
			}
		}
		if p.lastID != id || (retry >= 0) != p.retrySet || (p.retrySet && p.retry != retry) {
			t.Fatalf("parser state: last event ID %q, retry %v %v", p.lastID, p.retry, p.retrySet)
		}
	}
}
