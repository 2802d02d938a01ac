package telemetry

import (
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// SpikeOptions configure a SpikeDetector. Zero values mean the defaults.
type SpikeOptions struct {
	// Statuses are the refusal statuses watched. Default 401, 403, 406, 429.
	Statuses []int
	// Factor: a spike is a last-minute rate above Factor times the
	// baseline. Default 3.
	Factor float64
	// Floor: and above this many refusals per minute. Default 30.
	Floor float64
	// HalfLife is how fast the baseline follows the rate: after one
	// half-life, half of a lasting change is in the baseline. Default 10m.
	HalfLife time.Duration
	// Learn is how long after start the detector only learns the baseline.
	// Default and maximum: one minute (the window).
	Learn time.Duration
}

func (o *SpikeOptions) defaults() {
	if len(o.Statuses) == 0 {
		o.Statuses = []int{401, 403, 406, 429}
	}
	if o.Factor <= 0 {
		o.Factor = 3
	}
	if o.Floor <= 0 {
		o.Floor = 30
	}
	if o.HalfLife <= 0 {
		o.HalfLife = 10 * time.Minute
	}
	if o.Learn <= 0 || o.Learn > time.Minute {
		o.Learn = time.Minute
	}
}

// Spike is the detector's state.
type Spike struct {
	Active bool
	Since  time.Time // when the current spike began
	// Rate is the refusals of the last minute; Baseline the usual
	// per-minute rate before the spike.
	Rate, Baseline float64
	Statuses       []int    // statuses seen in the last minute, most first
	TopCodes       []string // error codes seen in the last minute, most first
	TopRoutes      []string // routes seen in the last minute, most first
}

// SpikeDetector watches refusal rates. Record is safe for concurrent use;
// Tick is called once a second by one goroutine.
type SpikeDetector struct {
	opts SpikeOptions
	log  *slog.Logger

	mu       sync.Mutex
	cur      bucket     // the second being counted
	window   [60]bucket // the last minute, one bucket per second
	pos      int
	baseline float64
	ticks    int // seconds seen, up to a minute
	state    Spike
	onChange func(Spike)
}

type bucket struct {
	total    int
	statuses map[int]int
	codes    map[string]int
	routes   map[string]int
}

func (b *bucket) add(status int, code, route string, n int) {
	if b.statuses == nil {
		b.statuses, b.codes, b.routes = map[int]int{}, map[string]int{}, map[string]int{}
	}
	b.total += n
	b.statuses[status] += n
	b.codes[code] += n
	b.routes[route] += n
}

// NewSpikeDetector returns a detector that logs to log (nil: no logging)
// and calls onChange (nil: none) when a spike starts or ends.
func NewSpikeDetector(opts SpikeOptions, log *slog.Logger, onChange func(Spike)) *SpikeDetector {
	opts.defaults()
	return &SpikeDetector{opts: opts, log: log, onChange: onChange}
}

// Record counts one response; only the watched statuses matter.
func (d *SpikeDetector) Record(status int, code, route string) {
	if !slices.Contains(d.opts.Statuses, status) {
		return
	}
	d.mu.Lock()
	d.cur.add(status, code, route, 1)
	d.mu.Unlock()
}

// Tick closes the current second at now, updates the rate, the baseline
// and the alarm, and returns the state.
func (d *SpikeDetector) Tick(now time.Time) Spike {
	d.mu.Lock()
	d.pos = (d.pos + 1) % len(d.window)
	d.window[d.pos] = d.cur
	d.cur = bucket{}
	minute := bucket{statuses: map[int]int{}, codes: map[string]int{}, routes: map[string]int{}}
	for i := range d.window {
		b := &d.window[i]
		minute.total += b.total
		for k, n := range b.statuses {
			minute.statuses[k] += n
		}
		for k, n := range b.codes {
			minute.codes[k] += n
		}
		for k, n := range b.routes {
			minute.routes[k] += n
		}
	}
	rate := float64(minute.total)
	prev := d.state.Active
	if d.ticks < int(d.opts.Learn/time.Second) { // the start only learns
		d.ticks++
		d.baseline = rate
	} else {
		threshold := max(d.opts.Factor*d.baseline, d.opts.Floor)
		switch {
		case !prev && rate > threshold:
			d.state.Active, d.state.Since = true, now
		case prev && rate < threshold/2: // hysteresis: off well below where it came on
			d.state.Active = false
		}
		// The baseline always follows, slowly, so that a lasting change
		// becomes the new normal after a few half-lives.
		alpha := 1 - math.Exp2(-float64(time.Second)/float64(d.opts.HalfLife))
		d.baseline += alpha * (rate - d.baseline)
	}
	d.state.Rate, d.state.Baseline = rate, d.baseline
	d.state.Statuses = topKeys(minute.statuses)
	d.state.TopCodes = topKeys(minute.codes)
	d.state.TopRoutes = topKeys(minute.routes)
	st := d.state
	d.mu.Unlock()

	if st.Active != prev {
		if d.log != nil {
			if st.Active {
				d.log.Warn("refusal spike", "rate_per_minute", st.Rate, "baseline_per_minute", st.Baseline,
					"statuses", st.Statuses, "top_codes", st.TopCodes, "top_routes", st.TopRoutes)
			} else {
				d.log.Info("refusal spike over", "rate_per_minute", st.Rate, "baseline_per_minute", st.Baseline)
			}
		}
		if d.onChange != nil {
			d.onChange(st)
		}
	}
	return st
}

// topKeys returns up to five keys, most counted first.
func topKeys[K int | string](m map[K]int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys[:min(len(keys), 5)]
}
