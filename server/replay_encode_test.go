package server

import (
	"bytes"
	"testing"

	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/store"
)

// TestSSETargetEncodesAsHub: a replay writes each event with the bytes a
// live subscriber gets for it (hub.Frame.AppendTo), whether the reader's
// cursor is the event's ID (encoded straight into the write buffer), empty,
// or a cursor of its own.
func TestSSETargetEncodesAsHub(t *testing.T) {
	events := []store.Event{
		{ID: "7", Topic: "a", Data: "plain"},
		{ID: "8", Topic: "a", Type: "price", Data: "line one\nline two\r\nline three\rend"},
		{ID: "9", Topic: "a", Data: ""},
		{ID: "10", Topic: "a", Type: "t", Data: "trailing newline\n"},
		{ID: "11", Topic: "a", Type: "bad\ntype", Data: "refused by the encoder"},
	}
	for _, cursorOf := range []struct {
		name string
		f    func(store.Event) string
	}{
		{"own id", func(e store.Event) string { return e.ID }},
		{"empty", func(store.Event) string { return "" }},
		{"vector", func(e store.Event) string { return "v1:" + e.ID + ",b:3" }},
	} {
		t.Run(cursorOf.name, func(t *testing.T) {
			var tg sseTarget
			var want []byte
			for _, e := range events {
				c := cursorOf.f(e)
				if err := tg.event(e, c); err != nil {
					t.Fatal(err)
				}
				if f := hub.NewFrame(e); f != nil {
					want = f.AppendTo(want, c)
				}
			}
			if !bytes.Equal(tg.buf, want) {
				t.Errorf("replay wrote\n%q\nwant\n%q", tg.buf, want)
			}
			if !bytes.Contains(want, []byte("line three")) || bytes.Contains(want, []byte("refused")) {
				t.Errorf("reference encoding unexpected: %q", want)
			}
		})
	}
}
