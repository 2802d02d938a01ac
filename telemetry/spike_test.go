package telemetry

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// run feeds perSecond refusals (403 origin_forbidden on /events) for secs
// seconds and returns the states.
func run(d *SpikeDetector, now *time.Time, secs, perSecond int) []Spike {
	var out []Spike
	for i := 0; i < secs; i++ {
		for j := 0; j < perSecond; j++ {
			d.Record(403, "origin_forbidden", "/events")
		}
		*now = now.Add(time.Second)
		out = append(out, d.Tick(*now))
	}
	return out
}

func TestSpikeDetector(t *testing.T) {
	var logs bytes.Buffer
	var changes []bool
	d := NewSpikeDetector(SpikeOptions{}, slog.New(slog.NewJSONHandler(&logs, nil)), func(s Spike) { changes = append(changes, s.Active) })
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

	// A steady 60 a minute, above the floor, from the start: it is the
	// norm, never a spike.
	for _, s := range run(d, &now, 600, 1) {
		if s.Active {
			t.Fatalf("a steady rate was called a spike: %+v", s)
		}
	}

	// A burst of 10/s (600/minute) against a baseline near 60/minute.
	burst := run(d, &now, 30, 10)
	if !burst[len(burst)-1].Active {
		t.Fatalf("no spike after 30 s at ten times the baseline: %+v", burst[len(burst)-1])
	}
	s := burst[len(burst)-1]
	if s.Statuses[0] != 403 || s.TopCodes[0] != "origin_forbidden" || s.TopRoutes[0] != "/events" {
		t.Fatalf("spike details %+v", s)
	}
	more := run(d, &now, 120, 10)
	for _, s := range more {
		if !s.Active {
			t.Fatalf("the spike ended while the burst went on: %+v", s)
		}
	}

	// Back to normal: the alarm clears once the minute's rate is well under
	// the threshold, and not at the first dip (hysteresis).
	after := run(d, &now, 120, 1)
	if !after[0].Active {
		t.Fatal("cleared at the first quiet second: no hysteresis")
	}
	if after[len(after)-1].Active {
		t.Fatal("still a spike after two quiet minutes")
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("onChange calls %v, want [true false]", changes)
	}
	if n := strings.Count(logs.String(), `"msg":"refusal spike"`); n != 1 {
		t.Fatalf("logged the spike %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"top_codes":["origin_forbidden"]`) {
		t.Fatalf("the warning lacks the top codes:\n%s", logs.String())
	}
}

func TestSpikeIgnoresOtherStatuses(t *testing.T) {
	d := NewSpikeDetector(SpikeOptions{}, nil, nil)
	now := time.Now()
	for i := 0; i < 120; i++ {
		for j := 0; j < 50; j++ {
			d.Record(500, "internal_error", "/api/publish")
			d.Record(404, "not_found", "/x")
		}
		now = now.Add(time.Second)
		if s := d.Tick(now); s.Active || s.Rate != 0 {
			t.Fatalf("500s and 404s counted as refusals: %+v", s)
		}
	}
}
