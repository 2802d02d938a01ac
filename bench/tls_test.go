package bench_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/bench"
	"github.com/sseguard/sseguard/bench/naive"
)

// protoCounter wraps the naive hub and records, per protocol, the
// connections its stream requests came on.
type protoCounter struct {
	h     http.Handler
	mu    sync.Mutex
	conns map[string]map[string]bool // proto -> remote addresses
}

func (p *protoCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		p.mu.Lock()
		if p.conns[r.Proto] == nil {
			p.conns[r.Proto] = map[string]bool{}
		}
		p.conns[r.Proto][r.RemoteAddr] = true
		p.mu.Unlock()
	}
	p.h.ServeHTTP(w, r)
}

// tlsNaive serves the naive hub over HTTPS (h2 offered) and returns the
// server, the file of its certificate and the protocol counter.
func tlsNaive(t *testing.T) (*httptest.Server, string, *protoCounter) {
	t.Helper()
	pc := &protoCounter{h: naive.New(), conns: map[string]map[string]bool{}}
	srv := httptest.NewUnstartedServer(pc)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca, pc
}

// TestRunOverTLSAndH2: the streams go over HTTP/1.1 over TLS, one
// connection each, or over HTTP/2, multiplexed on exactly H2Conns
// connections; every event arrives in both, and the run leaves no
// goroutine behind.
func TestRunOverTLSAndH2(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h2        int
		proto     string
		conns     int
		transport string
	}{
		{"http1.1", 0, "HTTP/1.1", 40, "http/1.1 over TLS"},
		{"h2", 4, "HTTP/2.0", 4, "h2 over TLS, 4 connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, ca, pc := tlsNaive(t)
			before := runtime.NumGoroutine()
			rep, err := bench.Run(context.Background(), bench.Config{
				URL:      srv.URL,
				CAFile:   ca,
				H2Conns:  tc.h2,
				Streams:  40,
				Events:   10,
				Rate:     0,
				Settle:   -1,
				Duration: time.Minute,
			}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if p := rep.Problems(); len(p) > 0 {
				t.Errorf("problems: %v", p)
			}
			if rep.Streams.Opened != 40 || rep.Delivery.Delivered != 400 || rep.Delivery.Lost != 0 {
				t.Errorf("opened %d, delivered %d, lost %d: want 40, 400, 0", rep.Streams.Opened, rep.Delivery.Delivered, rep.Delivery.Lost)
			}
			if rep.Transport != tc.transport {
				t.Errorf("transport %q, want %q", rep.Transport, tc.transport)
			}
			pc.mu.Lock()
			got := len(pc.conns[tc.proto])
			other := len(pc.conns)
			pc.mu.Unlock()
			if got != tc.conns || other != 1 {
				t.Errorf("stream requests over %d %s connections (%d protocols), want %d over %s only", got, tc.proto, other, tc.conns, tc.proto)
			}
			waitGoroutines(t, before)
			srv.Close()
		})
	}
}

// TestRunOverTLSInsecure: without a CA file, Insecure accepts the test
// hub's certificate, and the default (neither) is refused before any
// connection.
func TestRunOverTLSInsecure(t *testing.T) {
	srv, _, pc := tlsNaive(t)
	defer srv.Close()
	rep, err := bench.Run(context.Background(), bench.Config{URL: srv.URL, Insecure: true, Streams: 3, Events: 2, Rate: 0, Settle: -1}, nil)
	if err != nil || rep.Delivery.Delivered != 6 {
		t.Fatalf("Run: %v, delivered %v", err, rep)
	}
	pc.mu.Lock()
	n := len(pc.conns["HTTP/1.1"])
	pc.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d stream connections, want 3", n)
	}
}
