package server_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/server/servertest"
)

// metricValue returns the value of the sample of /metrics on ts whose
// line starts with series (name and labels), or -1.
func metricValue(t *testing.T, ts *servertest.Server, series string) float64 {
	t.Helper()
	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestClusterMetrics: over a real Redis, the publishing node counts its
// Redis round trips by command (the Append's pipeline), the other node
// counts the feed's lag for the event it fanned out, and both say that
// the store is up and followed.
func TestClusterMetrics(t *testing.T) {
	stores := sharedStores[1].nodes(t, 2) // redis
	nodes := startNodes(t, stores)
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		eventually.True(t, 10*time.Second, func() bool {
			return metricValue(t, n, "sseguard_store_up") == 1 && metricValue(t, n, "sseguard_store_feed_following") == 1
		}, "sseguard_store_up and sseguard_store_feed_following are 1")
	}
	lagBefore := metricValue(t, b, "sseguard_feed_lag_seconds_count")
	publishOn(t, a, "metrics", "x")
	if n := metricValue(t, a, `sseguard_store_roundtrip_seconds_count{op="pipeline"}`); n < 1 {
		t.Errorf("publishing node: pipeline round trips %v, want at least 1", n)
	}
	eventually.True(t, 10*time.Second, func() bool {
		return metricValue(t, b, "sseguard_feed_lag_seconds_count") > lagBefore
	}, "the other node counts the feed lag of the event")
}
