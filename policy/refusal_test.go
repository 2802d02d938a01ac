package policy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTokenMissing(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteProblem(rec, httptest.NewRequest("GET", "/events", nil), TokenMissing("topic \"a\" needs a token"))
	p := decodeProblem(t, rec.Body)
	if rec.Code != 401 || p.Code != CodeTokenMissing || p.Detail != `topic "a" needs a token` {
		t.Fatalf("got %d %+v", rec.Code, p)
	}
	if got := rec.Header().Values("Www-Authenticate"); len(got) != 1 || got[0] != `Bearer realm="sseguard"` {
		t.Fatalf("WWW-Authenticate %q", got)
	}
}

func TestAllowMethods(t *testing.T) {
	h := AllowMethods("GET", "HEAD")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		method string
		want   int
	}{
		{"GET", 204},
		{"HEAD", 204},
		{"POST", 405},
		{"DELETE", 405},
		{"get", 405}, // methods are case-sensitive (RFC 9110 §9.1)
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/api/poll", nil))
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			if tt.want != 405 {
				return
			}
			if got := rec.Header().Values("Allow"); len(got) != 1 || got[0] != "GET, HEAD" {
				t.Fatalf("Allow %q", got)
			}
			if p := decodeProblem(t, rec.Body); p.Code != CodeMethodNotAllowed || p.Detail != tt.method+" is not allowed here; use GET, HEAD" {
				t.Fatalf("problem %+v", p)
			}
		})
	}
}

func TestCheckOrigin(t *testing.T) {
	global := []string{"https://app.example"}
	tests := []struct {
		name, origin string
		principal    []string
		wantACAO     string
		refused      bool
	}{
		{"no origin", "", nil, "", false},
		{"same origin", "https://hub.example", nil, "", false},
		{"allowed", "https://app.example", []string{"https://app.example"}, "https://app.example", false},
		{"not granted", "https://app.example", nil, "", true},
		{"not global", "https://evil.example", []string{"https://evil.example"}, "", true},
		{"null", "null", []string{"null"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://hub.example/events", nil)
			r.TLS = &tls.ConnectionState{}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			rec := httptest.NewRecorder()
			prob := CheckOrigin(rec, r, global, tt.principal)
			if (prob != nil) != tt.refused {
				t.Fatalf("problem %v, want refused %v", prob, tt.refused)
			}
			if prob != nil && (prob.Status != 403 || prob.Code != CodeOriginForbidden) {
				t.Fatalf("problem %d %s", prob.Status, prob.Code)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.wantACAO {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tt.wantACAO)
			}
		})
	}
}
