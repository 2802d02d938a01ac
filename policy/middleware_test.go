package policy

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func decodeProblem(t *testing.T, body io.Reader) Problem {
	t.Helper()
	var p Problem
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("body is not a problem: %v", err)
	}
	return p
}

func TestMiddlewareRefusesWithProblem(t *testing.T) {
	p := Strict.Clone()
	p.Fallback = "/api/poll?topic=news"
	called := false
	h := Middleware(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))

	tests := []struct {
		name   string
		accept string
	}{
		{"wildcard", "*/*"},
		{"json", "application/json"},
		{"missing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called = false
			req := httptest.NewRequest("GET", "/events", nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if called {
				t.Fatal("handler ran for a refused request")
			}
			res := rec.Result()
			if res.StatusCode != http.StatusNotAcceptable {
				t.Fatalf("status %d, want 406", res.StatusCode)
			}
			want := map[string]string{
				"Content-Type":           "application/problem+json",
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
				"Retry-After":            "30",
			}
			for k, v := range want {
				if got := res.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want exactly [%q]", k, got, v)
				}
			}
			for _, k := range []string{"X-Accel-Buffering", "Connection"} {
				if v := res.Header.Get(k); v != "" {
					t.Errorf("%s = %q on a problem response", k, v)
				}
			}
			prob := decodeProblem(t, res.Body)
			if prob.Status != 406 || prob.Code != CodeAcceptNotAcceptable || prob.Fallback != p.Fallback ||
				prob.Type != ProblemTypeBase+CodeAcceptNotAcceptable || prob.Title != "Not Acceptable" || prob.Detail == "" {
				t.Errorf("problem = %+v", prob)
			}
		})
	}
}

func TestMiddlewareLenientAcceptsWildcard(t *testing.T) {
	h := Middleware(Baseline)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "data: x\n\n")
	}))
	req := httptest.NewRequest("GET", "/events", nil)
	req.Header.Set("Accept", "*/*")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("baseline Cache-Control = %q", got)
	}
}

func TestMiddlewareEnforcesHeadersOverHandler(t *testing.T) {
	h := Middleware(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Cache-Control", "public, max-age=600")
		w.Header().Add("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", "100")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Del("X-Content-Type-Options")
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest("GET", "/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, hd := range Strict.Headers(KindStream, 1, 1) {
		if got := rec.Header().Values(hd.Name); len(got) != 1 || got[0] != hd.Value {
			t.Errorf("%s = %q, want exactly [%q]", hd.Name, got, hd.Value)
		}
	}
	for _, k := range []string{"Content-Length", "Content-Encoding"} {
		if v := rec.Header().Values(k); len(v) != 0 {
			t.Errorf("%s = %q on a stream", k, v)
		}
	}
}

func TestHardenAppliesKindByContentType(t *testing.T) {
	tests := []struct {
		ctype string
		kind  Kind
	}{
		{"application/json", KindJSON},
		{"text/html; charset=utf-8", KindPage},
		{"text/event-stream", KindStream},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			h := Harden(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				_, _ = io.WriteString(w, "x")
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			for _, hd := range Strict.Headers(tt.kind, 1, 1) {
				if got := rec.Header().Values(hd.Name); len(got) != 1 || got[0] != hd.Value {
					t.Errorf("%s = %q, want exactly [%q]", hd.Name, got, hd.Value)
				}
			}
		})
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	h := Harden(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		panic("secret internal state 0xdeadbeef")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	body := rec.Body.String()
	if strings.Contains(body, "deadbeef") || strings.Contains(body, "goroutine") {
		t.Fatalf("panic detail leaked to the client: %s", body)
	}
	prob := decodeProblem(t, strings.NewReader(body))
	if prob.Code != CodeInternal || prob.Status != 500 {
		t.Fatalf("problem = %+v", prob)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/problem+json" {
		t.Fatalf("Content-Type = %q", got)
	}
}

func TestPanicAfterBytesAbortsResponse(t *testing.T) {
	h := Middleware(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		panic("boom")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("body ended cleanly (%q); want an aborted response", body)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("read error: %v", err)
	}
	if string(body) != "data: one\n\n" {
		t.Fatalf("body before abort = %q", body)
	}
}

func TestWriteProblemHeadOmitsBody(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteProblem(rec, httptest.NewRequest("HEAD", "/", nil), NewProblem(404, CodeNotFound, "nothing here"))
	if rec.Code != 404 || rec.Body.Len() != 0 {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
}

func TestProblemRetryAfter(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{406, "30"}, {429, "30"}, {503, "30"}, {403, ""}, {500, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteProblem(rec, httptest.NewRequest("GET", "/", nil), NewProblem(tt.status, "x", ""))
		if got := rec.Header().Get("Retry-After"); got != tt.want {
			t.Errorf("status %d: Retry-After = %q, want %q", tt.status, got, tt.want)
		}
	}
	rec := httptest.NewRecorder()
	p := NewProblem(429, CodeRateLimited, "")
	p.RetryAfter = 1500_000_000 // 1.5 s rounds up
	WriteProblem(rec, httptest.NewRequest("GET", "/", nil), p)
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2", got)
	}
}

// TestHardenWritesTheHeaderOfAQuietHandler: a handler that returns without
// writing (a HEAD answered with headers only) still gets the profile's
// headers, which net/http would otherwise send as the handler left them.
func TestHardenWritesTheHeaderOfAQuietHandler(t *testing.T) {
	h := Harden(Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, method := range []string{"GET", "HEAD"} {
		t.Run(method, func(t *testing.T) {
			req, _ := http.NewRequest(method, srv.URL, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			for _, hd := range Strict.Headers(KindPage, 1, 1) {
				if got := res.Header.Values(hd.Name); len(got) != 1 || got[0] != hd.Value {
					t.Errorf("%s = %q, want exactly [%q]", hd.Name, got, hd.Value)
				}
			}
		})
	}
}

// TestPanicLoggedThroughWithLogger: the panic is one record of the logger
// given with WithLogger, in its format, with the stack as a field.
func TestPanicLoggedThroughWithLogger(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	h := Harden(Strict, WithLogger(log))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(errors.New("boom"))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one log record, got %d:\n%s", len(lines), out)
	}
	var rec struct {
		Level, Msg, Method, Path, Panic, Stack string
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("the record is not JSON: %v: %s", err, lines[0])
	}
	if rec.Level != "ERROR" || rec.Msg != "handler panic" || rec.Method != "GET" || rec.Path != "/x" ||
		rec.Panic != "boom" || !strings.Contains(rec.Stack, "middleware_test.go") {
		t.Errorf("record %+v", rec)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
