package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/redis"
)

// TestClusterMasterKilledOverHTTP: two hub nodes on a Redis Cluster of
// three masters without replicas (full coverage not required), one master
// SIGKILLed. Publishing to a topic of the dead master answers 503
// store_unavailable with Retry-After, promptly; a topic of a live master
// goes on: 201 on node A, delivered on node B's open stream with no gap and
// no duplicate, and /readyz stays 200. docs/cluster.md states this
// behaviour; store/redis's TestClusterMasterKilled covers the store level
// and the case with replicas.
func TestClusterMasterKilledOverHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0, redistest.Options{Config: []string{"cluster-require-full-coverage no"}})
	stores := make([]store.Store, 2)
	for i := range stores {
		st, err := redis.Open(context.Background(), redis.Config{Client: goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		stores[i] = st
	}
	nodes := startNodes(t, stores)
	a, b := nodes[0], nodes[1]
	victim := c.Nodes[0]
	dead, alive := topicOn(t, c, victim, true), topicOn(t, c, victim, false)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := stream(t, ctx, b, "topic="+alive, "")
	want := []string{"1"}
	publishOn(t, a, alive, "1")
	publishOn(t, a, dead, "before")
	sameData(t, readEvents(t, p, 1), want)

	victim.Kill()
	start := time.Now()
	res := publishRaw(t, a, dead, "lost")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a publish to the dead master's topic took %v", d)
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("publish to the dead master's topic: %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	var problem policy.Problem
	if err := json.NewDecoder(res.Body).Decode(&problem); err != nil || problem.Code != policy.CodeStoreUnavailable {
		t.Errorf("publish to the dead master's topic: problem %+v (%v), want %s", problem, err, policy.CodeStoreUnavailable)
	}

	// The live masters learn of the failure after cluster-node-timeout;
	// from then on, and maybe before, the live topic takes publishes.
	n := 1
	eventually.True(t, 30*time.Second, func() bool {
		res := publishRaw(t, a, alive, strconv.Itoa(n+1))
		res.Body.Close()
		if res.StatusCode == http.StatusCreated {
			n++
			want = append(want, strconv.Itoa(n))
		}
		return n >= 4
	}, "publishes to a live master's topic succeed with a master down")
	sameData(t, readEvents(t, p, len(want)-1), want[1:])
	for _, ts := range nodes {
		res, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("/readyz on %s with one master of three down: %d, want 200 (the other masters' topics are served)", ts.Addr, res.StatusCode)
		}
	}
}

// topicOn returns a topic whose stream is (onVictim) or is not on victim's
// slots. A topic's keys share the hash tag {topic}.
func topicOn(t *testing.T, c *redistest.Cluster, victim *redistest.Server, onVictim bool) string {
	t.Helper()
	for i := range 1000 {
		topic := fmt.Sprintf("kill-%d", i)
		out, err := victim.Do("CLUSTER", "KEYSLOT", "{"+topic+"}")
		if err != nil {
			t.Fatal(err)
		}
		slot, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %q", out)
		}
		if (c.NodeOfSlot(slot) == victim) == onVictim {
			return topic
		}
	}
	t.Fatal("no topic found")
	return ""
}

// publishRaw publishes over HTTP and returns the response as it came.
func publishRaw(t *testing.T, ts *servertest.Server, topic, data string) *http.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	req, _ := http.NewRequest("POST", ts.URL+"/api/publish", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ts.Token(t, "writer", clusterPerms))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// sameData checks the events' data, in order.
func sameData(t *testing.T, got []received, want []string) {
	t.Helper()
	var data []string
	for _, r := range got {
		data = append(data, r.data)
	}
	if strings.Join(data, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", data, want)
	}
}
