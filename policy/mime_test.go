package policy

import (
	"maps"
	"testing"
)

func TestExtractMIMEType(t *testing.T) {
	tests := []struct {
		name    string
		values  []string
		essence string // "" for not ok
		charset string
	}{
		{"plain", []string{"text/event-stream"}, "text/event-stream", ""},
		{"charset", []string{"text/event-stream; charset=utf-8"}, "text/event-stream", "utf-8"},
		{"charset upper", []string{"Text/Event-Stream; Charset=UTF-8"}, "text/event-stream", "utf-8"},
		{"quoted charset", []string{`text/event-stream; charset="latin1"`}, "text/event-stream", "latin1"},
		{"last line wins", []string{"text/event-stream", "text/plain"}, "text/plain", ""},
		{"last element wins", []string{"text/plain, text/event-stream"}, "text/event-stream", ""},
		{"*/* skipped", []string{"text/event-stream, */*"}, "text/event-stream", ""},
		{"invalid skipped", []string{"text/event-stream", "x bogus"}, "text/event-stream", ""},
		{"charset kept for same essence", []string{"text/event-stream; charset=utf-8", "text/event-stream"}, "text/event-stream", "utf-8"},
		{"charset dropped for other essence", []string{"text/plain; charset=latin1", "text/event-stream"}, "text/event-stream", ""},
		{"comma in quotes", []string{`text/event-stream; a="x,text/plain"`}, "text/event-stream", ""},
		{"bad parameter skipped", []string{"text/event-stream; bogus; charset=utf-8"}, "text/event-stream", "utf-8"},
		{"first repeated parameter wins", []string{"text/event-stream; charset=utf-8; charset=latin1"}, "text/event-stream", "utf-8"},
		{"none", nil, "", ""},
		{"empty", []string{""}, "", ""},
		{"no subtype", []string{"text/"}, "", ""},
		{"space in type", []string{"text /event-stream"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := ExtractMIMEType(tt.values)
			if ok != (tt.essence != "") || m.Essence != tt.essence {
				t.Fatalf("ExtractMIMEType(%q) = %q, %v; want %q", tt.values, m.Essence, ok, tt.essence)
			}
			if got := m.Charset(); got != tt.charset {
				t.Errorf("charset %q, want %q", got, tt.charset)
			}
		})
	}
}

func TestExtractMIMETypeDoesNotChangeParsedParams(t *testing.T) {
	// The charset carried over from an earlier element goes into a copy.
	m, _ := ExtractMIMEType([]string{"text/event-stream; charset=utf-8, text/event-stream; a=b"})
	want := map[string]string{"a": "b", "charset": "utf-8"}
	if !maps.Equal(m.Params, want) {
		t.Fatalf("params %v, want %v", m.Params, want)
	}
}

func FuzzExtractMIMEType(f *testing.F) {
	for _, s := range []string{"text/event-stream", `text/event-stream; charset="a\"b"`, "a/b, c/d;e=f", ";,\"", "*/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := ExtractMIMEType([]string{s})
		if !ok {
			return
		}
		again, ok2 := ParseMIMEType(m.Essence)
		if !ok2 || again.Essence != m.Essence {
			t.Fatalf("essence %q does not parse back", m.Essence)
		}
	})
}
