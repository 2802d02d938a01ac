package sse_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
)

// queueFeed is a minimal sse.Feed: encoded events and a wake-up.
type queueFeed struct {
	mu    sync.Mutex
	queue [][]byte
	ready chan struct{} // capacity 1
}

func (f *queueFeed) Ready() <-chan struct{} { return f.ready }

func (f *queueFeed) Pull(dst [][]byte) ([][]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst = append(dst, f.queue...)
	f.queue = nil
	return dst, false
}

func (f *queueFeed) add(event []byte) {
	f.mu.Lock()
	f.queue = append(f.queue, event)
	f.mu.Unlock()
	select {
	case f.ready <- struct{}{}:
	default:
	}
}

// A server that encodes each event once and shares its bytes with every
// stream, and that ends each stream with its own jittered retry hint when
// it shuts down, so that its clients do not all come back at once.
// Serve also sends heartbeats while the stream is idle, and ends it with
// "retry: 0" at StreamOptions.Expires.
func ExampleStream_Serve() {
	shutdown := make(chan struct{})
	hello, _ := sse.Event{ID: "1", Data: "hello"}.Encode() // once, for every stream
	mux := http.NewServeMux()
	mux.Handle("GET /events", policy.Middleware(policy.Strict)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			st, err := sse.NewStream(w, r, &sse.StreamOptions{Shutdown: shutdown})
			if err != nil {
				return
			}
			feed := &queueFeed{ready: make(chan struct{}, 1)}
			feed.add(hello)
			err = st.Serve(r.Context(), feed)
			fmt.Println("server:", err)
		})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	p := sse.NewParser(res.Body)
	e, _ := p.Next()
	fmt.Println("client:", e.ID, e.Data)
	close(shutdown) // the server is going away
	for {
		if _, err := p.Next(); err != nil {
			break // the stream ended
		}
	}
	d, _ := p.Retry()
	fmt.Println("client: reconnects in 1 to 3 s:", d >= time.Second && d < 3*time.Second)
	// Output:
	// client: 1 hello
	// server: sse: server shutting down
	// client: reconnects in 1 to 3 s: true
}
