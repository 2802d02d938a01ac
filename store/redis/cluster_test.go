package redis

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

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
