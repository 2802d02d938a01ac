package telemetry

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// tenMinutes replays ten minutes of traffic into m, one tick a second
// from t0: each minute a few token_missing refusals on /api/poll without
// an Origin, and in minute 5 a burst of 10 origin_forbidden refusals a
// second on /events from https://evil.example.
func tenMinutes(m *Metrics, t0 time.Time) {
	for i := range 600 {
		if i/60 == 5 {
			for range 10 {
				r := httptest.NewRequest("GET", "/events?topic=x", nil)
				r.Header.Set("Origin", "https://evil.example")
				m.ObserveResponse(r, 403, "origin_forbidden")
			}
		} else if i%10 == 0 {
			m.ObserveResponse(httptest.NewRequest("GET", "/api/poll?topic=x", nil), 401, "token_missing")
		}
		m.Tick(t0.Add(time.Duration(i) * time.Second))
	}
}

// TestHistoryTenMinutes: after ten minutes, History holds them at one
// minute (refusals per code per minute, the spike marked and kept), the
// last five minutes at one second, and the top refused routes and origins.
func TestHistoryTenMinutes(t *testing.T) {
	m := New(SpikeOptions{}, nil, func() Counters { return Counters{} })
	t0 := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	tenMinutes(m, t0)
	var h History
	if err := json.Unmarshal(m.History(), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Minutes) != 10 || len(h.Seconds) != HistorySeconds {
		t.Fatalf("%d minutes and %d seconds, want 10 and %d", len(h.Minutes), len(h.Seconds), HistorySeconds)
	}
	for i, min := range h.Minutes {
		if want := t0.Add(time.Duration(i) * time.Minute); !min.Time.Equal(want) {
			t.Errorf("minute %d starts at %v, want %v", i, min.Time, want)
		}
		want := map[string]float64{"token_missing": 6}
		if i == 5 {
			want = map[string]float64{"origin_forbidden": 600}
		}
		if fmt.Sprint(min.Refusals) != fmt.Sprint(want) {
			t.Errorf("minute %d refusals %v, want %v", i, min.Refusals, want)
		}
		if i < 5 && min.Spike {
			t.Errorf("minute %d marked as a spike, before the burst", i)
		}
	}
	if !h.Minutes[5].Spike || h.Minutes[4].Spike {
		t.Errorf("spike flags: minute 4 %v, minute 5 %v; want false, true", h.Minutes[4].Spike, h.Minutes[5].Spike)
	}
	if len(h.Spikes) != 1 || h.Spikes[0].Until.IsZero() || len(h.Spikes[0].TopCodes) == 0 || h.Spikes[0].TopCodes[0] != "origin_forbidden" ||
		h.Spikes[0].Since.Before(h.Minutes[5].Time) || !h.Spikes[0].Since.Before(h.Minutes[6].Time) {
		t.Errorf("spikes %+v, want one, in minute 5, over, of origin_forbidden", h.Spikes)
	}
	if last := h.Seconds[len(h.Seconds)-1]; !last.Time.Equal(t0.Add(599*time.Second)) || last.Log != nil {
		t.Errorf("last second %v (log %v), want %v without log", last.Time, last.Log, t0.Add(599*time.Second))
	}
	wantRoutes := []Count{{"/events", 600}, {"/api/poll", 54}}
	wantOrigins := []Count{{"https://evil.example", 600}, {"(none)", 54}}
	if fmt.Sprint(h.TopRefusedRoutes) != fmt.Sprint(wantRoutes) || fmt.Sprint(h.TopRefusedOrigins) != fmt.Sprint(wantOrigins) {
		t.Errorf("top routes %v, origins %v; want %v, %v", h.TopRefusedRoutes, h.TopRefusedOrigins, wantRoutes, wantOrigins)
	}
}

// TestHistoryBounded: the history keeps an hour of minutes and
// HistorySeconds seconds however long it runs, and a client sending a new
// Origin with every refusal adds at most maxOrigins names.
func TestHistoryBounded(t *testing.T) {
	m := New(SpikeOptions{}, nil, func() Counters { return Counters{} })
	t0 := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	for i := range 90 * 60 {
		if i < 120 {
			for j := range 20 {
				r := httptest.NewRequest("GET", "/nope", nil)
				r.Header.Set("Origin", fmt.Sprintf("https://%d-%d.example", i, j))
				m.ObserveResponse(r, 404, "not_found")
			}
		}
		m.Tick(t0.Add(time.Duration(i) * time.Second))
	}
	var h History
	if err := json.Unmarshal(m.History(), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Minutes) != HistoryMinutes || len(h.Seconds) != HistorySeconds {
		t.Fatalf("%d minutes, %d seconds; want %d and %d", len(h.Minutes), len(h.Seconds), HistoryMinutes, HistorySeconds)
	}
	if want := t0.Add(89 * time.Minute); !h.Minutes[len(h.Minutes)-1].Time.Equal(want) {
		t.Errorf("last minute %v, want %v", h.Minutes[len(h.Minutes)-1].Time, want)
	}
	// The flood was more than an hour ago: nothing of it is left.
	if len(h.TopRefusedOrigins) != 0 {
		t.Errorf("origins of refusals older than the hour: %v", h.TopRefusedOrigins)
	}
	m2 := New(SpikeOptions{}, nil, func() Counters { return Counters{} })
	for j := range 1000 {
		r := httptest.NewRequest("GET", "/nope", nil)
		r.Header.Set("Origin", fmt.Sprintf("https://%d.example", j))
		m2.ObserveResponse(r, 404, "not_found")
	}
	m2.Tick(t0)
	m2.mu.Lock()
	n, other, total := len(m2.hist.cur.origins), m2.hist.cur.origins["other"], 0
	for _, c := range m2.hist.cur.origins {
		total += c
	}
	m2.mu.Unlock()
	if n > maxOrigins+1 || other < 1000-maxOrigins || total != 1000 {
		t.Errorf("%d origin names, %d as other, %d in all; want at most %d, at least %d, and 1000", n, other, total, maxOrigins+1, 1000-maxOrigins)
	}
}
