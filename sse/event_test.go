package sse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEventAppendTo(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{name: "zero event", ev: Event{}, want: "data:\n\n"},
		{name: "data", ev: Event{Data: "hello"}, want: "data: hello\n\n"},
		{name: "data with LF", ev: Event{Data: "a\nb"}, want: "data: a\ndata: b\n\n"},
		{name: "data with CR", ev: Event{Data: "a\rb"}, want: "data: a\ndata: b\n\n"},
		{name: "data with CRLF", ev: Event{Data: "a\r\nb"}, want: "data: a\ndata: b\n\n"},
		{name: "data with LF CR", ev: Event{Data: "a\n\rb"}, want: "data: a\ndata:\ndata: b\n\n"},
		{
			name: "data with mixed line breaks", ev: Event{Data: "a\r\n\rb\n\r\nc"},
			want: "data: a\ndata:\ndata: b\ndata:\ndata: c\n\n",
		},
		{name: "data with trailing LF", ev: Event{Data: "a\n"}, want: "data: a\ndata:\n\n"},
		{name: "data with trailing CRLF", ev: Event{Data: "a\r\n"}, want: "data: a\ndata:\n\n"},
		{name: "data with trailing CR", ev: Event{Data: "a\r"}, want: "data: a\ndata:\n\n"},
		{name: "data of one LF", ev: Event{Data: "\n"}, want: "data:\ndata:\n\n"},
		{name: "data with leading space", ev: Event{Data: " a"}, want: "data:  a\n\n"},
		{name: "data lines with leading spaces", ev: Event{Data: " a\n  b"}, want: "data:  a\ndata:   b\n\n"},
		{name: "data that looks like fields", ev: Event{Data: "event: admin\nid: 1"}, want: "data: event: admin\ndata: id: 1\n\n"},
		{name: "data with NUL", ev: Event{Data: "a\x00b"}, want: "data: a\x00b\n\n"},
		{name: "id and type", ev: Event{ID: "42", Type: "tick", Data: "x"}, want: "id: 42\nevent: tick\ndata: x\n\n"},
		{name: "id with leading space", ev: Event{ID: " 42", Data: "x"}, want: "id:  42\ndata: x\n\n"},
		{name: "retry", ev: Event{Retry: 1500 * time.Millisecond, Data: "x"}, want: "retry: 1500\ndata: x\n\n"},
		{name: "retry rounded down", ev: Event{Retry: 1500*time.Millisecond + 999*time.Microsecond, Data: "x"}, want: "retry: 1500\ndata: x\n\n"},
		{name: "retry below a millisecond", ev: Event{Retry: time.Microsecond, Data: "x"}, want: "retry: 1\ndata: x\n\n"},
		{name: "comment", ev: Event{Comment: "hi", Data: "x"}, want: ": hi\ndata: x\n\n"},
		{name: "comment lines", ev: Event{Comment: "a\nb\r\nc\rd", Data: "x"}, want: ": a\n: b\n: c\n: d\ndata: x\n\n"},
		{name: "comment cannot end the block", ev: Event{Comment: "a\n\ndata: evil", Data: "x"}, want: ": a\n:\n: data: evil\ndata: x\n\n"},
		{
			name: "every field", ev: Event{ID: "7", Type: "t", Data: "d", Retry: time.Second, Comment: "c"},
			want: ": c\nid: 7\nevent: t\nretry: 1000\ndata: d\n\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ev.AppendTo([]byte("prefix"))
			if err != nil {
				t.Fatalf("AppendTo: %v", err)
			}
			if string(got) != "prefix"+tc.want {
				t.Errorf("AppendTo = %q, want %q", got, "prefix"+tc.want)
			}
			text, err := tc.ev.Encode()
			if err != nil || string(text) != tc.want {
				t.Errorf("Encode = %q, %v; want %q", text, err, tc.want)
			}
			var buf bytes.Buffer
			n, err := tc.ev.WriteTo(&buf)
			if err != nil || buf.String() != tc.want || n != int64(len(tc.want)) {
				t.Errorf("WriteTo wrote %q (n=%d), %v; want %q", buf.String(), n, err, tc.want)
			}
			// What the encoder writes is exactly one event for a receiver.
			if got := parseWith(bytes.NewReader(text), -1); len(got.events) != 1 {
				t.Errorf("a receiver sees %d events, want 1", len(got.events))
			}
		})
	}
}

func TestEventRejectsUnsafeFields(t *testing.T) {
	tests := []struct {
		name  string
		ev    Event
		field string
	}{
		{name: "id with LF", ev: Event{ID: "1\n2"}, field: "id"},
		{name: "id with CR", ev: Event{ID: "1\r2"}, field: "id"},
		{name: "id with CRLF", ev: Event{ID: "1\r\nevent: admin"}, field: "id"},
		{name: "id with NUL", ev: Event{ID: "1\x002"}, field: "id"},
		{name: "type with LF", ev: Event{Type: "a\ndata: x"}, field: "event"},
		{name: "type with CR", ev: Event{Type: "a\r"}, field: "event"},
		{name: "type with NUL", ev: Event{Type: "\x00"}, field: "event"},
		{name: "negative retry", ev: Event{Retry: -time.Millisecond}, field: "retry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			got, err := tc.ev.AppendTo(dst)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("AppendTo error %v, want a *FieldError for %q", err, tc.field)
			}
			if !errors.Is(err, ErrInvalidField) {
				t.Errorf("errors.Is(%v, ErrInvalidField) = false", err)
			}
			if string(got) != "prefix" || len(got) != len(dst) {
				t.Errorf("AppendTo appended: %q", got)
			}
			if err := tc.ev.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("Validate() = %v", err)
			}
			if text, err := tc.ev.Encode(); err == nil || len(text) != 0 {
				t.Errorf("Encode = %q, %v; want nothing and an error", text, err)
			}
			var buf bytes.Buffer
			if n, err := tc.ev.WriteTo(&buf); err == nil || n != 0 || buf.Len() != 0 {
				t.Errorf("WriteTo wrote %q (n=%d), %v", buf.String(), n, err)
			}
		})
	}
}

func TestAppendComment(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{name: "heartbeat", text: "keep-alive", want: ": keep-alive\n\n"},
		{name: "empty", text: "", want: ":\n\n"},
		{name: "lines", text: "a\nb\r\nc\rd", want: ": a\n: b\n: c\n: d\n\n"},
		{name: "injection attempt", text: "x\n\ndata: pwned\n\n", want: ": x\n:\n: data: pwned\n:\n:\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendComment([]byte("prefix"), tc.text)
			if string(got) != "prefix"+tc.want {
				t.Errorf("AppendComment = %q, want %q", got, "prefix"+tc.want)
			}
			if p := parseWith(bytes.NewReader(got[len("prefix"):]), -1); len(p.events) != 0 {
				t.Errorf("a comment dispatched %q", p.events)
			}
		})
	}
}

func TestAppendRetry(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{name: "seconds", d: 3 * time.Second, want: "retry: 3000\n\n"},
		{name: "rounded down", d: 10*time.Millisecond + 999*time.Microsecond, want: "retry: 10\n\n"},
		{name: "zero", d: 0, want: "retry: 0\n\n"},
		{name: "negative written as zero", d: -time.Second, want: "retry: 0\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendRetry(nil, tc.d)
			if string(got) != tc.want {
				t.Errorf("AppendRetry = %q, want %q", got, tc.want)
			}
			p := parseWith(bytes.NewReader(got), -1)
			if len(p.events) != 0 || !p.retrySet || p.retry != max(tc.d, 0).Truncate(time.Millisecond) {
				t.Errorf("receiver: events %q, retry %v %v", p.events, p.retry, p.retrySet)
			}
		})
	}
}

// TestEventPayloadCannotInject encodes hostile payloads and checks that a
// receiver sees exactly one event, with the payload as its data.
func TestEventPayloadCannotInject(t *testing.T) {
	tests := []struct {
		name     string
		ev       Event
		wantData string
	}{
		{name: "LF", ev: Event{Data: "x\n\nevent: admin\ndata: pwned"}, wantData: "x\n\nevent: admin\ndata: pwned"},
		{name: "CR", ev: Event{Data: "x\r\rid: 666\rdata: pwned"}, wantData: "x\n\nid: 666\ndata: pwned"},
		{name: "CRLF", ev: Event{Data: "x\r\n\r\nretry: 1\r\ndata: pwned\r\n\r\n"}, wantData: "x\n\nretry: 1\ndata: pwned\n\n"},
		{name: "in a comment", ev: Event{Comment: "c\n\nevent: admin\ndata: pwned\n", Data: "x"}, wantData: "x"},
		{name: "BOM and colons", ev: Event{Data: "\uFEFF:\n:data: x\n\n"}, wantData: "\uFEFF:\n:data: x\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.ev.Encode()
			if err != nil {
				t.Fatal(err)
			}
			// Behind another event, as on a real stream.
			stream := append([]byte("id: 1\ndata: before\n\n"), b...)
			p := parseWith(bytes.NewReader(stream), -1)
			if len(p.events) != 2 {
				t.Fatalf("receiver saw %d events, want 2: %q", len(p.events), p.events)
			}
			got := p.events[1]
			if got.Data != tc.wantData || got.Type != "message" || got.ID != "1" {
				t.Errorf("receiver saw %+v, want data %q of type message and ID 1", got, tc.wantData)
			}
			if p.retrySet {
				t.Errorf("payload set the reconnection time to %v", p.retry)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	e := Event{
		ID:   "1732576812345-0",
		Type: "tick",
		Data: `{"topic":"prices","seq":1234,"value":"42.17"}` + "\n" + `{"more":true}`,
	}
	dst := make([]byte, 0, 256)
	b.SetBytes(int64(e.encodedSizeHint()))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = e.AppendTo(dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	if !strings.HasSuffix(string(dst), "\n\n") {
		b.Fatal("not an event")
	}
}

func TestEncodedLenMatchesEncoding(t *testing.T) {
	for _, e := range []Event{
		{},
		{Data: "a"},
		{ID: "7", Type: "chat.message", Data: "one\ntwo\r\nthree\rfour"},
		{Data: "\n\n\r\r\n"},
		{Comment: "c1\nc2", Data: "x", Retry: 1500 * time.Millisecond},
		{Data: strings.Repeat("\n", 1000)},
	} {
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if got := e.EncodedLen(); got != len(b) {
			t.Errorf("%+v: EncodedLen %d, encoding %d bytes", e, got, len(b))
		}
	}
}

func FuzzEncodedLen(f *testing.F) {
	f.Add("id", "type", "da\nta\r\nx\r", "c")
	f.Fuzz(func(t *testing.T, id, typ, data, comment string) {
		e := Event{ID: id, Type: typ, Data: data, Comment: comment}
		b, err := e.Encode()
		if err != nil {
			return
		}
		if got := e.EncodedLen(); got != len(b) {
			t.Fatalf("EncodedLen %d, encoding %d bytes", got, len(b))
		}
	})
}
