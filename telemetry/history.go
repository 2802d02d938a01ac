package telemetry

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// How much of the past the dashboard gets on connect: the last
// HistorySeconds at one-second resolution and the last HistoryMinutes at
// one minute, kept in memory (about 200 KB at most).
const (
	HistorySeconds = 300
	HistoryMinutes = 60
	// maxOrigins bounds the distinct refused origins counted in one
	// minute; past it they count as "other", so that a client sending a
	// new Origin with every request cannot grow memory.
	maxOrigins = 64
	maxSpikes  = 20
	maxOrigin  = 100 // bytes of an origin kept
)

// Minute is one minute of the dashboard's history.
type Minute struct {
	// Time is the start of the minute.
	Time time.Time `json:"time"`
	// OpenStreams is the most streams (sse, ws and poll) open at once in it.
	OpenStreams float64 `json:"open_streams"`
	Events      float64 `json:"events"`
	Delivered   float64 `json:"delivered"`
	// Refusals counts the minute's refusals by error code.
	Refusals map[string]float64 `json:"refusals"`
	// P99DeliveryMS is the worst second's p99 delivery latency.
	P99DeliveryMS float64 `json:"p99_delivery_ms"`
	// Spike is set when the refusal-spike alarm was on in the minute.
	Spike bool `json:"spike"`

	routes, origins map[string]int
}

// SpikeEvent is one refusal spike: when it began and, once over, ended,
// and what it was made of when it began.
type SpikeEvent struct {
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until,omitzero"`
	Rate      float64   `json:"rate_per_minute"`
	Baseline  float64   `json:"baseline_per_minute"`
	Statuses  []int     `json:"statuses"`
	TopCodes  []string  `json:"top_codes"`
	TopRoutes []string  `json:"top_routes"`
}

// Count is a name and how often it was seen.
type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// History is what a dashboard gets when it connects: the recent past it
// would otherwise start without.
type History struct {
	// Seconds are the last HistorySeconds stats, oldest first, without
	// their log lines.
	Seconds []Stats `json:"seconds"`
	// Minutes are the last HistoryMinutes minutes, oldest first; the
	// last is the minute in progress.
	Minutes []Minute `json:"minutes"`
	// Spikes are the refusal spikes of the last hour, newest first.
	Spikes []SpikeEvent `json:"spikes"`
	// TopRefusedRoutes and TopRefusedOrigins are the routes and Origin
	// headers of the last hour's refusals, most first, at most five.
	TopRefusedRoutes  []Count `json:"top_refused_routes"`
	TopRefusedOrigins []Count `json:"top_refused_origins"`
}

// history is the state behind History; Metrics.mu guards it.
type history struct {
	seconds []Stats
	minutes []Minute // closed minutes, oldest first
	cur     *Minute  // the minute in progress
	spikes  []SpikeEvent
	// refusals of the current second, by route and origin: tick files
	// them under its own minute.
	routes, origins map[string]int
}

// refused counts one refusal's route and origin.
func (h *history) refused(r *http.Request, route string) {
	if h.routes == nil {
		h.routes, h.origins = map[string]int{}, map[string]int{}
	}
	h.routes[route]++
	o := r.Header.Get("Origin")
	switch {
	case o == "":
		o = "(none)"
	case len(o) > maxOrigin:
		o = strings.ToValidUTF8(o[:maxOrigin], "") + "…"
	}
	if _, ok := h.origins[o]; !ok && o != "other" && len(h.origins) >= maxOrigins {
		o = "other"
	}
	h.origins[o]++
}

// record files one second's stats at now.
func (h *history) record(st Stats, now time.Time) {
	st.Log = nil
	h.seconds = append(h.seconds, st)
	if n := len(h.seconds) - HistorySeconds; n > 0 {
		h.seconds = slices.Delete(h.seconds, 0, n)
	}
	start := now.UTC().Truncate(time.Minute)
	if h.cur == nil || !h.cur.Time.Equal(start) {
		if h.cur != nil {
			h.minutes = append(h.minutes, *h.cur)
			if n := len(h.minutes) - (HistoryMinutes - 1); n > 0 {
				h.minutes = slices.Delete(h.minutes, 0, n)
			}
		}
		h.cur = &Minute{Time: start, Refusals: map[string]float64{}, routes: map[string]int{}, origins: map[string]int{}}
	}
	m := h.cur
	open := 0.0
	for _, v := range st.OpenStreams {
		open += v
	}
	m.OpenStreams = max(m.OpenStreams, open)
	m.Events += st.EventsPerSecond
	m.Delivered += st.DeliveredPerSec
	for code, n := range st.RefusalsPerSecond {
		m.Refusals[code] += n
	}
	m.P99DeliveryMS = max(m.P99DeliveryMS, st.P99DeliveryMS)
	m.Spike = m.Spike || st.Spike.Active
	for k, n := range h.routes {
		m.routes[k] += n
	}
	for k, n := range h.origins {
		if _, ok := m.origins[k]; !ok && k != "other" && len(m.origins) >= maxOrigins {
			k = "other"
		}
		m.origins[k] += n
	}
	clear(h.routes)
	clear(h.origins)
}

// spike notes a spike starting or ending.
func (h *history) spike(s Spike, now time.Time) {
	if s.Active {
		h.spikes = append(h.spikes, SpikeEvent{Since: s.Since.UTC(), Rate: s.Rate, Baseline: s.Baseline,
			Statuses: slices.Clone(s.Statuses), TopCodes: slices.Clone(s.TopCodes), TopRoutes: slices.Clone(s.TopRoutes)})
		if n := len(h.spikes) - maxSpikes; n > 0 {
			h.spikes = slices.Delete(h.spikes, 0, n)
		}
		return
	}
	if n := len(h.spikes); n > 0 && h.spikes[n-1].Until.IsZero() {
		h.spikes[n-1].Until = now.UTC()
	}
}

// snapshot returns the history as of the last second recorded.
func (h *history) snapshot() History {
	out := History{Seconds: slices.Clone(h.seconds), Minutes: slices.Clone(h.minutes),
		Spikes: []SpikeEvent{}, TopRefusedRoutes: []Count{}, TopRefusedOrigins: []Count{}}
	if out.Seconds == nil {
		out.Seconds = []Stats{}
	}
	if h.cur != nil {
		cur := *h.cur
		cur.Refusals = maps.Clone(cur.Refusals)
		out.Minutes = append(out.Minutes, cur)
	}
	if out.Minutes == nil {
		out.Minutes = []Minute{}
	}
	var since time.Time
	if len(out.Minutes) > 0 {
		since = out.Minutes[0].Time
	}
	for i := len(h.spikes) - 1; i >= 0; i-- {
		if sp := h.spikes[i]; sp.Until.IsZero() || !sp.Until.Before(since) {
			out.Spikes = append(out.Spikes, sp)
		}
	}
	routes, origins := map[string]int{}, map[string]int{}
	for _, m := range out.Minutes {
		for k, n := range m.routes {
			routes[k] += n
		}
		for k, n := range m.origins {
			origins[k] += n
		}
	}
	out.TopRefusedRoutes = topCounts(routes)
	out.TopRefusedOrigins = topCounts(origins)
	return out
}

// topCounts returns the five most counted names, most first.
func topCounts(m map[string]int) []Count {
	out := []Count{}
	for _, k := range topKeys(m) {
		out = append(out, Count{Name: k, Count: m[k]})
	}
	return out
}

// History returns the dashboard's history as JSON (see History).
func (m *Metrics) History() []byte {
	m.mu.Lock()
	h := m.hist.snapshot()
	m.mu.Unlock()
	b, _ := json.Marshal(h) // plain data: never fails
	return b
}
