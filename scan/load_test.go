package scan_test

import (
	"bytes"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
)

// TestLoadAgainstHub: a load run against the project's own hub opens every
// stream, asserts every stream's headers, and finds nothing.
func TestLoadAgainstHub(t *testing.T) {
	t.Parallel()
	h := startHub(t, 200*time.Millisecond)
	var progress syncBuffer
	rep := runScan(t, scan.Config{
		URL:          h.base + "/events?topic=demo",
		Concurrency:  24,
		Duration:     2 * time.Second,
		Ramp:         300 * time.Millisecond,
		HeartbeatMax: time.Second,
		Progress:     &progress,
		// Every 100 ms: a few publishes still fall in the window when a
		// loaded machine delays some.
		Publish: &scan.PublishConfig{URL: "/api/publish", Token: h.token, Every: 100 * time.Millisecond},
	})
	if len(rep.Findings) > 0 {
		t.Fatalf("findings: %s", describe(rep))
	}
	l := rep.Load
	if l == nil || l.Opened != 24 || l.Failed != 0 || l.Drops != 0 || l.Missing != 0 || l.Published < 3 {
		t.Fatalf("load stats %+v", l)
	}
	if l.Latency == nil || l.Latency.Count < 24*l.Published/2 || l.Headers == nil || l.Headers.Count != 24 {
		t.Errorf("distributions: latency %+v, headers %+v", l.Latency, l.Headers)
	}
	assertQuiet(t, rep, scan.RuleLoadConnect, scan.RuleLoadDrop, scan.RuleLoadLoss, scan.RuleLoadLatency,
		scan.RuleCType, scan.RuleDup, scan.RuleXCTO, scan.RuleHeartbeat)
	// The live lines count the streams open at that moment, which a
	// loaded machine may catch at any point of the ramp; the last line
	// counts those that opened at all.
	out := progress.String()
	if !regexp.MustCompile(`load \S+ · open \d+/24 · `).MatchString(out) ||
		!regexp.MustCompile(`opened 24/24 [^\r]*\n$`).MatchString(out) {
		t.Errorf("progress %q: want a live line of open streams, and a last one saying 24 of 24 opened, ended by a newline", out)
	}
}

// TestLoadFaults: each load rule fires against a server with that fault.
func TestLoadFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		url   func(t *testing.T) string
		cfg   func(c *scan.Config)
		fires []string
	}{
		{"refuses every third stream", func(t *testing.T) string {
			return serveT(t, &fault{heartbeat: 50 * time.Millisecond, refuseEvery: 3})
		}, nil, []string{scan.RuleLoadConnect, scan.RuleStatus}},
		{"cuts streams", func(t *testing.T) string {
			return serveT(t, &fault{heartbeat: 50 * time.Millisecond, closeAfter: 300 * time.Millisecond})
		}, nil, []string{scan.RuleLoadDrop}},
		{"loses events", func(t *testing.T) string {
			return serveT(t, &fakeHub{dropOdd: true})
		}, func(c *scan.Config) {
			c.Publish = &scan.PublishConfig{URL: "/api/publish", Every: 150 * time.Millisecond}
			// An event counts as lost once MaxLatency has passed without
			// it; the default (1 s) would leave a 200 ms part of the run
			// in which a publish can count, which a loaded machine misses.
			c.MaxLatency = 300 * time.Millisecond
		}, []string{scan.RuleLoadLoss}},
		{"delivers late", func(t *testing.T) string {
			// Late by far more than MaxLatency, which the scanner's own
			// stalls on a loaded machine cannot make up.
			return serveT(t, &fakeHub{delay: 800 * time.Millisecond})
		}, func(c *scan.Config) {
			c.Publish = &scan.PublishConfig{URL: "/api/publish", Every: 150 * time.Millisecond}
			c.MaxLatency = 150 * time.Millisecond
		}, []string{scan.RuleLoadLatency}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := scan.Config{URL: tc.url(t) + "/events?topic=t", Concurrency: 6, Duration: 1500 * time.Millisecond,
				Ramp: 200 * time.Millisecond, HeartbeatMax: time.Second}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			rep := runScan(t, cfg)
			assertFires(t, rep, tc.fires...)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
