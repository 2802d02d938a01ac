package proxy_test

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/bench/naive"
	"github.com/sseguard/sseguard/proxy"
)

var (
	profileDir     = flag.String("proxy.profile", "", "TestStreamCostProfile: write heap.pprof and goroutine.pprof here")
	profileStreams = flag.Int("proxy.streams", 1000, "TestStreamCostProfile: streams to hold")
)

// TestStreamCostProfile holds -proxy.streams idle streams through a proxy
// in front of the naive hub, checks that each gets an event, and writes
// the heap and goroutine profiles of the process (the proxy, the hub and
// the test's raw client sockets) to -proxy.profile, with what each stream
// costs in goroutines and heap. It is skipped without -proxy.profile: it
// is how docs/benchmarks.md's profile is made, not a timed test.
//
//	go test -run TestStreamCostProfile -proxy.profile /tmp/prof -proxy.streams 2000 ./proxy/
//	go tool pprof -sample_index=inuse_space -top /tmp/prof/heap.pprof
func TestStreamCostProfile(t *testing.T) {
	if *profileDir == "" {
		t.Skip("set -proxy.profile DIR to hold streams and write profiles")
	}
	n := *profileStreams
	backend := httptest.NewServer(naive.New())
	defer backend.Close()
	cfg := baseConfig(backend.URL)
	cfg.Routes = nil // the default: "/" of kind auto, as bench/proxy.sh runs it
	tp := startProxy(t, cfg)

	runtime.GC()
	g0 := runtime.NumGoroutine()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	conns := make([]net.Conn, 0, n)
	readers := make([]*bufio.Reader, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /events?topic=prof HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
		br := bufio.NewReaderSize(c, 256)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if res.StatusCode != 200 {
			t.Fatalf("stream %d: status %d", i, res.StatusCode)
		}
		readers = append(readers, br)
	}
	// Every stream subscribed before the publish: the hub answers the
	// head only after it registered the subscriber.
	res, err := http.Post("http://"+tp.addr+"/api/publish", "application/json", strings.NewReader(`{"topic":"prof","data":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("publish: status %d", res.StatusCode)
	}
	for i, br := range readers {
		_ = conns[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			if strings.Contains(line, "data: hello") {
				break
			}
		}
	}

	runtime.GC()
	runtime.GC()
	runtime.GC() // the heap profile lags one cycle behind
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	g1 := runtime.NumGoroutine()
	t.Logf("%d streams: %.2f goroutines, %.2f KB heap in use, %.2f KB stacks in use per stream (the test's raw clients included)",
		n, float64(g1-g0)/float64(n),
		float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/1024/float64(n),
		float64(int64(m1.StackInuse)-int64(m0.StackInuse))/1024/float64(n))
	if err := os.MkdirAll(*profileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(*profileDir, p+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup(p).WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	_ = proxy.KindAuto
}
