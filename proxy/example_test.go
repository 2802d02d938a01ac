package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/sseguard/sseguard/proxy"
)

// A backend that sets the guide's headers, and the proxy in front of it as
// an http.Handler: the client gets the strict policy's headers instead, and
// the framework's header is dropped.
func ExampleNew() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Powered-By", "Express")
		io.WriteString(w, "data: hello\n\n")
	}))
	defer backend.Close()

	px, err := proxy.New(context.Background(), &proxy.Config{
		Upstream: backend.URL,
		Routes:   []proxy.Route{{Prefix: "/events", Kind: proxy.KindStream}},
	}, slog.New(slog.DiscardHandler)) // drift lines go to this logger
	if err != nil {
		panic(err)
	}
	defer px.Close()

	req := httptest.NewRequest("GET", "/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	rec := httptest.NewRecorder()
	px.ServeHTTP(rec, req)

	fmt.Println(rec.Code)
	fmt.Println(rec.Header().Values("Content-Type"))
	fmt.Println(rec.Header().Values("Cache-Control"))
	fmt.Println(rec.Header().Values("X-Powered-By"))
	fmt.Printf("%q\n", rec.Body.String())
	// Output:
	// 200
	// [text/event-stream; charset=utf-8]
	// [no-cache, no-store, no-transform]
	// []
	// "data: hello\n\n"
}
