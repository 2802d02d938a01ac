package policy

import (
	"net/http"
	"testing"
)

func TestProfilesDocumentEveryHeader(t *testing.T) {
	for _, p := range []*Profile{Strict, Baseline} {
		for _, k := range []Kind{KindStream, KindJSON, KindProblem, KindPage} {
			seen := map[string]bool{}
			for _, h := range p.Headers(k, 1, 1) {
				if h.Reason == "" {
					t.Errorf("%s %s: %s has no reason", p.Name, k, h.Name)
				}
				if seen[http.CanonicalHeaderKey(h.Name)] {
					t.Errorf("%s %s: %s listed twice", p.Name, k, h.Name)
				}
				seen[http.CanonicalHeaderKey(h.Name)] = true
			}
			for _, must := range []string{"Content-Type", "X-Content-Type-Options", "Cache-Control"} {
				if !seen[must] {
					t.Errorf("%s %s: %s missing", p.Name, k, must)
				}
			}
		}
		if csp, ok := p.Header(KindPage, "Content-Security-Policy"); !ok {
			t.Errorf("%s: page has no CSP", p.Name)
		} else if issues := ParseCSP(csp.Value).Lint(); len(issues) > 0 {
			t.Errorf("%s: page CSP fails its own lint: %v", p.Name, issues)
		}
	}
}

func TestBaselineIsTheGuideSet(t *testing.T) {
	want := map[string]string{
		"Content-Type":            "text/event-stream",
		"Cache-Control":           "no-cache",
		"Connection":              "keep-alive",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'self'; connect-src 'self'; script-src 'self'",
	}
	got := Baseline.Headers(KindStream, 1, 1)
	if len(got) != len(want) {
		t.Fatalf("baseline stream headers = %v, want %v", got, want)
	}
	for _, h := range got {
		if want[h.Name] != h.Value {
			t.Errorf("%s = %q, want %q", h.Name, h.Value, want[h.Name])
		}
	}
}

func TestApplyIsVersionAware(t *testing.T) {
	tests := []struct {
		name         string
		major, minor int
		connection   bool
	}{
		{"HTTP/1.0", 1, 0, false},
		{"HTTP/1.1", 1, 1, true},
		{"HTTP/2", 2, 0, false},
		{"HTTP/3", 3, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, name := range ConnectionSpecific {
				h.Set(name, "x")
			}
			h.Add("Cache-Control", "public")
			h.Set("Content-Length", "5")
			Strict.Apply(h, KindStream, tt.major, tt.minor)
			if got := h.Get("Connection"); (got == "keep-alive") != tt.connection {
				t.Errorf("Connection = %q, want keep-alive: %v", got, tt.connection)
			}
			if tt.major >= 2 {
				for _, name := range ConnectionSpecific {
					if v, ok := h[name]; ok {
						t.Errorf("%s = %q left on %s", name, v, tt.name)
					}
				}
			}
			if got := h.Values("Cache-Control"); len(got) != 1 {
				t.Errorf("Cache-Control = %q, want one value", got)
			}
			if _, ok := h["Content-Length"]; ok {
				t.Error("Content-Length left on a stream")
			}
		})
	}
}

func TestLookup(t *testing.T) {
	for name, want := range map[string]*Profile{"": Strict, "strict": Strict, "Baseline": Baseline} {
		if got, err := Lookup(name); err != nil || got != want {
			t.Errorf("Lookup(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := Lookup("lax"); err == nil {
		t.Error("Lookup(lax) succeeded")
	}
}
