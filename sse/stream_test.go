package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
	"github.com/sseguard/sseguard/sse"
)

// field is one header line exactly as it came off the wire.
type field struct{ name, value string }

// streamServer serves a stream whose events the test feeds through the
// returned channel; closing it ends the stream.
func streamServer(t *testing.T, opts *sse.StreamOptions, tlsH2 bool) (*httptest.Server, chan<- sse.Event, <-chan error) {
	t.Helper()
	events := make(chan sse.Event)
	done := make(chan error, 1)
	h := policy.Middleware(policy.Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := sse.NewStream(w, r, opts)
		if err != nil {
			done <- err
			return
		}
		done <- st.Run(r.Context(), events)
	}))
	srv := httptest.NewUnstartedServer(h)
	if tlsH2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, events, done
}

// readHeader reads a raw HTTP/1.x response head, keeping lines in order.
func readHeader(t *testing.T, br *bufio.Reader) (status string, fields []field) {
	t.Helper()
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("status line: %v", err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("header: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return strings.TrimRight(status, "\r\n"), fields
		}
		name, value, _ := strings.Cut(line, ":")
		fields = append(fields, field{http.CanonicalHeaderKey(name), strings.TrimSpace(value)})
	}
}

func values(fields []field, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// checkPolicy asserts that every header of the strict stream profile for
// the protocol version arrived exactly once with its value, and that nothing
// forbidden did.
func checkPolicy(t *testing.T, fields []field, major, minor int) {
	t.Helper()
	for _, h := range policy.Strict.Headers(policy.KindStream, major, minor) {
		if got := values(fields, h.Name); len(got) != 1 || got[0] != h.Value {
			t.Errorf("%s: got %q, want exactly one %q", h.Name, got, h.Value)
		}
	}
	for _, name := range []string{"Content-Length", "Content-Encoding"} {
		if got := values(fields, name); len(got) > 0 {
			t.Errorf("%s present on a stream: %q", name, got)
		}
	}
	counts := map[string]int{}
	for _, f := range fields {
		counts[f.name]++
		if counts[f.name] > 1 {
			t.Errorf("header %s repeated", f.name)
		}
	}
}

func dialRaw(t *testing.T, srv *httptest.Server, request string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

func TestStreamHTTP11OnTheWire(t *testing.T) {
	srv, events, done := streamServer(t, &sse.StreamOptions{Retry: 2500 * time.Millisecond, Heartbeat: -1}, false)
	_, br := dialRaw(t, srv, "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	status, fields := readHeader(t, br)
	if status != "HTTP/1.1 200 OK" {
		t.Fatalf("status %q", status)
	}
	checkPolicy(t, fields, 1, 1)
	if got := values(fields, "Transfer-Encoding"); len(got) != 1 || got[0] != "chunked" {
		t.Fatalf("Transfer-Encoding = %q, want chunked", got)
	}
	if got := values(fields, "Connection"); len(got) != 1 || got[0] != "keep-alive" {
		t.Fatalf("Connection = %q", got)
	}
	if got := readChunk(t, br); got != "retry: 2500\n\n" {
		t.Fatalf("first chunk %q, want the retry field", got)
	}
	// Each event arrives in its own chunk as soon as it is sent.
	for i := 1; i <= 3; i++ {
		e := sse.Event{ID: strconv.Itoa(i), Data: fmt.Sprintf("event %d", i)}
		events <- e
		want, _ := e.Encode()
		if got := readChunk(t, br); got != string(want) {
			t.Fatalf("chunk %d = %q, want %q", i, got, want)
		}
	}
	close(events)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after the channel closed", err)
	}
	if got := readChunk(t, br); got != "" {
		t.Fatalf("after end: chunk %q, want the last chunk", got)
	}
}

// readChunk reads one chunk of a chunked body and returns its data; "" is
// the last chunk.
func readChunk(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("chunk size: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
	if err != nil {
		t.Fatalf("chunk size line %q: %v", line, err)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		t.Fatalf("chunk data: %v", err)
	}
	if !bytes.HasSuffix(buf, []byte("\r\n")) {
		t.Fatalf("chunk not terminated by CRLF: %q", buf)
	}
	return string(buf[:n])
}

func TestStreamHTTP10OnTheWire(t *testing.T) {
	srv, events, done := streamServer(t, &sse.StreamOptions{Heartbeat: -1}, false)
	conn, br := dialRaw(t, srv, "GET /events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
	status, fields := readHeader(t, br)
	if !strings.HasPrefix(status, "HTTP/1.0 200") {
		t.Fatalf("status %q", status)
	}
	checkPolicy(t, fields, 1, 0)
	for _, name := range []string{"Transfer-Encoding", "Connection"} {
		if got := values(fields, name); len(got) > 0 && !(name == "Connection" && got[0] == "close") {
			t.Errorf("%s = %q on HTTP/1.0", name, got)
		}
	}
	events <- sse.Event{Data: "one"}
	close(events)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(br) // close-delimited: ends when the server closes
	if err != nil {
		t.Fatalf("reading close-delimited body: %v", err)
	}
	if want := "retry: 3000\n\ndata: one\n\n"; string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
	_ = conn
}

func TestStreamHTTP2OnTheWire(t *testing.T) {
	srv, events, done := streamServer(t, &sse.StreamOptions{Heartbeat: -1}, true)
	u, _ := url.Parse(srv.URL + "/events")
	c := &rawhttp.Client{Proto: rawhttp.HTTP2, Insecure: true} // the test server's own certificate
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.Do(ctx, &rawhttp.Request{Method: "GET", URL: u,
		Header: []rawhttp.Field{{Name: "accept", Value: "text/event-stream"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 {
		t.Fatalf("%s %d, want HTTP/2 200", res.Proto, res.StatusCode)
	}
	var fields []field
	for _, f := range res.Header {
		fields = append(fields, field{http.CanonicalHeaderKey(f.Name), f.Value})
	}
	checkPolicy(t, fields, 2, 0)
	for _, name := range policy.ConnectionSpecific {
		if got := values(fields, name); len(got) > 0 {
			t.Errorf("connection-specific %s = %q on HTTP/2", name, got)
		}
	}
	br := bufio.NewReader(res.Body)
	if got := readBlock(t, br); got != "retry: 3000\n\n" {
		t.Fatalf("first block %q", got)
	}
	events <- sse.Event{Data: "over h2"} // sent only now: it must arrive unbuffered
	if got := readBlock(t, br); got != "data: over h2\n\n" {
		t.Fatalf("event block %q", got)
	}
	close(events)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// readBlock reads lines up to and including a blank line.
func readBlock(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
	}
}

func TestStreamHeartbeat(t *testing.T) {
	srv, _, _ := streamServer(t, &sse.StreamOptions{Heartbeat: 20 * time.Millisecond}, false)
	var comments []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for len(comments) < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ":") {
			comments = append(comments, line)
		}
	}
	for _, c := range comments {
		if c != ": keep-alive\n" {
			t.Errorf("heartbeat line %q", c)
		}
	}
}

func TestStreamEndsWhenClientLeaves(t *testing.T) {
	srv, _, done := streamServer(t, &sse.StreamOptions{Heartbeat: -1}, false)
	conn, br := dialRaw(t, srv, "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	readHeader(t, br)
	conn.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil; want the context error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("handler still running 20 s after the client left")
	}
}

func TestStreamWriteDeadlineFreesStuckClient(t *testing.T) {
	srv, events, done := streamServer(t, &sse.StreamOptions{Heartbeat: -1, WriteTimeout: 50 * time.Millisecond}, false)
	conn, br := dialRaw(t, srv, "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	readHeader(t, br)
	_ = conn // never read again: the socket buffers fill up
	big := strings.Repeat("x", 256<<10)
	// The feeder stops when the test ends, whether the handler took its
	// events or not: nothing of the test outlives it.
	stop, fed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; i < 400; i++ { // bounded: 100 MiB at most
			select {
			case events <- sse.Event{Data: big}:
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); <-fed }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil; want a write timeout")
		}
		t.Logf("stuck client cut off: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("handler still blocked 30 s into a stuck client")
	}
}

func TestSendRefusesInvalidEvent(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	st, err := sse.NewStream(rec, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := rec.Body.String()
	if err := st.Send(sse.Event{ID: "a\nevent: admin", Data: "x"}); err == nil {
		t.Fatal("Send accepted an ID with a line break")
	}
	if rec.Body.String() != before {
		t.Fatalf("a refused event wrote bytes: %q", rec.Body.String()[len(before):])
	}
}
