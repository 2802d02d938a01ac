package redis

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// sentinelClient is a client that finds the master through the Sentinel
// at addr, as store.redis.addrs and master_name configure it.
func sentinelClient(addr, name string) goredis.UniversalClient {
	return goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 []string{addr},
		MasterName:            name,
		DialTimeout:           time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
}

// TestSentinelFailover: through a Sentinel, the store follows a failover:
// the master killed, the replica promoted, appends go on with every event
// acknowledged with min_replicas 1 kept, and a follower gets the events
// appended after the failover.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a Sentinel failover")
	}
	master := redistest.Start(t, redistest.Options{AppendOnly: true, Fsync: "always"})
	replica := redistest.Start(t, redistest.Options{AppendOnly: true, Fsync: "always", Config: []string{"replicaof " + hostPort(master.Addr)}})
	waitReplicaUp(t, master)
	sentinel := redistest.StartSentinel(t, "mymaster", master)
	eventually.True(t, 0, func() bool {
		out, err := sentinel.Do("SENTINEL", "REPLICAS", "mymaster")
		return err == nil && strings.Contains(out, replica.Addr[strings.LastIndexByte(replica.Addr, ':')+1:])
	}, "the Sentinel knows the replica")

	prefix := nextPrefix()
	s := openStore(t, Config{Client: sentinelClient(sentinel.Addr, "mymaster"), Prefix: prefix, MinReplicas: 1, ReplicaTimeout: time.Second})
	plain := openStore(t, Config{Client: sentinelClient(sentinel.Addr, "mymaster"), Prefix: prefix})
	f := openStore(t, Config{Client: sentinelClient(sentinel.Addr, "mymaster"), Prefix: prefix})
	k := follow(t, f)
	var acked []string
	for i := range 5 {
		acked = append(acked, mustAppend(t, s, store.Record{Topic: "a", Data: string(rune('0' + i))})[0].Event.ID)
	}
	master.Kill()
	start := time.Now()
	eventually.True(t, 60*time.Second, func() bool {
		got, err := plain.Append(context.Background(), []store.Record{{Topic: "a", Data: "after failover"}})
		if err != nil {
			return false
		}
		acked = append(acked, got[0].Event.ID)
		return true
	}, "appends succeed after the Sentinel failover")
	t.Logf("failover: appends resumed %v after the master died", time.Since(start).Round(100*time.Millisecond))
	page, err := plain.Read(context.Background(), []string{"a"}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Events {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, acked) {
		t.Errorf("after the failover the topic has %q, want every acknowledged event %q", got, acked)
	}
	eventually.True(t, 30*time.Second, func() bool { return k.has(map[string][]string{"a": acked[len(acked)-1:]}) },
		"the follower gets the event appended after the failover")
	if n := k.gapCount("a"); n != 0 {
		t.Errorf("%d gaps with nothing lost", n)
	}
}
