package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Presence holds the metrics of presence tracking (package presence):
// it implements presence.Observer. Create it with NewPresence.
type Presence struct {
	updates    prometheus.Counter
	events     *prometheus.CounterVec
	roundTrips prometheus.Histogram
	errors     prometheus.Counter
}

// NewPresence registers the presence metrics on reg:
//
//	sseguard_presence_updates_total           joins and leaves of connections on tracked topics, this node
//	sseguard_presence_events_total{kind}      join and leave transitions announced (kind join, leave)
//	sseguard_presence_roundtrip_seconds       round trips to Redis: flushes, heartbeats, snapshots
//	sseguard_presence_roundtrip_errors_total  those that failed
func NewPresence(reg prometheus.Registerer) *Presence {
	p := &Presence{
		updates: prometheus.NewCounter(prometheus.CounterOpts{Name: "sseguard_presence_updates_total",
			Help: "Joins and leaves of connections on tracked topics, on this node (one per topic)."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sseguard_presence_events_total",
			Help: "Presence transitions announced: a subject's first connection on a topic (join) or its last one gone (leave), cluster-wide."},
			[]string{"kind"}),
		roundTrips: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sseguard_presence_roundtrip_seconds",
			Help:    "Presence round trips to Redis: batched flushes, heartbeats and snapshot reads.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sseguard_presence_roundtrip_errors_total",
			Help: "Presence round trips to Redis that failed."}),
	}
	p.events.WithLabelValues("join")
	p.events.WithLabelValues("leave")
	reg.MustRegister(p.updates, p.events, p.roundTrips, p.errors)
	return p
}

// Updated counts n joins and leaves of connections.
func (p *Presence) Updated(n int) { p.updates.Add(float64(n)) }

// Flushed counts one round trip to Redis.
func (p *Presence) Flushed(d time.Duration, err error) {
	p.roundTrips.Observe(d.Seconds())
	if err != nil {
		p.errors.Inc()
	}
}

// Emitted counts one join or leave transition.
func (p *Presence) Emitted(join bool) {
	kind := "leave"
	if join {
		kind = "join"
	}
	p.events.WithLabelValues(kind).Inc()
}
