package sse_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
)

// A plain net/http app that streams with the hardened header policy:
// policy.Middleware refuses requests that do not accept text/event-stream
// (with a problem+json 406) and enforces the strict headers; sse.NewStream
// completes them, sends retry, and flushes every event.
func ExampleNewStream() {
	events := make(chan sse.Event)
	mux := http.NewServeMux()
	mux.Handle("GET /events", policy.Middleware(policy.Strict)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			st, err := sse.NewStream(w, r, nil)
			if err != nil {
				return
			}
			_ = st.Run(r.Context(), events) // heartbeats every 15 s while idle
		})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	go func() {
		events <- sse.Event{ID: "1", Data: "hello"}
		events <- sse.Event{ID: "2", Type: "update", Data: "two\nlines"}
		close(events) // ends the stream
	}()

	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	fmt.Println(res.Header.Get("Content-Type"))
	fmt.Println(res.Header.Get("Cache-Control"))
	p := sse.NewParser(res.Body)
	for {
		e, err := p.Next()
		if err != nil {
			break
		}
		fmt.Printf("%s %s %q\n", e.ID, e.Type, e.Data)
	}

	// A legacy XHR streaming client is refused with the one error shape.
	res, err = http.Get(srv.URL + "/events")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	fmt.Println(res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Retry-After"))
	// Output:
	// text/event-stream; charset=utf-8
	// no-cache, no-store, no-transform
	// 1 message "hello"
	// 2 update "two\nlines"
	// 406 application/problem+json 30
}
