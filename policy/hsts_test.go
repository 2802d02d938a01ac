package policy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/policy"
)

func TestParseHSTS(t *testing.T) {
	tests := []struct {
		v      string
		maxAge int64
		err    string
	}{
		{"max-age=31536000", 31536000, ""},
		{`max-age="15552000"; includeSubDomains; preload`, 15552000, ""},
		{" MAX-AGE = 0 ", 0, ""},
		{"max-age=300; report-uri=x", 300, ""}, // unknown directives are ignored, as browsers do
		{"", 0, "no max-age directive"},
		{"includeSubDomains", 0, "no max-age directive"},
		{"max-age=1y", 0, "not a number of seconds"},
		{"max-age=-5", 0, "not a number of seconds"},
		{"max-age=+5", 0, "not a number of seconds"},
		{"max-age=", 0, "neither a token nor a quoted string"},
		{"max-age=1; Max-Age=2", 0, "appears twice"},
		{"max-age=1; preload=yes", 0, "takes no value"},
		{"max age=1", 0, "not a directive name"},
		{"max-age=1; x=a b", 0, "neither a token nor a quoted string"},
	}
	for _, tt := range tests {
		n, err := policy.ParseHSTS(tt.v)
		switch {
		case tt.err == "" && (err != nil || n != tt.maxAge):
			t.Errorf("ParseHSTS(%q) = %d, %v; want %d", tt.v, n, err, tt.maxAge)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseHSTS(%q) error %v; want %q", tt.v, err, tt.err)
		}
	}
}

// TestHSTSOnEveryResponse: a profile with HSTS sends it on streams,
// JSON, problems, pages and responses of no known kind, once each; the
// shared profiles are untouched, and an empty value removes it.
func TestHSTSOnEveryResponse(t *testing.T) {
	p := policy.Strict.Clone()
	p.SetHSTS("max-age=1")
	p.SetHSTS(policy.DefaultHSTS) // replaces, never duplicates
	if _, ok := policy.Strict.Header(policy.KindPage, policy.HSTSHeader); ok {
		t.Fatal("SetHSTS changed the shared strict profile")
	}
	for _, ct := range []string{"text/event-stream", "application/json", "application/problem+json", "text/html", "image/png", ""} {
		rec := httptest.NewRecorder()
		policy.Harden(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(http.StatusOK)
		})).ServeHTTP(rec, httptest.NewRequest("GET", "https://hub.test/", nil))
		if got := rec.Result().Header.Values(policy.HSTSHeader); len(got) != 1 || got[0] != policy.DefaultHSTS {
			t.Errorf("Content-Type %q: HSTS %q, want one %q", ct, got, policy.DefaultHSTS)
		}
	}
	p.SetHSTS("")
	rec := httptest.NewRecorder()
	policy.Harden(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Result().Header.Values(policy.HSTSHeader); len(got) != 0 {
		t.Errorf("after SetHSTS(\"\"): HSTS %q", got)
	}
}
