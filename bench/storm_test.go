package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/bench"
	"github.com/sseguard/sseguard/server/servertest"
)

// TestRunStorm: clients that reconnect at once from the oldest event each
// read the whole history once, then the live event, against a real hub.
func TestRunStorm(t *testing.T) {
	const events, clients = 30, 40
	ts := servertest.Start(t, nil)
	tok := ts.Token(t, "bench", auth.Permissions{Publish: []string{"*"}, Subscribe: []string{"*"}})
	var progress bytes.Buffer
	rep, err := bench.Run(context.Background(), bench.Config{
		URL:                ts.URL,
		Topic:              "storm",
		Token:              tok,
		Events:             events,
		Settle:             10 * time.Millisecond,
		PID:                os.Getpid(),
		ConnectConcurrency: 8,
		Replay:             bench.Replay{Storm: clients, Window: 30 * time.Second},
	}, &progress)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p := rep.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
	if rep.Replay == nil || rep.Replay.Storm == nil {
		t.Fatalf("replay report %+v, want a storm", rep.Replay)
	}
	sr := rep.Replay.Storm
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"clients", int64(sr.Clients), clients},
		{"opened", sr.Opened, clients},
		{"refused", sr.Refused, 0},
		{"failed", sr.Failed, 0},
		{"caught up", sr.CaughtUp, clients},
		{"live", sr.Live, clients},
		{"duplicates", sr.Duplicates, 0},
		{"catch-up samples", sr.CatchUp.Count, clients},
		{"history", rep.Replay.HistoryEvents, events},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if sr.ConnectSeconds <= 0 || sr.CaughtUpSeconds < sr.ConnectSeconds || sr.LiveSeconds < sr.CaughtUpSeconds {
		t.Errorf("times %+v: want 0 < connected ≤ caught up ≤ live", sr)
	}
	if sr.RSSIdle <= 0 || sr.RSSSteady <= 0 || sr.RSSPeak < sr.RSSIdle {
		t.Errorf("memory %+v: want idle, steady and a peak ≥ idle", sr)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"storm     40 clients: 40 opened, 0 refused, 0 failed; 40 caught up, 40 live, 0 duplicates", "all live"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	js, _ := json.Marshal(rep)
	if !bytes.Contains(js, []byte(`"storm":{"clients":40`)) {
		t.Errorf("JSON report lacks the storm: %s", js)
	}
}

// TestRunStormCountsRefusals: a hub that refuses the streams (here: no
// token that may read the topic) makes every storm client a refusal and a
// failure, reported as a problem.
func TestRunStormCountsRefusals(t *testing.T) {
	ts := servertest.Start(t, nil)
	tok := ts.Token(t, "bench", auth.Permissions{Publish: []string{"*"}})
	rep, err := bench.Run(context.Background(), bench.Config{
		URL:    ts.URL,
		Topic:  "storm",
		Token:  tok,
		Events: 5,
		Settle: 10 * time.Millisecond,
		Replay: bench.Replay{Storm: 6, Window: 30 * time.Second},
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sr := rep.Replay.Storm
	if sr.Refused != 6 || sr.Failed != 6 || sr.Opened != 0 || sr.Live != 0 {
		t.Errorf("storm %+v: want 6 refused and failed", sr)
	}
	if p := strings.Join(rep.Problems(), "; "); !strings.Contains(p, "6 storm clients did not catch up") {
		t.Errorf("problems %q lack the storm's failures", p)
	}
}
