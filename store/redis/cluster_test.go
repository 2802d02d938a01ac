package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// TestClusterSpreadsTopics: on a 3-master Cluster each topic's keys live
// in one slot, on the master that serves it, and 30 topics land on every
// master; a follower on another store gets every topic's events in order.
func TestClusterSpreadsTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})
	prefix := nextPrefix()
	a := openStore(t, Config{Client: testClient(c.Addrs()...), Prefix: prefix})
	b := openStore(t, Config{Client: testClient(c.Addrs()...), Prefix: prefix})
	k := follow(t, b)
	want := map[string][]string{}
	perNode := map[string]int{}
	for i := range 30 {
		topic := fmt.Sprintf("topic-%d", i)
		var recs []store.Record
		for j := range 3 {
			recs = append(recs, store.Record{Topic: topic, Data: fmt.Sprint(j), IdempotencyKey: fmt.Sprint("k", j)})
		}
		for _, ap := range mustAppend(t, a, recs...) {
			want[topic] = append(want[topic], ap.Event.ID)
		}
		keys := a.keys(topic)
		slot := -1
		for _, key := range []string{keys.meta, keys.stream, keys.idem("k0")} {
			reply, err := c.Nodes[0].Do("CLUSTER", "KEYSLOT", key)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := strconv.Atoi(reply)
			if slot >= 0 && s != slot {
				t.Fatalf("%s: key %q in slot %d, the topic's other keys in %d", topic, key, s, slot)
			}
			slot = s
		}
		owner := c.NodeOfSlot(slot)
		if owner == nil {
			t.Fatalf("no master serves slot %d", slot)
		}
		if n, err := owner.Do("XLEN", keys.stream); err != nil || n != "3" {
			t.Errorf("%s: XLEN on its slot's master %s = %q, %v; want 3", topic, owner.Addr, n, err)
		}
		perNode[owner.Addr]++
	}
	if len(perNode) != 3 {
		t.Errorf("30 topics on %d masters, want all 3: %v", len(perNode), perNode)
	}
	t.Logf("topics per master: %v", perNode)
	eventually.True(t, 0, func() bool { return k.has(want) }, "the follower has every event")
	got := checkOrder(t, k)
	for topic, ids := range want {
		if !slices.Equal(got[topic], ids) {
			t.Errorf("%s: delivered %q, want %q", topic, got[topic], ids)
		}
	}
}

// topicsBySlot returns a topic whose slot node serves, and one it does
// not.
func topicsBySlot(t *testing.T, c *redistest.Cluster, s *Store, node *redistest.Server) (on, off string) {
	t.Helper()
	for i := 0; on == "" || off == ""; i++ {
		topic := fmt.Sprint("t", i)
		reply, err := node.Do("CLUSTER", "KEYSLOT", s.keys(topic).meta)
		if err != nil {
			t.Fatal(err)
		}
		slot, _ := strconv.Atoi(reply)
		if c.NodeOfSlot(slot) == node {
			if on == "" {
				on = topic
			}
		} else if off == "" {
			off = topic
		}
	}
	return on, off
}

// TestClusterMasterKilled documents what a Cluster master's death does.
// Without replicas (and with cluster-require-full-coverage no) the topics
// of its slots fail promptly with ErrUnavailable while the others go on,
// followed too; with a replica per master, the replica takes over and the
// topic goes on with every event acknowledged with min_replicas 1, while
// min_replicas 1 refuses appends until the new master has a replica again.
func TestClusterMasterKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis Clusters")
	}
	t.Run("no replicas", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, 0, redistest.Options{Config: []string{"cluster-require-full-coverage no"}})
		prefix := nextPrefix()
		s := openStore(t, Config{Client: testClient(c.Addrs()...), Prefix: prefix})
		f := openStore(t, Config{Client: testClient(c.Addrs()...), Prefix: prefix})
		k := follow(t, f)
		// The victim is the master the follower subscribed through, so
		// that it has to subscribe through another.
		var victim *redistest.Server
		for _, n := range c.Nodes {
			if out, err := n.Do("CLIENT", "LIST", "TYPE", "pubsub"); err == nil && strings.Contains(out, "sub=1") {
				victim = n
			}
		}
		if victim == nil {
			t.Fatal("no node has the follower's subscription")
		}
		dead, alive := topicsBySlot(t, c, s, victim)
		before := mustAppend(t, s, store.Record{Topic: dead, Data: "before"}, store.Record{Topic: alive, Data: "before"})
		eventually.True(t, 0, func() bool {
			return k.has(map[string][]string{dead: {before[0].Event.ID}, alive: {before[1].Event.ID}})
		}, "the follower has both topics' first events")
		victim.Kill()
		// The others see the master fail after cluster-node-timeout (2s);
		// until then, and after, the dead topic's calls fail promptly.
		start := time.Now()
		if _, err := s.Append(context.Background(), []store.Record{{Topic: dead, Data: "lost"}}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Append to a topic of the dead master: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Append to a topic of the dead master took %v", d)
		}
		var later []string
		eventually.True(t, 30*time.Second, func() bool {
			got, err := s.Append(context.Background(), []store.Record{{Topic: alive, Data: "after"}})
			if err != nil {
				return false
			}
			later = append(later, got[0].Event.ID)
			return true
		}, "appends to a live master's topic succeed")
		// A batch across the two shards: the dead shard's record fails
		// alone, and the live one's is stored and answered.
		mixed, err := s.Append(context.Background(), []store.Record{{Topic: dead, Data: "mixed"}, {Topic: alive, Data: "mixed"}})
		switch {
		case err != nil:
			t.Errorf("Append of a batch across a dead and a live shard: %v, want per-record results", err)
		case !errors.Is(mixed[0].Err, ErrUnavailable) || !errors.Is(mixed[0].Err, store.ErrUnavailable):
			t.Errorf("the dead shard's record: Err = %v, want ErrUnavailable", mixed[0].Err)
		case mixed[1].Err != nil || mixed[1].Event.ID == "":
			t.Errorf("the live shard's record: %+v, want it stored", mixed[1])
		default:
			later = append(later, mixed[1].Event.ID)
		}
		page, err := s.Read(context.Background(), []string{alive}, "", 0)
		if err != nil || len(page.Events) < 2 {
			t.Errorf("Read of the live topic = %+v, %v", page, err)
		}
		// The hub stays ready: the other masters' topics are served.
		if err := s.Ping(context.Background()); err != nil {
			t.Errorf("Ping with one master of three down: %v, want nil", err)
		}
		if _, err := s.Read(context.Background(), []string{dead}, "", 0); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Read of the dead topic: %v, want ErrUnavailable", err)
		}
		eventually.True(t, 30*time.Second, func() bool { return k.has(map[string][]string{alive: later}) },
			"the follower gets the live topic's events with a master down")
	})
	t.Run("full coverage required", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, 0, redistest.Options{})
		s := openStore(t, Config{Client: testClient(c.Addrs()...)})
		c.Nodes[0].Kill()
		// Once the others have marked it failed, the cluster refuses all.
		eventually.True(t, 30*time.Second, func() bool { return errors.Is(s.Ping(context.Background()), ErrUnavailable) },
			"Ping fails once the cluster's state is fail")
	})
	t.Run("replica takes over", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, 1, redistest.Options{AppendOnly: true})
		for _, n := range c.Nodes {
			if role, err := n.Do("ROLE"); err == nil && strings.HasPrefix(role, "master") {
				waitReplicaUp(t, n)
			}
		}
		s := openStore(t, Config{Client: testClient(c.Addrs()...), MinReplicas: 1, ReplicaTimeout: time.Second})
		plain := openStore(t, Config{Client: testClient(c.Addrs()...), Prefix: s.prefix})
		victim := c.Nodes[0]
		topic, _ := topicsBySlot(t, c, s, victim)
		var acked []string
		for i := range 5 {
			acked = append(acked, mustAppend(t, s, store.Record{Topic: topic, Data: fmt.Sprint(i)})[0].Event.ID)
		}
		victim.Kill()
		start := time.Now()
		// Without min_replicas, appends resume once the replica took over.
		var lastErr error
		defer func() {
			if t.Failed() {
				t.Logf("last error: %v", lastErr)
				for _, n := range c.Nodes[1:] {
					out, _ := n.Do("CLUSTER", "NODES")
					t.Logf("%s:\n%s", n.Addr, out)
				}
			}
		}()
		eventually.True(t, 30*time.Second, func() bool {
			got, err := plain.Append(context.Background(), []store.Record{{Topic: topic, Data: "after failover"}})
			if err != nil {
				lastErr = err
				return false
			}
			acked = append(acked, got[0].Event.ID)
			return true
		}, "appends to the topic succeed after the failover")
		t.Logf("failover: appends resumed %v after the master died", time.Since(start).Round(100*time.Millisecond))
		// With min_replicas 1 they fail while the new master has no
		// replica, and resume when the old master is back as one.
		// (The first call of a client that has not seen the failover may
		// still go to the dead master; it reloads the slot map then.)
		eventually.True(t, 10*time.Second, func() bool {
			_, err := s.Append(context.Background(), []store.Record{{Topic: topic, Data: "unreplicated"}})
			lastErr = err
			return errors.Is(err, ErrNotReplicated)
		}, "Append with min_replicas 1 and no replica left fails with ErrNotReplicated")
		victim.Restart()
		eventually.True(t, 30*time.Second, func() bool {
			got, err := s.Append(context.Background(), []store.Record{{Topic: topic, Data: "replicated again", IdempotencyKey: "again"}})
			if err != nil {
				return false
			}
			acked = append(acked, got[0].Event.ID)
			return true
		}, "appends with min_replicas 1 succeed once the old master is back as a replica")
		page, err := s.Read(context.Background(), []string{topic}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page.Events {
			got = append(got, e.ID)
		}
		// Every acknowledged event, in order; "unreplicated" may be there
		// too (stored on the master, refused for want of a replica).
		var kept []string
		for _, e := range page.Events {
			if e.Data != "unreplicated" {
				kept = append(kept, e.ID)
			}
		}
		if !slices.Equal(kept, acked) {
			t.Errorf("after the failover the topic has %q, want every acknowledged event %q", got, acked)
		}
	})
}
