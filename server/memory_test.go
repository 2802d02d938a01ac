package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// childHubEnv, set, makes the test binary a hub (see TestMain): the
// memory measurement runs the hub in its own process, so that the
// clients' memory is not counted.
const childHubEnv = "SSEGUARD_TEST_CHILD_HUB"

// serveChildHub serves a hub with a memory store, no stream limits and
// hourly heartbeats on a loopback port, prints "listening ADDR" and
// serves until its standard input closes. It returns the exit code.
func serveChildHub() int {
	cfg := config.Default()
	zero := 0
	cfg.Limits.StreamsPerIP, cfg.Limits.StreamsPerPrincipal = &zero, &zero
	cfg.Stream.Heartbeat = config.Duration(time.Hour)
	cfg.Store.Driver = "memory"
	log := slog.New(slog.DiscardHandler)
	h := hub.New(hub.Options{Store: memory.New(store.Retention{MaxEventsPerTopic: 100}), Logger: log})
	v, stop, err := NewVerifier(context.Background(), cfg, testKey, log) // the anonymous topic demo
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	srv := New(cfg, h, v, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening %s\n", ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Each line asks for a sample: a full collection first, so that
		// the heap in use is what is live, not what awaits the collector.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("%d %d\n", ms.HeapInuse, ms.StackInuse)
		}
		cancel()
	}()
	if err := srv.Run(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childHub is a hub in another process.
type childHub struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	addr  string
}

func startChildHub(t *testing.T) *childHub {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childHubEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child hub did not start: %v", err)
	}
	c := &childHub{cmd: cmd, stdin: stdin, out: out, addr: strings.TrimSpace(strings.TrimPrefix(line, "listening "))}
	t.Cleanup(func() {
		_ = c.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return c
}

// rss reads the child's resident memory in bytes.
func (c *childHub) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc to read memory from: %v", err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// metric reads one value of the child's /metrics.
func (c *childHub) metric(t *testing.T, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + c.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// goMemory is the child's Go heap and stacks in use after a full
// collection.
func (c *childHub) goMemory(t *testing.T) (heap, stacks float64) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "sample\n"); err != nil {
		t.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("no sample from the child hub: %v", err)
	}
	if _, err := fmt.Sscan(line, &heap, &stacks); err != nil {
		t.Fatalf("sample %q: %v", line, err)
	}
	return heap, stacks
}

// settledRSS samples the child's RSS every 200 ms until two samples are
// within 1% (at most 10 s) and returns the last.
func (c *childHub) settledRSS(t *testing.T) int64 {
	t.Helper()
	prev := c.rss(t)
	for range 50 {
		time.Sleep(200 * time.Millisecond) // a measurement interval, not synchronisation
		cur := c.rss(t)
		if d := cur - prev; d < prev/100 && -d < prev/100 {
			return cur
		}
		prev = cur
	}
	return prev
}

// idleRequests are the requests that open one idle connection per
// transport, and the line that says it is open.
var idleRequests = map[string]struct{ req, open string }{
	"sse": {"GET /events?topic=demo HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", "retry:"},
	"ws": {"GET /ws?topic=demo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "HTTP/1.1 101"},
}

// openIdle opens n idle connections of transport to addr, 32 at a time,
// and returns them; each has seen the line that says it is open.
func openIdle(t *testing.T, addr, transport string, n int) []net.Conn {
	t.Helper()
	rq := idleRequests[transport]
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, rq.req); err != nil {
				errs <- err
				return
			}
			br := bufio.NewReaderSize(c, 256)
			var seen []string
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("%s connection %d: %w after %d lines", transport, i, err, len(seen))
					return
				}
				if strings.HasPrefix(l, rq.open) {
					break
				}
				if len(seen) == 0 && !strings.HasPrefix(l, "HTTP/1.1 200 ") {
					errs <- fmt.Errorf("%s connection %d: refused: %q", transport, i, l)
					return
				}
				seen = append(seen, l)
			}
			_ = c.SetDeadline(time.Time{})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		t.Fatal(err)
	}
	return conns
}

// TestIdleMemoryPerConnection measures the hub's memory per idle
// connection, an SSE stream against a WebSocket, each in a fresh hub
// process with the clients in this one: the RSS the connections add over
// the idle hub, and the Go heap and stacks they add, divided by their
// number. SSEGUARD_IDLE_CONNS sets the number (default 200, which only
// shows the measurement works; docs/benchmarks.md has the 10k figures).
func TestIdleMemoryPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two hub processes")
	}
	n := 200
	if v := os.Getenv("SSEGUARD_IDLE_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 15000 {
			t.Fatalf("SSEGUARD_IDLE_CONNS=%q: want 1 to 15000", v)
		}
	}
	per := map[string][2]float64{}
	for _, transport := range []string{"sse", "ws"} {
		hub := startChildHub(t)
		baseHeap, baseStack := hub.goMemory(t)
		baseRSS := hub.settledRSS(t)
		conns := openIdle(t, hub.addr, transport, n)
		deadline := time.Now().Add(60 * time.Second)
		for hub.metric(t, `sseguard_open_streams{transport="`+transport+`"}`) < float64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connections never all counted open", transport, n)
			}
		}
		heap, stack := hub.goMemory(t)
		rss := hub.settledRSS(t)
		per[transport] = [2]float64{float64(rss-baseRSS) / float64(n) / 1024, (heap + stack - baseHeap - baseStack) / float64(n) / 1024}
		stacks := (stack - baseStack) / float64(n) / 1024
		t.Logf("%s: %d idle connections: RSS %.1f MB -> %.1f MB, %.2f KB each; Go heap+stacks %.2f KB each, of which stacks %.2f KB; goroutines %g (parked SSE streams: %g)",
			transport, n, float64(baseRSS)/(1<<20), float64(rss)/(1<<20), per[transport][0], per[transport][1], stacks,
			hub.metric(t, "go_goroutines"), hub.metric(t, "sseguard_parked_streams"))
		for _, c := range conns {
			c.Close()
		}
		if per[transport][1] <= 0 {
			t.Errorf("%s: connections added no Go memory: the measurement is broken", transport)
		}
	}
	if per["ws"][1] <= per["sse"][1] {
		t.Errorf("a socket measured no more Go memory than a parked stream (%.2f <= %.2f KB): the measurement is broken", per["ws"][1], per["sse"][1])
	}
	t.Logf("a WebSocket costs %.1fx an SSE stream in RSS, %.1fx in Go heap+stacks",
		per["ws"][0]/per["sse"][0], per["ws"][1]/per["sse"][1])
}
