package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var errStop = errors.New("stop")

// testClient returns a Client for url with its own transport, closed when
// the test ends, and a record of the waits between attempts, which it
// skips.
func testClient(t *testing.T, url string) (*Client, *[]time.Duration) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var waits []time.Duration
	c := &Client{URL: url, HTTPClient: &http.Client{Transport: tr}}
	c.wait = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return c, &waits
}

// script is a test server that answers its nth request with the nth
// function, and records the requests' headers.
type script struct {
	mu      sync.Mutex
	steps   []func(w http.ResponseWriter, r *http.Request)
	headers []http.Header
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.headers)
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	if n >= len(s.steps) {
		http.Error(w, "script over", http.StatusGone)
		return
	}
	s.steps[n](w, r)
}

func (s *script) requests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.headers)
}

// send answers with an event stream holding body, then ends it.
func send(body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	}
}

func TestClientResumesWithLastEventID(t *testing.T) {
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		send("retry: 10\nid: 1\ndata: a\n\n"),
		send("id: 2\ndata: b\n\nid: 3\n\n"), // the ID-only block counts
		send("data: c\n\n"),                 // no id field: the ID persists
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()

	c, waits := testClient(t, srv.URL)
	c.LastEventID = "0"
	c.Header = http.Header{"Authorization": {"Bearer t"}, "Accept": {"*/*"}}
	opens := 0
	c.OnOpen = func(resp *http.Response) { opens++ }
	var got []Event
	err := c.Run(context.Background(), func(ev Event) error {
		got = append(got, ev)
		if ev.Data == "c" {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Fatalf("Run() = %v, want the handler's error", err)
	}
	want := []Event{
		{ID: "1", Type: "message", Data: "a", Retry: 10 * time.Millisecond},
		{ID: "2", Type: "message", Data: "b"},
		{ID: "3", Type: "message", Data: "c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\n got %+q\nwant %+q", got, want)
	}
	var ids []string
	for _, h := range s.requests() {
		ids = append(ids, h.Get("Last-Event-ID"))
		if h.Get("Accept") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("Authorization") != "Bearer t" {
			t.Errorf("request headers %v", h)
		}
	}
	if wantIDs := []string{"0", "1", "3"}; !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("Last-Event-ID sent %q, want %q", ids, wantIDs)
	}
	// The server's retry replaces the 3s default, and a stream that ends
	// after opening is not a failure: no backoff.
	if wantWaits := []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}; !reflect.DeepEqual(*waits, wantWaits) {
		t.Errorf("waits %v, want %v", *waits, wantWaits)
	}
	if c.LastEventID != "3" || opens != 3 {
		t.Errorf("LastEventID %q, OnOpen called %d times", c.LastEventID, opens)
	}
}

func TestClientFirstConnection(t *testing.T) {
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		send(": hello\n\ndata: x\n\n"),
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()

	c, waits := testClient(t, srv.URL)
	var comments []string
	c.OnComment = func(text string) { comments = append(comments, text) }
	err := c.Run(context.Background(), func(Event) error { return errStop })
	if err != errStop {
		t.Fatalf("Run() = %v", err)
	}
	h := s.requests()[0]
	if _, ok := h["Last-Event-Id"]; ok {
		t.Errorf("Last-Event-ID sent with no ID: %q", h.Get("Last-Event-ID"))
	}
	if !reflect.DeepEqual(comments, []string{"hello"}) || len(*waits) != 0 {
		t.Errorf("comments %q, waits %v", comments, *waits)
	}
}

func TestClientStopsOnRefusedResponse(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType []string // nil: none at all
		body        string
		wantBody    string
	}{
		{name: "204", status: http.StatusNoContent, contentType: []string{"text/event-stream"}},
		{name: "500", status: 500, contentType: []string{"text/plain"}, body: "boom", wantBody: "boom"},
		{name: "404 event stream", status: 404, contentType: []string{"text/event-stream"}, body: "data: x\n\n", wantBody: "data: x\n\n"},
		{name: "long body cut", status: 503, contentType: []string{"text/html"}, body: strings.Repeat("x", 5000), wantBody: strings.Repeat("x", 1024)},
		{name: "text/plain", status: 200, contentType: []string{"text/plain; charset=utf-8"}, body: "data: x\n\n", wantBody: "data: x\n\n"},
		{name: "no content type", status: 200, body: "data: x\n\n", wantBody: "data: x\n\n"},
		{name: "longer subtype", status: 200, contentType: []string{"text/event-stream-foobar"}},
		{name: "event stream then text/plain", status: 200, contentType: []string{"text/event-stream", "text/plain"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &script{steps: []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, r *http.Request) {
					w.Header()["Content-Type"] = tc.contentType
					w.WriteHeader(tc.status)
					io.WriteString(w, tc.body)
				},
			}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c, _ := testClient(t, srv.URL)
			err := c.Run(context.Background(), func(ev Event) error {
				t.Errorf("handler called with %q", ev)
				return nil
			})
			var re *ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("Run() = %v, want a *ResponseError", err)
			}
			if re.StatusCode != tc.status || re.ContentType != strings.Join(tc.contentType, ", ") || re.Body != tc.wantBody {
				t.Errorf("got %+v", re)
			}
			if errors.Is(err, ErrNoContent) != (tc.status == http.StatusNoContent) {
				t.Errorf("errors.Is(%v, ErrNoContent) = %v", err, !(tc.status == http.StatusNoContent))
			}
			if n := len(s.requests()); n != 1 {
				t.Errorf("%d requests, want 1: no reconnection", n)
			}
		})
	}
}

func TestResponseErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *ResponseError
		want string
	}{
		{name: "status", err: &ResponseError{StatusCode: 503}, want: "sse: server answered 503 Service Unavailable"},
		{name: "no content", err: &ResponseError{StatusCode: 204}, want: "sse: server answered 204 No Content"},
		{name: "content type", err: &ResponseError{StatusCode: 200, ContentType: "text/plain"}, want: `sse: server answered content type "text/plain", not text/event-stream`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIsEventStream(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   bool
	}{
		{name: "plain", values: []string{"text/event-stream"}, want: true},
		{name: "charset", values: []string{"text/event-stream; charset=utf-8"}, want: true},
		{name: "bogus charset", values: []string{"text/event-stream;charset=x-bogus"}, want: true},
		{name: "trailing semicolon", values: []string{"text/event-stream;"}, want: true},
		{name: "case-insensitive", values: []string{"Text/Event-Stream"}, want: true},
		{name: "whitespace", values: []string{" \ttext/event-stream \t; a=b"}, want: true},
		{name: "last value wins", values: []string{"text/plain", "text/event-stream"}, want: true},
		{name: "last value wins in one line", values: []string{"text/event-stream, text/plain"}, want: false},
		{name: "*/* skipped", values: []string{"text/event-stream, */*"}, want: true},
		{name: "invalid value skipped", values: []string{"text/event-stream, x bogus"}, want: true},
		{name: "comma in quotes", values: []string{`text/event-stream; a="x,text/plain"`}, want: true},
		{name: "none", values: nil, want: false},
		{name: "empty", values: []string{""}, want: false},
		{name: "other type", values: []string{"text/x-bogus"}, want: false},
		{name: "longer subtype", values: []string{"text/event-stream-foobar"}, want: false},
		{name: "not a MIME type", values: []string{"x bogus"}, want: false},
		{name: "space in type", values: []string{"text /event-stream"}, want: false},
		{name: "space after slash", values: []string{"text/ event-stream"}, want: false},
		{name: "no subtype", values: []string{"text/"}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isEventStream(tc.values); got != tc.want {
				t.Errorf("isEventStream(%q) = %v, want %v", tc.values, got, tc.want)
			}
		})
	}
}

func TestClientHandlerErrorEndsRun(t *testing.T) {
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		send("data: 1\n\ndata: 2\n\n"),
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := testClient(t, srv.URL)
	var got []string
	err := c.Run(context.Background(), func(ev Event) error {
		got = append(got, ev.Data)
		return fmt.Errorf("handling %s: %w", ev.Data, errStop)
	})
	if !errors.Is(err, errStop) || err.Error() != "handling 1: stop" {
		t.Fatalf("Run() = %v", err)
	}
	if !reflect.DeepEqual(got, []string{"1"}) || len(s.requests()) != 1 {
		t.Errorf("events %q, %d requests", got, len(s.requests()))
	}
}

func TestClientStopsOnEventTooLarge(t *testing.T) {
	s := &script{steps: []func(http.ResponseWriter, *http.Request){
		send("data: small\n\ndata: " + strings.Repeat("x", 100) + "\n\n"),
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := testClient(t, srv.URL)
	c.MaxEventBytes = 64
	var got []string
	err := c.Run(context.Background(), func(ev Event) error {
		got = append(got, ev.Data)
		return nil
	})
	if !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("Run() = %v, want ErrEventTooLarge", err)
	}
	if !reflect.DeepEqual(got, []string{"small"}) || len(s.requests()) != 1 {
		t.Errorf("events %q, %d requests", got, len(s.requests()))
	}
}

func TestClientContextEnds(t *testing.T) {
	tests := []struct {
		name string
		// step serves the request; ready is closed once the client is
		// where the test cancels it.
		step      func(ready chan<- struct{}) func(http.ResponseWriter, *http.Request)
		readyWait bool // ready when Run starts to wait before reconnecting
	}{
		{
			name: "while reading the stream",
			step: func(ready chan<- struct{}) func(http.ResponseWriter, *http.Request) {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, ": open\n\n")
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				}
			},
		},
		{
			name: "while waiting for the response",
			step: func(ready chan<- struct{}) func(http.ResponseWriter, *http.Request) {
				return func(w http.ResponseWriter, r *http.Request) {
					close(ready)
					<-r.Context().Done()
				}
			},
		},
		{
			name: "while waiting to reconnect",
			step: func(ready chan<- struct{}) func(http.ResponseWriter, *http.Request) {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, "retry: 3600000\n\n")
				}
			},
			readyWait: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

			ready := make(chan struct{})
			srv := httptest.NewServer(&script{steps: []func(http.ResponseWriter, *http.Request){tc.step(ready)}})
			defer srv.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &Client{URL: srv.URL, HTTPClient: &http.Client{Transport: tr}}
			if tc.readyWait {
				c.wait = func(ctx context.Context, d time.Duration) error {
					close(ready)
					return sleepCtx(ctx, d)
				}
			} else {
				var once sync.Once
				c.OnComment = func(string) { once.Do(func() { close(ready) }) }
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx, func(Event) error { return nil }) }()
			<-ready
			cancel()
			if err := <-done; err != context.Canceled {
				t.Fatalf("Run() = %v, want context.Canceled", err)
			}
		})
	}
}

func TestClientBacksOffOnRefusedConnections(t *testing.T) {
	// A port that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()

	c, waits := testClient(t, url)
	c.Retry = 100 * time.Millisecond
	c.MaxBackoff = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inner := c.wait
	c.wait = func(ctx context.Context, d time.Duration) error {
		if len(*waits) == 6 {
			cancel()
		}
		return inner(ctx, d)
	}
	if err := c.Run(ctx, func(Event) error { return nil }); err != context.Canceled {
		t.Fatalf("Run() = %v, want context.Canceled", err)
	}
	if len(*waits) != 7 {
		t.Fatalf("waits %v, want 7", *waits)
	}
	ms := time.Millisecond
	bounds := [][2]time.Duration{{100 * ms, 100 * ms}, {100 * ms, 200 * ms}, {200 * ms, 400 * ms}, {400 * ms, 800 * ms}, {500 * ms, time.Second}, {500 * ms, time.Second}}
	for i, b := range bounds {
		if d := (*waits)[i]; d < b[0] || d > b[1] {
			t.Errorf("wait after %d failures = %v, want in [%v, %v]", i+1, d, b[0], b[1])
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	least := func(n int64) int64 { return 0 }
	most := func(n int64) int64 { return n - 1 }
	s, ms := time.Second, time.Millisecond
	tests := []struct {
		name           string
		retry, max     time.Duration
		failures       int
		wantMin, wantM time.Duration
	}{
		{name: "after an open stream", retry: s, max: 30 * s, failures: 0, wantMin: s, wantM: s},
		{name: "first failure", retry: s, max: 30 * s, failures: 1, wantMin: s, wantM: s},
		{name: "second failure doubles", retry: s, max: 30 * s, failures: 2, wantMin: s, wantM: 2 * s},
		{name: "third failure doubles again", retry: s, max: 30 * s, failures: 3, wantMin: 2 * s, wantM: 4 * s},
		{name: "fifth failure", retry: s, max: 30 * s, failures: 5, wantMin: 8 * s, wantM: 16 * s},
		{name: "capped", retry: s, max: 30 * s, failures: 6, wantMin: 15 * s, wantM: 30 * s},
		{name: "capped for good", retry: s, max: 30 * s, failures: 1000, wantMin: 15 * s, wantM: 30 * s},
		{name: "server asks for zero", retry: 0, max: 30 * s, failures: 0, wantMin: 0, wantM: 0},
		{name: "failures after zero have a floor", retry: 0, max: 30 * s, failures: 1, wantMin: 50 * ms, wantM: 100 * ms},
		{name: "floor doubles", retry: 0, max: 30 * s, failures: 3, wantMin: 200 * ms, wantM: 400 * ms},
		{name: "retry above the cap is kept", retry: time.Minute, max: 30 * s, failures: 4, wantMin: time.Minute, wantM: time.Minute},
		{name: "huge cap does not overflow", retry: s, max: 1 << 62, failures: 200, wantMin: 1 << 61, wantM: 1 << 62},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo := reconnectDelay(tc.retry, tc.max, tc.failures, least)
			hi := reconnectDelay(tc.retry, tc.max, tc.failures, most)
			if lo != tc.wantMin || hi != tc.wantM {
				t.Errorf("delay range [%v, %v], want [%v, %v]", lo, hi, tc.wantMin, tc.wantM)
			}
		})
	}
}

func TestClientValidates(t *testing.T) {
	tests := []struct {
		name   string
		client Client
		want   string
	}{
		{name: "no URL", client: Client{}, want: "Client.URL"},
		{name: "relative URL", client: Client{URL: "/events"}, want: "Client.URL"},
		{name: "other scheme", client: Client{URL: "ftp://example.com/"}, want: "Client.URL"},
		{name: "no host", client: Client{URL: "http:///events"}, want: "Client.URL"},
		{name: "bad URL", client: Client{URL: "http://[::1"}, want: "Client.URL"},
		{name: "ID with LF", client: Client{URL: "http://x", LastEventID: "1\nX-Evil: 1"}, want: "Client.LastEventID"},
		{name: "header value with CR", client: Client{URL: "http://x", Header: http.Header{"Cookie": {"a\rb"}}}, want: "Client.Header"},
		{name: "header name", client: Client{URL: "http://x", Header: http.Header{"Bad Name": {"v"}}}, want: "Client.Header"},
		{name: "negative retry", client: Client{URL: "http://x", Retry: -1}, want: "Client.Retry"},
		{name: "negative backoff", client: Client{URL: "http://x", MaxBackoff: -1}, want: "Client.MaxBackoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
				t.Error("request sent")
				return nil, errStop
			})}
			err := tc.client.Run(context.Background(), func(Event) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
