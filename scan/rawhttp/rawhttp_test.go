package rawhttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawServer answers each connection with response after reading the
// request head, which it hands to got, and holds the connection open
// until the client leaves unless closeAfter is set.
func rawServer(t *testing.T, response string, closeAfter bool, got chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var head strings.Builder
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					head.WriteString(line)
					if line == "\r\n" {
						break
					}
				}
				if got != nil {
					got <- head.String()
				}
				_, _ = io.WriteString(c, response)
				if !closeAfter {
					_, _ = io.Copy(io.Discard, br)
				}
			})
		}
	})
	return "http://" + ln.Addr().String()
}

func do(t *testing.T, c *Client, rawURL string, header ...Field) (*Response, error) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c.Do(ctx, &Request{Method: "GET", URL: u, Header: header})
}

func TestHTTP1KeepsHeaderLinesAsSent(t *testing.T) {
	got := make(chan string, 1)
	base := rawServer(t, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+
		"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nCache-Control: no-cache\r\nX-Folded: one\r\n two\r\n"+
		"Content-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\n\r\n", false, got)
	res, err := do(t, &Client{}, base+"/events?x=1", Field{"Accept", "text/event-stream"}, Field{"X-Order", "2"})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	want := []Field{
		{"content-type", "text/event-stream"},
		{"Cache-Control", "no-cache"},
		{"X-Folded", "one two"},
		{"Content-Type", "text/event-stream; charset=utf-8"},
		{"Transfer-Encoding", "chunked"},
	}
	if !reflect.DeepEqual(res.Header, want) {
		t.Errorf("header\n got %q\nwant %q", res.Header, want)
	}
	if v := res.Values("CONTENT-TYPE"); len(v) != 2 {
		t.Errorf("Values: %q", v)
	}
	if !reflect.DeepEqual(res.Interim, []int{103}) || res.StatusCode != 200 || res.Framing != FramingChunked {
		t.Errorf("interim %v status %d framing %s", res.Interim, res.StatusCode, res.Framing)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil || string(body) != "hello" {
		t.Errorf("body %q, %v", body, err)
	}
	req := <-got
	if !strings.HasPrefix(req, "GET /events?x=1 HTTP/1.1\r\nHost: 127.0.0.1:") || !strings.Contains(req, "\r\nAccept: text/event-stream\r\nX-Order: 2\r\n\r\n") {
		t.Errorf("request head %q", req)
	}
}

func TestHTTP1Framing(t *testing.T) {
	tests := []struct {
		name     string
		response string
		closes   bool
		framing  Framing
		body     string
		errIs    error // nil: clean io.EOF
	}{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false, FramingChunked, "abc", nil},
		{"chunked cut", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", true, FramingChunked, "abc", io.ErrUnexpectedEOF},
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false, FramingLength, "abc", nil},
		{"length short", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, FramingLength, "abc", io.ErrUnexpectedEOF},
		{"close", "HTTP/1.0 200 OK\r\n\r\nabc", true, FramingClose, "abc", nil},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", false, FramingNone, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := do(t, &Client{}, rawServer(t, tt.response, tt.closes, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.Framing != tt.framing {
				t.Errorf("framing %s, want %s", res.Framing, tt.framing)
			}
			body, err := io.ReadAll(res.Body)
			if string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if tt.errIs == nil && err != nil || tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("read error %v, want %v", err, tt.errIs)
			}
		})
	}
}

func TestHTTP10Request(t *testing.T) {
	got := make(chan string, 1)
	res, err := do(t, &Client{Proto: HTTP10}, rawServer(t, "HTTP/1.0 200 OK\r\n\r\n", true, got))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if req := <-got; !strings.HasPrefix(req, "GET / HTTP/1.0\r\n") {
		t.Errorf("request line %q", req)
	}
}

func TestHeadErrors(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		// The server answers nothing and holds the connection until the
		// client has given up, however long that takes.
		release := make(chan struct{})
		held := make(chan struct{})
		go func() {
			defer close(held)
			c, err := ln.Accept()
			if err == nil {
				<-release
				c.Close()
			}
		}()
		defer func() { close(release); ln.Close(); <-held }()
		_, err := do(t, &Client{Timeout: 200 * time.Millisecond}, "http://"+ln.Addr().String())
		if !errors.Is(err, ErrHeadTimeout) {
			t.Errorf("err %v, want ErrHeadTimeout", err)
		}
	})
	t.Run("not HTTP", func(t *testing.T) {
		_, err := do(t, &Client{}, rawServer(t, "SSH-2.0-OpenSSH\r\n\r\n", true, nil))
		if err == nil || !strings.Contains(err.Error(), "malformed status line") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("head too large", func(t *testing.T) {
		_, err := do(t, &Client{MaxHeaderBytes: 100}, rawServer(t, "HTTP/1.1 200 OK\r\nX: "+strings.Repeat("a", 200)+"\r\n\r\n", true, nil))
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		if _, err := do(t, &Client{}, "http://"+addr); err == nil {
			t.Error("no error")
		}
	})
	t.Run("invalid header", func(t *testing.T) {
		if _, err := do(t, &Client{}, "http://127.0.0.1:1", Field{"X", "a\r\nInjected: 1"}); err == nil {
			t.Error("CRLF in a header value was sent")
		}
	})
}

func TestContextEndClosesBody(t *testing.T) {
	base := rawServer(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", false, nil)
	u, _ := url.Parse(base)
	ctx, cancel := context.WithCancel(context.Background())
	res, err := (&Client{}).Do(ctx, &Request{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	// Cancel once the body's first bytes were read, while the reader
	// waits for more that never come.
	first := make([]byte, 3)
	if _, err := io.ReadFull(res.Body, first); err != nil || string(first) != "abc" {
		t.Fatalf("first bytes %q, %v", first, err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(res.Body); done <- err }()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read ended without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end when the context did")
	}
}

// h2Handler writes a stream with a repeated header.
var h2Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/reset" {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "data: 1\n\n")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Header()["Cache-Control"] = []string{"no-cache", "no-store"}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Proto", r.Proto)
	w.WriteHeader(200)
	_, _ = io.WriteString(w, "data: over h2\n\n")
})

func TestHTTP2(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(h2Handler)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	h2c := httptest.NewUnstartedServer(h2Handler)
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	defer h2c.Close()

	for _, tc := range []struct{ name, url string }{{"TLS", tlsSrv.URL}, {"cleartext", h2c.URL}} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := do(t, &Client{Proto: HTTP2, Insecure: true}, tc.url+"/events", Field{"Accept", "text/event-stream"})
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.ProtoMajor != 2 || res.StatusCode != 200 || res.Framing != FramingHTTP2 {
				t.Errorf("proto %s status %d framing %s", res.Proto, res.StatusCode, res.Framing)
			}
			if got := res.Values("cache-control"); !reflect.DeepEqual(got, []string{"no-cache", "no-store"}) {
				t.Errorf("cache-control lines %q: want both, in order", got)
			}
			if got := res.Values("X-Proto"); len(got) != 1 || got[0] != "HTTP/2.0" {
				t.Errorf("server saw %q", got)
			}
			body, err := io.ReadAll(res.Body)
			if err != nil || string(body) != "data: over h2\n\n" {
				t.Errorf("body %q, %v", body, err)
			}
		})
	}
	t.Run("reset", func(t *testing.T) {
		res, err := do(t, &Client{Proto: HTTP2, Insecure: true}, tlsSrv.URL+"/reset")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		_, err = io.ReadAll(res.Body)
		var rst *StreamResetError
		if !errors.As(err, &rst) {
			t.Errorf("err %v, want a StreamResetError", err)
		}
	})
	t.Run("no h2 over TLS", func(t *testing.T) {
		h1 := httptest.NewUnstartedServer(h2Handler)
		h1.Config.ErrorLog = log.New(io.Discard, "", 0)
		h1.StartTLS()
		defer h1.Close()
		if _, err := do(t, &Client{Proto: HTTP2, Insecure: true}, h1.URL); err == nil || !strings.Contains(err.Error(), "HTTP/2") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("certificate checked", func(t *testing.T) {
		if _, err := do(t, &Client{Proto: HTTP2}, tlsSrv.URL); err == nil {
			t.Error("a self-signed certificate was accepted without Insecure")
		}
	})
}

func FuzzReadHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nA: b\r\n c\r\nA: d\r\n\r\n")
	f.Add("HTTP/1.0 404 Not Found\r\n\r\n")
	f.Add("HTTP/1.1 200\r\n: x\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		res, err := readHead(bufio.NewReader(strings.NewReader(s)), 4096)
		if err != nil {
			return
		}
		if res.StatusCode < 0 || res.StatusCode > 999 {
			t.Fatalf("status %d", res.StatusCode)
		}
		for _, f := range res.Header {
			if f.Name == "" || strings.ContainsAny(f.Name, " \t\r\n:") {
				t.Fatalf("field name %q", f.Name)
			}
		}
		if len(res.RawHead) > len(s) {
			t.Fatal("raw head longer than the input")
		}
	})
}
