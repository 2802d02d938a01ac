package policy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a ResponseWriter that keeps its header map between
// uses (cleared), as net/http's own does per request, so that the
// benchmark measures the policy and not a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkHardenJSON201 is the policy's share of a publish's 201: Harden
// around a handler that sets Content-Type application/json and answers.
func BenchmarkHardenJSON201(b *testing.B) {
	body := []byte(`{"id":"1"}` + "\n")
	h := Harden(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	}))
	r := httptest.NewRequest("POST", "/api/publish", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
	if w.code != http.StatusCreated {
		b.Fatalf("status %d", w.code)
	}
}
