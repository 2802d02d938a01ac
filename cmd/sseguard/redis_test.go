package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/redistest"
)

// node is one `sseguard serve` run in this process.
type node struct {
	base     string
	sub, pub string // the banner's development tokens
	stderr   *syncBuffer
}

var (
	listeningRE = regexp.MustCompile(`sseguard is listening on (http://\S+)`)
	bearerRE    = regexp.MustCompile(`Bearer ([A-Za-z0-9._-]+)`)
)

// startNode runs serve with args until the test ends, and reads its URL
// and development tokens from its banner.
func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("serve exited %d:\n%s", code, stderr)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s")
		}
	})
	stdout.waitFor(t, exited, "banner", func(s string) bool { return strings.Contains(s, "Demo page:") })
	out := stdout.String()
	m := listeningRE.FindStringSubmatch(out)
	toks := bearerRE.FindAllStringSubmatch(out, -1)
	if m == nil || len(toks) < 2 {
		t.Fatalf("no URL and tokens in the banner:\n%s", out)
	}
	return &node{base: m[1], sub: toks[0][1], pub: toks[1][1], stderr: stderr}
}

func (n *node) publish(t *testing.T, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": "demo", "data": data})
	req, _ := http.NewRequest("POST", n.base+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.pub)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var ack struct{ ID string }
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &ack) != nil || ack.ID == "" {
		t.Fatalf("publish on %s: %s %s", n.base, res.Status, b)
	}
	return ack.ID
}

type polled struct {
	Events []struct{ ID, Data string }
	Next   string
	Reset  *struct{ Reason string }
}

func (n *node) poll(t *testing.T, after string) polled {
	t.Helper()
	req, _ := http.NewRequest("GET", n.base+"/api/poll?topic=demo&after="+url.QueryEscape(after), nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.sub)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p polled
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("poll on %s: %s, %v", n.base, res.Status, err)
	}
	return p
}

// TestServeOnRedis: two serve processes on one Redis, one configured by
// the environment and one by --set flags, share events: what one node
// acknowledged, the other returns, and a cursor from one resumes on the
// other with no gap and no duplicate.
func TestServeOnRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true, Fsync: "always"})
	data := t.TempDir() // one signing secret for both nodes
	t.Setenv("SSEGUARD_CONFIG", "")
	t.Setenv("SSEGUARD_STORE_DRIVER", "redis")
	t.Setenv("SSEGUARD_STORE_REDIS_URL", srv.URL())
	a := startNode(t, "--data", data)
	b := startNode(t, "--data", data, "--set", "store.redis.url="+srv.URL(), "--set", "store.redis.prefix=sseguard")
	if !strings.Contains(a.stderr.String(), `"store":"redis"`) {
		t.Errorf("node a does not log store redis:\n%s", a.stderr)
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, a.publish(t, fmt.Sprint("a", i)))
	}
	first := b.poll(t, "")
	if len(first.Events) != 3 || first.Events[2].ID != ids[2] || first.Reset != nil {
		t.Fatalf("poll on b = %+v, want a's 3 events %q", first, ids)
	}
	cursor := first.Next
	more := b.publish(t, "b0")
	next := a.poll(t, cursor)
	if len(next.Events) != 1 || next.Events[0].ID != more || next.Reset != nil {
		t.Errorf("poll on a after b's cursor = %+v, want only b's event %s", next, more)
	}
}

// TestServeRedisUnreachable: serve with a Redis that does not answer
// exits with an error that names the store and the address, not a hang.
func TestServeRedisUnreachable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Kill()
	t.Setenv("SSEGUARD_CONFIG", "")
	start := time.Now()
	code, _, stderr := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--quiet",
		"--set", "store.driver=redis", "--set", "store.redis.url="+srv.URL())
	if code == 0 || !strings.Contains(stderr, "store.redis (redis at "+srv.Addr+")") {
		t.Errorf("serve exited %d:\n%s\nwant an error naming store.redis and %s", code, stderr, srv.Addr)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("serve took %v to give up", d)
	}
}
