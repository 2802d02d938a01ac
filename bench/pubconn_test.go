package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPubConn drives the lean publish client against a real net/http
// server on loopback: accepted publishes reuse one connection, a refusal
// comes back with its status and body, and an answer that closes the
// connection is still read and the next request dials again.
func TestPubConn(t *testing.T) {
	var conns, n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Path != "/api/publish" {
			http.Error(w, "bad request line or token", http.StatusBadRequest)
			return
		}
		switch string(body) {
		case "refuse":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":"rate_limited","detail":"`+strings.Repeat("x", 300)+`"}`)
		case "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"closing"}`)
		default:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"`+string(body)+`"}`)
		}
		n.Add(1)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	pc := &pubConn{
		dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		head:    newPubHead(addr, "/api/publish", "tok"),
		timeout: 10 * time.Second,
	}
	defer pc.close()
	ctx := context.Background()
	for i, tc := range []struct {
		body    string
		status  int
		excerpt string
		conns   int64
	}{
		{body: "1", status: 201, conns: 1},
		{body: "2", status: 201, conns: 1},
		{body: "refuse", status: 429, excerpt: `{"error":"rate_limited"`, conns: 1},
		{body: "3", status: 201, conns: 1},
		{body: "close", status: 201, conns: 1},
		{body: "4", status: 201, conns: 2},
		{body: "5", status: 201, conns: 2},
	} {
		status, excerpt, err := pc.do(ctx, []byte(tc.body))
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, tc.body, err)
		}
		if status != tc.status {
			t.Errorf("request %d (%s): status %d, want %d", i, tc.body, status, tc.status)
		}
		if tc.excerpt != "" && (len(excerpt) != 160 || !strings.HasPrefix(string(excerpt), tc.excerpt)) {
			t.Errorf("request %d: excerpt %q, want 160 bytes starting %q", i, excerpt, tc.excerpt)
		}
		if tc.excerpt == "" && excerpt != nil {
			t.Errorf("request %d: excerpt %q on a success", i, excerpt)
		}
		if got := conns.Load(); got != tc.conns {
			t.Errorf("request %d (%s): %d connections, want %d", i, tc.body, got, tc.conns)
		}
	}
	if n.Load() != 7 {
		t.Errorf("server handled %d requests, want 7", n.Load())
	}
}

// TestPubConnCancel: a cancelled run unblocks a publish waiting for its
// answer.
func TestPubConnCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	addr := srv.Listener.Addr().String()
	pc := &pubConn{
		dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		head:    newPubHead(addr, "/api/publish", ""),
		timeout: time.Hour,
	}
	defer pc.close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.do(ctx, []byte("x"))
		done <- err
	}()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled publish returned no error")
	}
}

func TestReadAnswerRefusesMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"HTTP/1.1 2x1 Created\r\n\r\n",
		"SPDY/3 201 Created\r\n\r\n",
		"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 201 Created\r\n\r\n",
		"HTTP/1.1 201 Created\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 201 Created\r\nno colon\r\n\r\n",
		"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nshort",
	} {
		if _, _, err := readAnswer(newTestReader(in)); err == nil {
			t.Errorf("readAnswer(%q) accepted it", in)
		}
	}
}

func newTestReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// BenchmarkPublishClient compares the bench's publish client (pubConn)
// with net/http's client, each publishing over one kept-alive connection
// to a server on loopback that answers 201 at once. The server runs in
// the same process and costs the same in both, so the difference in
// allocations per publish (28 against 96 here) is the client's; compare
// their CPU with /usr/bin/time on real runs (docs/benchmarks.md).
func BenchmarkPublishClient(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"12345"}`)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	body := []byte(`{"topic":"bench","data":"{\"seq\":1,\"sent\":1764600000000000000}"}`)
	ctx := context.Background()
	b.Run("pubConn", func(b *testing.B) {
		pc := &pubConn{
			dial: func(ctx context.Context) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			},
			head:    newPubHead(addr, "/api/publish", "token"),
			timeout: 10 * time.Second,
		}
		defer pc.close()
		b.ReportAllocs()
		for b.Loop() {
			if status, _, err := pc.do(ctx, body); err != nil || status != http.StatusCreated {
				b.Fatal(status, err)
			}
		}
	})
	b.Run("net/http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/publish", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Authorization", "Bearer token")
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
