package redis

import (
	"testing"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/storetest"
)

// conformancePrefixes index every topic (""), with two nested prefixes
// under it, so that the whole suite runs on indexed topics and the
// pattern cases read patterns that span one index ("orders/eu/*") or
// several ("*", "orders*").
var conformancePrefixes = []string{"", "orders/", "orders/eu/"}

func TestConformancePatterns(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return openStore(t, Config{Client: testClient(srv.Addr), Retention: r, PatternPrefixes: conformancePrefixes})
	})
}

func TestConformancePatternsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return openStore(t, Config{Client: testClient(c.Addrs()...), Retention: r, PatternPrefixes: conformancePrefixes})
	})
}
