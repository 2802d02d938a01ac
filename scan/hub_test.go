package scan_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// TestOwnHubIsClean is the bar: `sseguard scan` against the
// project's own hub reports nothing (not even low findings), with latency
// measured through its publish API and the demo page's CSP checked.
func TestOwnHubIsClean(t *testing.T) {
	t.Parallel()
	h := startHub(t, 100*time.Millisecond)
	for _, tc := range []struct {
		name  string
		proto rawhttp.Proto
	}{{"HTTP/1.1", rawhttp.HTTP11}, {"HTTP/1.0", rawhttp.HTTP10}} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runScan(t, scan.Config{
				URL:          h.base + "/events?topic=demo",
				Proto:        tc.proto,
				Header:       []rawhttp.Field{{Name: "Authorization", Value: "Bearer " + h.token}},
				PageURL:      "/",
				Duration:     1500 * time.Millisecond,
				HeartbeatMax: time.Second,
				Publish:      &scan.PublishConfig{URL: h.base + "/api/publish", Token: h.token, Every: 150 * time.Millisecond},
			})
			if len(rep.Findings) > 0 {
				t.Fatalf("findings against the hub: %s", describe(rep))
			}
			st := rep.Stream
			// How many publishes fit in the window depends on the
			// machine's load; each one made must be delivered and timed.
			if st == nil || st.Published == 0 || st.Delivered != st.Published || st.Latency == nil {
				t.Fatalf("stream stats %+v: want every published event delivered and timed", st)
			}
			if st.Comments == 0 || st.HeartbeatMS == 0 {
				t.Errorf("no heartbeat measured: %+v", st)
			}
			for _, id := range []string{scan.RuleFlush, scan.RuleHeartbeat, scan.RuleResume, scan.RuleAccept, scan.RuleErrorShape, scan.RuleCORS, scan.RuleCSP, scan.RulePolicy} {
				if !slices.Contains(rep.Checked, id) {
					t.Errorf("%s not checked: %s", id, rep.NotApplicable[id])
				}
			}
			// A baseline of the hub pins its headers; the next scan must
			// find no drift (request IDs and dates are volatile).
			again := runScan(t, scan.Config{URL: h.base + "/events?topic=demo", Proto: tc.proto,
				Duration: 300 * time.Millisecond, Baseline: scan.NewBaseline(rep)})
			assertQuiet(t, again, scan.RuleDrift)
		})
	}
}

// TestResumeWithPublishedEvents checks SSE-RESUME's strong form: after
// Last-Event-ID of a published event, the next one must be replayed.
func TestResumeWithPublishedEvents(t *testing.T) {
	t.Parallel()
	good := &fakeHub{}
	bad := &fakeHub{noReplay: true}
	for _, tc := range []struct {
		name  string
		hub   *fakeHub
		fires bool
	}{{"replays", good, false}, {"ignores Last-Event-ID", bad, true}} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveT(t, tc.hub)
			rep := runScan(t, scan.Config{
				URL: url + "/events?topic=t", Duration: time.Second, HeartbeatMax: time.Second,
				Publish: &scan.PublishConfig{URL: "/api/publish", Every: 100 * time.Millisecond},
			})
			if tc.fires {
				assertFires(t, rep, scan.RuleResume)
			} else {
				assertQuiet(t, rep, scan.RuleResume, scan.RuleFlush)
			}
		})
	}
}

// TestFlushWithPublishedEvents: events the scanner published arrive late.
func TestFlushWithPublishedEvents(t *testing.T) {
	t.Parallel()
	// Late by far more than MaxLatency, so that no stall of a loaded
	// machine (which the rule does not blame on the server) hides it.
	url := serveT(t, &fakeHub{delay: 800 * time.Millisecond})
	rep := runScan(t, scan.Config{
		URL: url + "/events?topic=t", Duration: 1500 * time.Millisecond, MaxLatency: 200 * time.Millisecond,
		Publish: &scan.PublishConfig{URL: "/api/publish", Every: 200 * time.Millisecond},
	})
	assertFires(t, rep, scan.RuleFlush)
	if rep.Stream.LatencySource != "publish" || rep.Stream.Latency == nil || rep.Stream.Latency.P50 < 400 {
		t.Errorf("latency %+v from %q: want about 800 ms from publish", rep.Stream.Latency, rep.Stream.LatencySource)
	}
}
