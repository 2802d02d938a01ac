package naive

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/sse"
)

// subscribe opens a stream of topic and returns a channel of its events and
// comments (comments as Event.Comment with empty Data); it ends when ctx
// ends.
func subscribe(t *testing.T, ctx context.Context, base, topic string) <-chan sse.Event {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?topic="+topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("subscribe %s: status %d, content type %q", topic, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sse.Event, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		p := sse.NewParser(resp.Body)
		p.OnComment = func(text string) { out <- sse.Event{Comment: text} }
		for {
			ev, err := p.Next()
			if err != nil {
				return
			}
			out <- ev
		}
	}()
	return out
}

func publish(t *testing.T, base, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/api/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		ID string `json:"id"`
	}
	if resp.StatusCode == http.StatusCreated {
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatalf("publish answer: %v", err)
		}
	}
	return resp.StatusCode, got.ID
}

// next returns the next event (not comment) from ch, or fails after d.
func next(t *testing.T, ch <-chan sse.Event, d time.Duration) (sse.Event, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return sse.Event{}, false
			}
			if ev.Data == "" && ev.Comment != "" {
				continue
			}
			return ev, true
		case <-timer.C:
			return sse.Event{}, false
		}
	}
}

func TestFanOut(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	a1 := subscribe(t, ctx, srv.URL, "a")
	a2 := subscribe(t, ctx, srv.URL, "a")
	b := subscribe(t, ctx, srv.URL, "b")

	tests := []struct {
		name     string
		body     string
		wantCode int
		wantData string
		wantType string
	}{
		{name: "plain", body: `{"topic":"a","data":"hello"}`, wantCode: 201, wantData: "hello", wantType: "message"},
		{name: "typed", body: `{"topic":"a","data":"x","type":"tick"}`, wantCode: 201, wantData: "x", wantType: "tick"},
		{name: "multiline data stays data", body: `{"topic":"a","data":"l1\nid: 99"}`, wantCode: 201, wantData: "l1\nid: 99", wantType: "message"},
		{name: "CR in data refused", body: `{"topic":"a","data":"x\r"}`, wantCode: 400},
		{name: "LF in type refused", body: `{"topic":"a","data":"x","type":"a\nb"}`, wantCode: 400},
		{name: "no topic", body: `{"data":"x"}`, wantCode: 400},
		{name: "not JSON", body: `topic=a`, wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, id := publish(t, srv.URL, tt.body)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d", code, tt.wantCode)
			}
			if code != http.StatusCreated {
				return
			}
			for i, ch := range []<-chan sse.Event{a1, a2} {
				ev, ok := next(t, ch, 2*time.Second)
				if !ok {
					t.Fatalf("subscriber %d of topic a got nothing", i)
				}
				if ev.ID != id || ev.Data != tt.wantData || ev.Type != tt.wantType {
					t.Errorf("subscriber %d got id %q type %q data %q, want %q %q %q", i, ev.ID, ev.Type, ev.Data, id, tt.wantType, tt.wantData)
				}
			}
		})
	}
	if ev, ok := next(t, b, 200*time.Millisecond); ok {
		t.Errorf("subscriber of topic b got %+v from topic a", ev)
	}
}

func TestRoutes(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()
	tests := []struct {
		name, method, path string
		want               int
	}{
		{name: "events without topic", method: "GET", path: "/events", want: 400},
		{name: "publish with GET", method: "GET", path: "/api/publish", want: 404},
		{name: "unknown path", method: "GET", path: "/nope", want: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	srv := httptest.NewServer(newHub(20 * time.Millisecond))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := subscribe(t, ctx, srv.URL, "a")
	select {
	case ev := <-ch:
		if ev.Comment != "keep-alive" {
			t.Errorf("first item %+v, want the keep-alive comment", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no heartbeat")
	}
}

// TestNoLeakAfterClientLeaves checks that a stream's handler goroutine and
// subscription end when its client goes away.
func TestNoLeakAfterClientLeaves(t *testing.T) {
	h := newHub(time.Hour)
	srv := httptest.NewServer(h)
	defer srv.Close()
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	var chans []<-chan sse.Event
	for range 5 {
		chans = append(chans, subscribe(t, ctx, srv.URL, "a"))
	}
	if n := h.subscribers(); n != 5 {
		t.Fatalf("%d subscribers, want 5", n)
	}
	cancel()
	for _, ch := range chans {
		for range ch { // drain until the reader goroutine ends
		}
	}
	http.DefaultClient.CloseIdleConnections()

	deadline := time.Now().Add(5 * time.Second)
	for {
		n, g := h.subscribers(), runtime.NumGoroutine()
		if n == 0 && g <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d subscribers and %d goroutines left (had %d before)\n%s", n, g, before, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishBodyLimit(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()
	big := `{"topic":"a","data":"` + strings.Repeat("x", maxBody) + `"}`
	resp, err := http.Post(srv.URL+"/api/publish", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, bufio.NewReader(resp.Body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d for a body over the limit, want 400", resp.StatusCode)
	}
}
