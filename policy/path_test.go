package policy

import (
	"net/url"
	"testing"
)

func TestUncleanPath(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		clean bool
	}{
		{"/events", true},
		{"/api/poll", true},
		{"/a/b/", true},
		{"/caf%C3%A9", true},
		{"/x/../events", false},
		{"/./events", false},
		{"/events/.", false},
		{"//events", false},
		{"/x/%2e%2e/events", false},
		{"/.%2E/events", false},
		{"/events%2Fsecret", false},
		{"/a%5cb", false},
		{"/a%252e", false},
		{"/a\\b", false},
		{"/api/..;/events", false},
		{"/a%00b", false},
		{"/a%0d%0ab", false},
		{"*", false},
	} {
		u, err := url.ParseRequestURI(tc.raw)
		if err != nil {
			u = &url.URL{Path: tc.raw}
		}
		if why := UncleanPath(u); (why == "") != tc.clean {
			t.Errorf("%q: UncleanPath says %q, want clean=%v", tc.raw, why, tc.clean)
		}
	}
}

func FuzzUncleanPath(f *testing.F) {
	for _, s := range []string{"/events", "/x/../y", "/%2e%2e/", "//a", "/a;b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil || UncleanPath(u) != "" {
			return
		}
		// A clean path is one no hop can resolve elsewhere: cleaning it
		// again changes nothing, and it holds no encoded separator.
		if u.Path != "/" && (len(u.Path) == 0 || u.Path[0] != '/') {
			t.Fatalf("%q passed without a leading slash", raw)
		}
		for _, seg := range splitSegments(u.Path) {
			if seg == "." || seg == ".." {
				t.Fatalf("%q passed with a dot segment", raw)
			}
		}
	})
}

func splitSegments(p string) []string {
	var segs []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			segs = append(segs, p[start:i])
			start = i + 1
		}
	}
	return segs
}
