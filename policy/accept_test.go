package policy

import (
	"testing"
)

func TestAcceptsEventStream(t *testing.T) {
	tests := []struct {
		name    string
		accept  []string
		strict  bool
		lenient bool
	}{
		{"eventsource default", []string{"text/event-stream"}, true, true},
		{"upper case", []string{"Text/Event-Stream"}, true, true},
		{"with charset utf-8", []string{"text/event-stream; charset=UTF-8"}, true, true},
		{"quoted charset", []string{`text/event-stream;charset="utf-8"`}, true, true},
		{"other charset", []string{"text/event-stream; charset=latin1"}, false, false},
		{"q zero", []string{"text/event-stream;q=0"}, false, false},
		{"q zero point zero", []string{"text/event-stream;q=0.000"}, false, false},
		{"q small", []string{"text/event-stream;q=0.001"}, true, true},
		{"q with spaces", []string{"text/event-stream ; q=0.5"}, true, true},
		{"among others", []string{"application/json, text/event-stream;q=0.9"}, true, true},
		{"second header line", []string{"application/json", "text/event-stream"}, true, true},
		{"wildcard only", []string{"*/*"}, false, true},
		{"text wildcard", []string{"text/*"}, false, true},
		{"json only", []string{"application/json"}, false, false},
		{"missing header", nil, false, true},
		{"empty header", []string{""}, false, false},
		{"wildcard but stream excluded", []string{"*/*, text/event-stream;q=0"}, false, false},
		{"specific beats wildcard", []string{"text/event-stream;q=0.1, */*;q=0"}, true, true},
		{"bad q ignored element", []string{"text/event-stream;q=2"}, false, false},
		{"bad q other element kept", []string{"text/event-stream;q=abc, text/event-stream"}, true, true},
		{"malformed", []string{"text/event-stream/extra"}, false, false},
		{"accept extension after q", []string{"text/event-stream;q=1;ext=1"}, true, true},
		{"comma inside quotes", []string{`text/event-stream;foo="a,b";q=0`}, false, false},
		{"type wildcard with subtype", []string{"*/event-stream"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AcceptsEventStream(tt.accept, AcceptStrict); got != tt.strict {
				t.Errorf("strict: AcceptsEventStream(%q) = %v, want %v", tt.accept, got, tt.strict)
			}
			if got := AcceptsEventStream(tt.accept, AcceptLenient); got != tt.lenient {
				t.Errorf("lenient: AcceptsEventStream(%q) = %v, want %v", tt.accept, got, tt.lenient)
			}
		})
	}
}

func TestAcceptsJSON(t *testing.T) {
	tests := []struct {
		name   string
		accept []string
		want   bool
	}{
		{"missing", nil, true},
		{"json", []string{"application/json"}, true},
		{"any", []string{"*/*"}, true},
		{"application any", []string{"application/*"}, true},
		{"stream only", []string{"text/event-stream"}, false},
		{"json refused", []string{"application/json;q=0, */*"}, false},
		{"browser fetch default", []string{"*/*"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AcceptsJSON(tt.accept); got != tt.want {
				t.Errorf("AcceptsJSON(%q) = %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}

func TestParseQ(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1", 1000, true}, {"1.", 1000, true}, {"1.000", 1000, true}, {"0.5", 500, true},
		{"0.123", 123, true}, {"0", 0, true}, {"1.001", 0, false}, {"0.1234", 0, false},
		{"2", 0, false}, {".5", 0, false}, {"", 0, false}, {"0,5", 0, false}, {"-0", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseQ(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseQ(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseAccept(f *testing.F) {
	for _, s := range []string{"text/event-stream", "*/*;q=0.1", `a/b;x="y,z";q=1;e`, "text/event-stream;q=0", ",,;", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ranges := ParseAccept([]string{s})
		for _, mr := range ranges {
			if mr.Q < 0 || mr.Q > 1000 {
				t.Fatalf("q out of range: %+v", mr)
			}
			if mr.Type == "" || mr.Subtype == "" {
				t.Fatalf("empty type: %+v", mr)
			}
		}
		// Strict never accepts what lenient refuses.
		if AcceptsEventStream([]string{s}, AcceptStrict) && !AcceptsEventStream([]string{s}, AcceptLenient) {
			t.Fatalf("strict accepts %q but lenient refuses it", s)
		}
	})
}
