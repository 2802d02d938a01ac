package policy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDecideOrigin(t *testing.T) {
	global := []string{"https://app.example", "https://other.example"}
	tests := []struct {
		name, host, origin string
		tls                bool
		principal          []string
		want               OriginDecision
	}{
		{"no origin", "hub.example", "", false, nil, NoOrigin},
		{"same origin http", "hub.example:8080", "http://hub.example:8080", false, nil, SameOrigin},
		{"same origin default port", "hub.example", "http://hub.example", false, nil, SameOrigin},
		{"same origin https", "hub.example", "https://hub.example", true, nil, SameOrigin},
		{"scheme differs", "hub.example", "https://hub.example", false, nil, CrossOriginRefused},
		{"allowed by both", "hub.example", "https://app.example", true, []string{"https://app.example"}, CrossOriginAllowed},
		{"not in principal", "hub.example", "https://app.example", true, []string{"https://other.example"}, CrossOriginRefused},
		{"not in global", "hub.example", "https://evil.example", true, []string{"https://evil.example"}, CrossOriginRefused},
		{"null", "hub.example", "null", true, []string{"null"}, CrossOriginRefused},
		{"star", "hub.example", "*", true, []string{"*"}, CrossOriginRefused},
		{"lookalike suffix", "hub.example", "https://app.example.evil", true, []string{"https://app.example"}, CrossOriginRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/events", nil)
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if got := DecideOrigin(r, append(global, "null", "*"), tt.principal); got != tt.want {
				t.Fatalf("DecideOrigin = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAllowOriginThroughHarden(t *testing.T) {
	h := Harden(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		AllowOrigin(w, "https://app.example")
		if r.URL.Query().Has("refuse") {
			WriteProblem(w, r, NewProblem(403, CodeOriginForbidden, "no"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example",
		"Access-Control-Allow-Credentials": "true",
		"Cross-Origin-Resource-Policy":     "cross-origin",
		"Vary":                             "Origin",
	}
	for k, v := range want {
		if got := rec.Header().Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?refuse", nil))
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("a refusal is readable cross-origin: ACAO %q", got)
	}
	if got := rec.Header().Get("Cross-Origin-Resource-Policy"); got != "same-origin" {
		t.Errorf("refusal CORP = %q", got)
	}
	if got := rec.Header().Get("Vary"); got != "Origin" {
		t.Errorf("refusal Vary = %q", got)
	}
}

func TestObserveSeesStatusAndCode(t *testing.T) {
	p := Strict.Clone()
	var got []string
	p.Observe = func(r *http.Request, status int, code string) { got = append(got, http.StatusText(status)+"/"+code) }
	h := Middleware(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, accept := range []string{"*/*", "text/event-stream"} {
		r := httptest.NewRequest("GET", "/events", nil)
		r.Header.Set("Accept", accept)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	// The refusal with its code, then the quiet handler's 200, which the
	// middleware writes itself so that its headers are enforced.
	if len(got) != 2 || got[0] != "Not Acceptable/accept_not_acceptable" || got[1] != "OK/" {
		t.Fatalf("observed %q", got)
	}
}
