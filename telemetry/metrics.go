package telemetry

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Disconnect reasons, the values of the reason label.
const (
	ReasonClientGone   = "client_gone"
	ReasonCutOff       = "cut_off"
	ReasonShutdown     = "shutdown"
	ReasonTokenExpired = "token_expired"
	ReasonWriteError   = "write_error"
	// ReasonPolicy ends a WebSocket whose client broke the protocol's
	// rules: a message too big, too many, or not one the hub reads.
	ReasonPolicy = "policy_violation"
)

// Transports, the values of the transport label.
const (
	TransportSSE  = "sse"
	TransportPoll = "poll"
	TransportWS   = "ws"
)

// transports are the values of the transport label, and streaming the
// ones whose ends are counted by reason (a long poll ends by answering).
var (
	transports = []string{TransportSSE, TransportWS, TransportPoll}
	streaming  = []string{TransportSSE, TransportWS}
)

// Counters is what the hub counts itself; Metrics reads it through a
// function so that the hub needs no Prometheus.
type Counters struct {
	Published, Duplicates, Delivered, DeliveredBytes, CutOff uint64
	// Store is the store's state as the hub last saw it.
	Store StoreState
}

// StoreState is the store's state for the dashboard and the
// sseguard_store_up and sseguard_store_feed_following gauges.
type StoreState struct {
	// Driver is the store.driver setting: bolt, memory or redis.
	Driver string `json:"driver"`
	// Reachable is the outcome of the hub's last periodic ping.
	Reachable bool `json:"reachable"`
	// Shared is true for a store several nodes share (redis).
	Shared bool `json:"shared"`
	// Following is true, for a shared store, while this node follows
	// the events every node commits.
	Following bool `json:"following"`
}

// Metrics holds sseguard's Prometheus metrics, the spike detector and the
// dashboard's stats. Create it with New; Run drives the per-second work.
type Metrics struct {
	Registry *prometheus.Registry

	openStreams  *prometheus.GaugeVec
	connects     *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	replayed     prometheus.Counter
	resets       *prometheus.CounterVec
	responses    *prometheus.CounterVec
	storeLatency *prometheus.HistogramVec
	delivery     prometheus.Histogram
	roundTrips   *prometheus.HistogramVec
	feedLag      prometheus.Histogram
	spikeGauge   prometheus.Gauge

	spike    *SpikeDetector
	counters func() Counters

	mu       sync.Mutex
	samples  []float64 // delivery latencies of the current second, in ms, bounded
	seen     int       // deliveries this second (for sampling)
	lines    []LogLine // log lines since the last stats
	latest   []byte    // the last stats, JSON
	notify   chan struct{}
	prevTick Counters
	prevRef  map[string]float64
	hist     history // the dashboard's past (history.go)
	spikeOn  bool    // the alarm's state at the last tick
}

// LogLine is one line of the dashboard's recent log.
type LogLine struct {
	Time   time.Time `json:"time"`
	Level  string    `json:"level"`
	Msg    string    `json:"msg"`
	Status int       `json:"status,omitempty"`
	Code   string    `json:"code,omitempty"`
	Route  string    `json:"route,omitempty"`
	Header string    `json:"header,omitempty"`
}

// maxSamples bounds the latency samples kept per second, and maxLines the
// log lines kept between two stats.
const (
	maxSamples = 4096
	maxLines   = 50
)

// New returns the metrics, registered with a new registry that also holds
// the process and Go collectors. counters reads the hub's own counters.
func New(spike SpikeOptions, log *slog.Logger, counters func() Counters) *Metrics {
	m := &Metrics{
		Registry: NewRegistry(),
		counters: counters,
		notify:   make(chan struct{}),
		openStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sseguard_open_streams",
			Help: "Open streams and long polls, by transport."}, []string{"transport"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sseguard_connects_total",
			Help: "Streams and long polls started, by transport."}, []string{"transport"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sseguard_disconnects_total",
			Help: "Streams (SSE and WebSocket) ended, by transport and reason."}, []string{"transport", "reason"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "sseguard_replayed_events_total",
			Help: "Events sent from history after a reconnect (Last-Event-ID) or a poll."}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sseguard_replay_resets_total",
			Help: "Replays that could not be complete (event: reset), by reason."}, []string{"reason"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sseguard_http_responses_total",
			Help: "Responses by status and, for refusals, the problem's error code."}, []string{"status", "code"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sseguard_store_operation_duration_seconds",
			Help:    "Time of store operations: append (one commit, durable) and read.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"op"}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sseguard_delivery_latency_seconds",
			Help:    "From an event's commit to its write to a subscriber's socket.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		roundTrips: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sseguard_store_roundtrip_seconds",
			Help:    "Round trips to a networked store (Redis), by command, or pipeline for a pipelined batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"op"}),
		feedLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sseguard_feed_lag_seconds",
			Help:    "From an event's commit, on whichever node published it, to its fan-out on this node (shared stores; includes clock skew between nodes).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		spikeGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sseguard_refusal_spike",
			Help: "1 while the refusal rate (401, 403, 406, 429) is a spike over its baseline."}),
	}
	m.spike = NewSpikeDetector(spike, log, func(s Spike) {
		if s.Active {
			m.spikeGauge.Set(1)
			m.addLine(LogLine{Time: s.Since, Level: "WARN", Msg: "refusal spike: " + joinInts(s.Statuses) + " " + first(s.TopCodes)})
		} else {
			m.spikeGauge.Set(0)
			m.addLine(LogLine{Time: time.Now(), Level: "INFO", Msg: "refusal spike over"})
		}
	})
	counter := func(name, help string, f func(Counters) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(m.counters())) })
	}
	m.Registry.MustRegister(
		m.openStreams, m.connects, m.disconnects, m.replayed, m.resets, m.responses,
		m.storeLatency, m.delivery, m.roundTrips, m.feedLag, m.spikeGauge,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sseguard_store_up",
			Help: "1 while the store answered the hub's last periodic ping."},
			func() float64 { return b2f(m.counters().Store.Reachable) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sseguard_store_feed_following",
			Help: "1 while this node follows the events every node commits (shared stores); 0 on a store of its own."},
			func() float64 { return b2f(m.counters().Store.Following) }),
		counter("sseguard_events_published_total", "Events committed to the store.", func(c Counters) uint64 { return c.Published }),
		counter("sseguard_publish_duplicates_total", "Publishes answered from the idempotency window.", func(c Counters) uint64 { return c.Duplicates }),
		counter("sseguard_events_delivered_total", "Events handed to subscribers.", func(c Counters) uint64 { return c.Delivered }),
		counter("sseguard_delivered_bytes_total", "Bytes of events handed to subscribers.", func(c Counters) uint64 { return c.DeliveredBytes }),
		counter("sseguard_slow_consumer_cutoffs_total", "Subscribers cut off for falling behind.", func(c Counters) uint64 { return c.CutOff }),
	)
	for _, t := range transports {
		m.openStreams.WithLabelValues(t)
		m.connects.WithLabelValues(t)
	}
	for _, op := range []string{"append", "read"} {
		m.storeLatency.WithLabelValues(op)
	}
	for _, t := range streaming {
		for _, r := range []string{ReasonClientGone, ReasonCutOff, ReasonShutdown, ReasonTokenExpired, ReasonWriteError} {
			m.disconnects.WithLabelValues(t, r)
		}
	}
	m.disconnects.WithLabelValues(TransportWS, ReasonPolicy)
	return m
}

// Connected counts a stream or long poll that started; call the returned
// function with the reason when it ends.
func (m *Metrics) Connected(transport string) (ended func(reason string)) {
	m.connects.WithLabelValues(transport).Inc()
	g := m.openStreams.WithLabelValues(transport)
	g.Inc()
	var once sync.Once
	return func(reason string) {
		once.Do(func() {
			g.Dec()
			if slices.Contains(streaming, transport) {
				m.disconnects.WithLabelValues(transport, reason).Inc()
			}
		})
	}
}

// Replayed counts n events sent from history.
func (m *Metrics) Replayed(n int) { m.replayed.Add(float64(n)) }

// Reset counts a replay that had to send event: reset.
func (m *Metrics) Reset(reason string) { m.resets.WithLabelValues(reason).Inc() }

// StoreOp records the duration of a store operation ("append", "read").
func (m *Metrics) StoreOp(op string, d time.Duration) {
	m.storeLatency.WithLabelValues(op).Observe(d.Seconds())
}

// StoreRoundTrip records one round trip to a networked store: op is the
// command's name, or "pipeline".
func (m *Metrics) StoreRoundTrip(op string, d time.Duration) {
	m.roundTrips.WithLabelValues(op).Observe(d.Seconds())
}

// FeedLag records the time from an event's commit, on any node, to its
// fan-out on this one (hub.FeedObserver).
func (m *Metrics) FeedLag(d time.Duration) { m.feedLag.Observe(d.Seconds()) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// StoreAppend records the time of one store commit (hub.Observer).
func (m *Metrics) StoreAppend(d time.Duration) { m.StoreOp("append", d) }

// Delivered records the latency of one delivery: from commit to write.
func (m *Metrics) Delivered(d time.Duration) {
	m.delivery.Observe(d.Seconds())
	m.mu.Lock()
	m.seen++
	if len(m.samples) < maxSamples {
		m.samples = append(m.samples, float64(d)/float64(time.Millisecond))
	} else if i := rand.IntN(m.seen); i < maxSamples { // reservoir sampling: every delivery equally likely
		m.samples[i] = float64(d) / float64(time.Millisecond)
	}
	m.mu.Unlock()
}

// ObserveResponse counts a response; refusals also feed the spike
// detector and the dashboard's log. It fits policy.Profile.Observe.
func (m *Metrics) ObserveResponse(r *http.Request, status int, code string) {
	m.responses.WithLabelValues(strconv.Itoa(status), code).Inc()
	if status < 400 {
		return
	}
	route := routeOf(r.URL.Path)
	m.spike.Record(status, code, route)
	m.mu.Lock()
	m.hist.refused(r, route)
	m.mu.Unlock()
	m.addLine(LogLine{Time: time.Now(), Level: "INFO", Msg: "refused", Status: status, Code: code, Route: route})
}

// AddLine adds a line to the dashboard's recent log (drift, cut-offs).
func (m *Metrics) AddLine(l LogLine) { m.addLine(l) }

func (m *Metrics) addLine(l LogLine) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.lines) < maxLines {
		m.lines = append(m.lines, l)
		return
	}
	if l.Level == "INFO" {
		return // a burst of refusals must not push out the warning about it
	}
	for i, old := range m.lines {
		if old.Level == "INFO" {
			m.lines = append(append(m.lines[:i:i], m.lines[i+1:]...), l)
			return
		}
	}
}

// routes are the paths the spike warning and the dashboard's log name; others are "other", so
// a scanner probing random paths cannot grow the label set.
var routes = []string{"/events", "/api/poll", "/api/publish", "/", "/dashboard", "/dashboard/stream", "/metrics", "/healthz", "/readyz"}

func routeOf(path string) string {
	if slices.Contains(routes, path) {
		return path
	}
	return "other"
}

// Stats is one second of the dashboard's data.
type Stats struct {
	Time              time.Time          `json:"time"`
	OpenStreams       map[string]float64 `json:"open_streams"`
	EventsPerSecond   float64            `json:"events_per_second"`
	DeliveredPerSec   float64            `json:"delivered_per_second"`
	DeliveredBytesSec float64            `json:"delivered_bytes_per_second"`
	RefusalsPerSecond map[string]float64 `json:"refusals_per_second"`
	Spike             SpikeStats         `json:"spike"`
	P99DeliveryMS     float64            `json:"p99_delivery_ms"`
	Store             StoreState         `json:"store"`
	Log               []LogLine          `json:"log"`
}

// SpikeStats is the spike part of Stats.
type SpikeStats struct {
	Active   bool      `json:"active"`
	Since    time.Time `json:"since,omitzero"`
	Statuses []int     `json:"statuses"`
	TopCodes []string  `json:"top_codes"`
}

// Run computes the stats once a second until ctx ends. It owns the
// per-second work: the spike detector's clock and the dashboard's feed.
func (m *Metrics) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	m.tick(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.tick(now)
		}
	}
}

// Tick computes one second's stats at now, as Run does once a second:
// for tests that replay a past (a dashboard opened after ten minutes of
// traffic) without waiting for it. Do not call it while Run runs.
func (m *Metrics) Tick(now time.Time) { m.tick(now) }

// HistoryMinute returns the start of the minute in progress in the
// history (zero before the first tick): when it changes, a new minute
// was closed and History has news.
func (m *Metrics) HistoryMinute() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hist.cur == nil {
		return time.Time{}
	}
	return m.hist.cur.Time
}

func (m *Metrics) tick(now time.Time) {
	spike := m.spike.Tick(now)
	c := m.counters()
	refusals := m.refusalTotals()
	m.mu.Lock()
	st := Stats{
		Time:              now.UTC(),
		OpenStreams:       map[string]float64{},
		EventsPerSecond:   float64(c.Published - m.prevTick.Published),
		DeliveredPerSec:   float64(c.Delivered - m.prevTick.Delivered),
		DeliveredBytesSec: float64(c.DeliveredBytes - m.prevTick.DeliveredBytes),
		RefusalsPerSecond: map[string]float64{},
		Spike:             SpikeStats{Active: spike.Active, Statuses: spike.Statuses, TopCodes: spike.TopCodes},
		P99DeliveryMS:     p99(m.samples),
		Store:             c.Store,
		Log:               m.lines,
	}
	if spike.Active {
		st.Spike.Since = spike.Since.UTC()
	}
	for code, n := range refusals {
		if d := n - m.prevRef[code]; d > 0 {
			st.RefusalsPerSecond[code] = d
		}
	}
	m.prevTick, m.prevRef = c, refusals
	m.samples, m.seen, m.lines = m.samples[:0], 0, nil
	if st.Log == nil {
		st.Log = []LogLine{}
	}
	m.mu.Unlock()
	for _, t := range transports {
		st.OpenStreams[t] = gaugeValue(m.openStreams.WithLabelValues(t))
	}
	b, _ := json.Marshal(st)
	m.mu.Lock()
	if spike.Active != m.spikeOn {
		m.spikeOn = spike.Active
		m.hist.spike(spike, now)
	}
	m.hist.record(st, now)
	m.latest = b
	close(m.notify) // wake every dashboard stream
	m.notify = make(chan struct{})
	m.mu.Unlock()
}

// Latest returns the last stats as JSON (nil before the first tick) and a
// channel closed when newer ones are ready.
func (m *Metrics) Latest() ([]byte, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, m.notify
}

// refusalTotals sums the responses counter by code over refusal statuses.
func (m *Metrics) refusalTotals() map[string]float64 {
	out := map[string]float64{}
	ch := make(chan prometheus.Metric, 64)
	go func() { m.responses.Collect(ch); close(ch) }()
	for metric := range ch {
		var pb dto.Metric
		if err := metric.Write(&pb); err != nil {
			continue
		}
		status, code := "", ""
		for _, l := range pb.GetLabel() {
			switch l.GetName() {
			case "status":
				status = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		if s, _ := strconv.Atoi(status); s >= 400 && code != "" {
			out[code] += pb.GetCounter().GetValue()
		}
	}
	return out
}

func p99(samples []float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

func joinInts(v []int) string {
	var b []byte
	for i, n := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}
