package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/nginxtest"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/sse"
)

// nginxPath returns nginx's path, or skips t (fails it under CI=true).
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found, and CI=true: .ci/run installs Debian's nginx package")
	}
	t.Skip("nginx not found: install Debian's nginx package to run this test")
	return ""
}

// roundRobin is an nginx site that balances over upstreams round robin,
// streams unbuffered, and passes a request to the next node when one
// refuses the connection (nginx's default proxy_next_upstream).
const roundRobin = `upstream hubs {
%s}
server {
    listen %s;
    location / {
        proxy_pass http://hubs;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_read_timeout 1h;
    }
}
`

// startBalancer runs nginx round robin over the nodes and returns its URL.
func startBalancer(t *testing.T, nodes []*hubProcess) string {
	t.Helper()
	bin := nginxPath(t)
	var servers strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&servers, "    server %s;\n", strings.TrimPrefix(n.base, "http://"))
	}
	addr := nginxtest.Start(t, bin, func(addr string) string { return fmt.Sprintf(roundRobin, servers.String(), addr) }, 512)
	base := "http://" + addr
	eventually.True(t, 10*time.Second, func() bool {
		res, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, "nginx answers")
	return base
}

// following reports whether /readyz at base says the node follows the
// store's feed.
func following(base string) bool {
	res, err := http.Get(base + "/readyz")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var ans struct{ Store struct{ Following bool } }
	return json.NewDecoder(res.Body).Decode(&ans) == nil && ans.Store.Following
}

// TestNodeKilledBehindNginx: three serve processes on one Redis behind a
// real nginx (round robin). Streams connect through nginx; one node is
// killed with SIGKILL while events are published; its clients reconnect
// through nginx to another node with their Last-Event-ID, and every client
// receives every event exactly once, in order.
func TestNodeKilledBehindNginx(t *testing.T) {
	bin := sseguardBinary(t)
	srv := redistest.Start(t, redistest.Options{AppendOnly: true, Fsync: "always"})
	dir := t.TempDir()
	args := []string{"--set", "store.driver=redis", "--set", "store.redis.url=" + srv.URL(), "--set", "stream.retry=200ms"}
	// The first node creates the signing secret that the others share.
	nodes := []*hubProcess{startServe(t, bin, dir, args...)}
	nodes = append(nodes, startServe(t, bin, dir, args...), startServe(t, bin, dir, args...))
	token := mintToken(t, bin, dir)
	for _, n := range nodes {
		eventually.True(t, 20*time.Second, func() bool { return following(n.base) }, "node follows the store's feed")
	}
	lb := startBalancer(t, nodes)

	const clients, total, killAt = 30, 150, 50
	var (
		mu     sync.Mutex
		got    = make([][]string, clients)
		opened = make([]int, clients)
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range clients {
		c := &sse.Client{
			URL:        lb + "/events?topic=demo",
			Header:     http.Header{"Authorization": {"Bearer " + token}},
			Retry:      200 * time.Millisecond,
			MaxBackoff: time.Second,
			OnOpen: func(*http.Response) {
				mu.Lock()
				opened[i]++
				mu.Unlock()
			},
		}
		wg.Go(func() {
			_ = c.Run(ctx, func(e sse.Event) error {
				mu.Lock()
				got[i] = append(got[i], e.ID)
				mu.Unlock()
				return nil
			})
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	eventually.True(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !slices.Contains(opened, 0)
	}, "every client's stream is open")

	pub := &hubClient{http: &http.Client{Timeout: 10 * time.Second}, token: token}
	var sent []string
	for i := range total {
		if i == killAt {
			// SIGKILL: no shutdown, no retry hint; its streams just end.
			if err := nodes[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-nodes[2].done
		}
		pub.base = nodes[i%2].base // the nodes that live
		id, err := pub.publish(ctx, fmt.Sprint("event ", i))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sent = append(sent, id)
	}
	eventually.True(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ids := range got {
			if len(ids) < total {
				return false
			}
		}
		return true
	}, "every client has every event")
	mu.Lock()
	defer mu.Unlock()
	reconnected := 0
	for i, ids := range got {
		if !slices.Equal(ids, sent) {
			t.Errorf("client %d (%d connections) got %d events, want the %d published, once each, in order:\n got %q\nwant %q", i, opened[i], len(ids), total, ids, sent)
		}
		if opened[i] > 1 {
			reconnected++
		}
	}
	if reconnected == 0 {
		t.Error("no client reconnected: none was on the killed node")
	}
	t.Logf("%d of %d clients reconnected through nginx after the kill", reconnected, clients)
}
