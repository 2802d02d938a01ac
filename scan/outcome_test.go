package scan_test

import (
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
)

// TestScanReportsEveryRuleOnce: a real scan's report lists every rule of
// the catalogue exactly once, as checked or as not applicable with the
// reason; every rule with a finding is among the checked.
func TestScanReportsEveryRuleOnce(t *testing.T) {
	t.Parallel()
	healthyURL := serveT(t, healthy()) + "/events?topic=t"
	for _, tc := range []struct {
		name string
		cfg  scan.Config
	}{
		{"healthy stream", scan.Config{URL: healthyURL, HeartbeatMax: 600 * time.Millisecond}},
		{"faulty stream", scan.Config{URL: serveT(t, &fault{textErrors: true, cors: "reflect", closeAfter: 200 * time.Millisecond}) + "/events"}},
		{"refused stream", scan.Config{URL: serveT(t, &fault{refuseEvery: 1}) + "/events", Baseline: &scan.Baseline{Version: 1}}},
		{"head never comes", scan.Config{URL: rawServer(t, "") + "/events", Timeout: 300 * time.Millisecond}},
		{"load run", scan.Config{URL: healthyURL, Concurrency: 3, Duration: 600 * time.Millisecond, Ramp: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := runScan(t, tc.cfg)
			listed := map[string]int{}
			for _, id := range rep.Checked {
				listed[id]++
			}
			for id, why := range rep.NotApplicable {
				listed[id]++
				if why == "" {
					t.Errorf("%s: not applicable without a reason", id)
				}
			}
			for _, r := range scan.Rules() {
				if listed[r.ID] != 1 {
					t.Errorf("%s is listed %d times as checked or not applicable; want once", r.ID, listed[r.ID])
				}
			}
			if len(listed) != len(scan.Rules()) {
				t.Errorf("%d rules listed; the catalogue has %d", len(listed), len(scan.Rules()))
			}
			for _, f := range rep.Findings {
				if why, na := rep.NotApplicable[f.Rule]; na {
					t.Errorf("%s has a finding but is not applicable (%s)", f.Rule, why)
				}
			}
			if len(rep.Checked) == 0 {
				t.Error("no rule was checked")
			}
		})
	}
}
