package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is the outcome of a run. Latencies are in milliseconds, memory in
// bytes or KB (1024 bytes), CPU in seconds. It marshals to JSON as the
// --json output of "sseguard bench".
type Report struct {
	// Target is the hub's base URL and Dialed the loopback address used.
	Target string `json:"target"`
	Dialed string `json:"dialed"`
	// Transport is how the streams travelled: "http/1.1", "http/1.1 over
	// TLS" or "h2 over TLS, N connections".
	Transport string `json:"transport"`
	// Topic is the topic streams and publishes used.
	Topic string `json:"topic"`
	// Sources are the local addresses streams were dialed from, if set.
	Sources []string `json:"sources,omitempty"`
	// Started is when the run began; Elapsed its length in seconds.
	Started time.Time `json:"started"`
	Elapsed float64   `json:"elapsed_seconds"`

	// Streams covers connecting and holding the subscribers.
	Streams StreamsReport `json:"streams"`
	// Publish covers the publish requests.
	Publish PublishReport `json:"publish"`
	// Delivery covers what the streams received of the accepted events.
	Delivery DeliveryReport `json:"delivery"`
	// Server is the server's memory and CPU, when PID or MetricsURL was set
	// and sampling worked.
	Server *ServerReport `json:"server,omitempty"`
	// Generator is the load generator's own memory per stream.
	Generator GeneratorReport `json:"generator"`
	// Replay is the replay phases of a replay run (Config.Replay).
	Replay *ReplayReport `json:"replay,omitempty"`

	// Errors are the distinct errors seen, with counts (ports in addresses
	// are masked so that one cause is one line), at most 20 kinds.
	Errors []ErrorCount `json:"errors,omitempty"`
	// Stopped says why the run ended early, if it did.
	Stopped string `json:"stopped,omitempty"`
}

// StreamsReport is the connect and hold phase.
type StreamsReport struct {
	// Requested streams; Opened got a 200 text/event-stream head; Failed
	// did not.
	Requested int   `json:"requested"`
	Opened    int64 `json:"opened"`
	Failed    int64 `json:"failed"`
	// Connect is the time from dial to parsed response head, per stream.
	Connect Latency `json:"connect_ms"`
	// ConnectSeconds is the wall time to open them all.
	ConnectSeconds float64 `json:"connect_seconds"`
	// HoldSeconds is how long the streams were held idle after settling.
	HoldSeconds float64 `json:"hold_seconds"`
	// Heartbeats counts comment lines received on all streams;
	// MinHeartbeats is the fewest one open stream received.
	Heartbeats    int64 `json:"heartbeats"`
	MinHeartbeats int64 `json:"min_heartbeats_per_stream"`
	// Disconnects counts streams the server (or the network) ended before
	// the run closed them.
	Disconnects int64 `json:"unexpected_disconnects"`
}

// PublishReport is the publish phase.
type PublishReport struct {
	// Requested publishes; Attempted were sent; Accepted got a 2xx; Failed
	// got another status or an error.
	Requested int   `json:"requested"`
	Attempted int64 `json:"attempted"`
	Accepted  int64 `json:"accepted"`
	Failed    int64 `json:"failed"`
	// Rate is the target rate per second, 0 for as fast as possible, with
	// Publishers concurrent requests.
	Rate       float64 `json:"rate"`
	Publishers int     `json:"publishers"`
	// Seconds is the publish phase's wall time and Throughput the accepted
	// publishes per second over it.
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput_per_second"`
	// Latency is request start to response, for accepted publishes.
	Latency Latency `json:"latency_ms"`
}

// DeliveryReport is what the streams received.
type DeliveryReport struct {
	// Expected is accepted publishes × opened streams; Delivered the
	// distinct (stream, event) pairs received; Lost the accepted events a
	// stream never received by the end of the drain.
	Expected  int64 `json:"expected"`
	Delivered int64 `json:"delivered"`
	Lost      int64 `json:"lost"`
	// Duplicates counts an event received twice on one stream; OutOfOrder
	// an event whose ID did not follow the previous one's.
	Duplicates int64 `json:"duplicates"`
	OutOfOrder int64 `json:"out_of_order"`
	// Other counts events that the bench did not publish (a demo ticker,
	// an event: reset).
	Other int64 `json:"other_events"`
	// Latency is receive time minus send time, over every delivery.
	Latency Latency `json:"latency_ms"`
	// DrainSeconds is how long the bench waited after the last publish.
	DrainSeconds float64 `json:"drain_seconds"`
}

// ServerReport is the server's memory and CPU per stream.
type ServerReport struct {
	// Source is "pid N" or the metrics URL.
	Source string `json:"source"`
	// RSSBefore is sampled before the first connect, RSSAfter once the
	// streams are open and settled.
	RSSBefore int64 `json:"rss_before_bytes"`
	RSSAfter  int64 `json:"rss_after_bytes"`
	// Streams is the number of open streams the figures are divided by.
	Streams int64 `json:"streams"`
	// MemoryPerStreamKB is (RSSAfter - RSSBefore) / Streams / 1024.
	MemoryPerStreamKB float64 `json:"memory_per_stream_kb"`
	// IdleSeconds is the settle plus hold window, and IdleCPUSeconds the
	// server's CPU time over it; IdleCPUPerStream is microseconds of CPU
	// per stream per second of idle.
	IdleSeconds      float64 `json:"idle_seconds"`
	IdleCPUSeconds   float64 `json:"idle_cpu_seconds"`
	IdleCPUPerStream float64 `json:"idle_cpu_us_per_stream_second"`
	// PublishCPUSeconds is the server's CPU time over the publish and
	// drain phases.
	PublishCPUSeconds float64 `json:"publish_cpu_seconds"`
	// Extrapolated1MGB and Extrapolated1MCores are what 1,000,000 idle
	// streams would need at these rates: an extrapolation, not a
	// measurement.
	Extrapolated1MGB    float64 `json:"extrapolated_1m_streams_gb"`
	Extrapolated1MCores float64 `json:"extrapolated_1m_streams_idle_cores"`
}

// GeneratorReport is the load generator's own memory.
type GeneratorReport struct {
	// RSSBefore and RSSAfter bracket the connect phase, as for the server.
	RSSBefore         int64   `json:"rss_before_bytes"`
	RSSAfter          int64   `json:"rss_after_bytes"`
	MemoryPerStreamKB float64 `json:"memory_per_stream_kb"`
}

// Latency is a distribution in milliseconds. Percentiles are within 1 % of
// the true value; Count, Mean and Max are exact.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// ErrorCount is one kind of error and how often it happened.
type ErrorCount struct {
	Error string `json:"error"`
	Count int64  `json:"count"`
}

// Problems lists what went wrong in the run, one sentence each: streams
// that failed or dropped, publishes refused, events lost, duplicated or out
// of order, and an early stop. An empty list is a clean run.
func (r *Report) Problems() []string {
	var p []string
	add := func(n int64, format string) {
		if n > 0 {
			p = append(p, fmt.Sprintf(format, n))
		}
	}
	add(r.Streams.Failed, "%d streams failed to connect")
	add(r.Streams.Disconnects, "%d streams disconnected unexpectedly")
	add(r.Publish.Failed, "%d publishes failed")
	add(r.Delivery.Lost, "%d events lost")
	add(r.Delivery.Duplicates, "%d events delivered twice")
	add(r.Delivery.OutOfOrder, "%d events out of order")
	if rp := r.Replay; rp != nil {
		if rp.Stall != nil {
			add(rp.Stall.Failed, "%d stalled clients failed to connect")
		}
		if rp.Read != nil {
			add(rp.Read.Failed, "%d replay readers did not read the whole history")
		}
		if rp.Storm != nil {
			add(rp.Storm.Failed, "%d storm clients did not catch up and go live")
			add(rp.Storm.Duplicates, "%d events replayed twice in the storm")
		}
	}
	if r.Stopped != "" {
		p = append(p, "stopped early: "+r.Stopped)
	}
	return p
}

// WriteText writes the report for a person to read.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("target      %s (dialed %s, %s), topic %q", r.Target, r.Dialed, r.Transport, r.Topic)
	if len(r.Sources) > 0 {
		ew.printf(", %d sources %s..%s", len(r.Sources), r.Sources[0], r.Sources[len(r.Sources)-1])
	}
	ew.printf("\nelapsed     %.1f s\n", r.Elapsed)
	s := r.Streams
	if s.Requested > 0 {
		ew.printf("streams     %d/%d open, %d failed, in %.2f s\n", s.Opened, s.Requested, s.Failed, s.ConnectSeconds)
		ew.printf("connect     %s\n", s.Connect)
		ew.printf("idle        held %.1f s, %d heartbeats (at least %d per stream), %d unexpected disconnects\n",
			s.HoldSeconds, s.Heartbeats, s.MinHeartbeats, s.Disconnects)
	}
	p := r.Publish
	if p.Requested > 0 {
		rate := "as fast as possible"
		if p.Rate > 0 {
			rate = fmt.Sprintf("at %g/s", p.Rate)
		}
		ew.printf("publish     %d/%d accepted, %d failed, %s with %d publishers: %.0f/s over %.2f s\n",
			p.Accepted, p.Requested, p.Failed, rate, p.Publishers, p.Throughput, p.Seconds)
		ew.printf("  latency   %s\n", p.Latency)
	}
	d := r.Delivery
	if p.Requested > 0 && s.Requested > 0 {
		ew.printf("delivery    %d/%d delivered, %d lost, %d duplicates, %d out of order", d.Delivered, d.Expected, d.Lost, d.Duplicates, d.OutOfOrder)
		if d.Other > 0 {
			ew.printf(", %d other events", d.Other)
		}
		ew.printf("\n  latency   %s\n", d.Latency)
	}
	if sv := r.Server; sv != nil {
		ew.printf("server      %s: RSS %.1f MB -> %.1f MB with %d streams = %.2f KB per stream\n",
			sv.Source, mb(sv.RSSBefore), mb(sv.RSSAfter), sv.Streams, sv.MemoryPerStreamKB)
		ew.printf("  cpu       %.2f s over %.1f s idle (%.2f µs per stream per s), %.2f s publishing\n",
			sv.IdleCPUSeconds, sv.IdleSeconds, sv.IdleCPUPerStream, sv.PublishCPUSeconds)
		ew.printf("  1M streams, extrapolated: %.1f GB of memory, %.2f cores idle\n", sv.Extrapolated1MGB, sv.Extrapolated1MCores)
	}
	if rp := r.Replay; rp != nil {
		rp.writeText(ew)
	}
	if g := r.Generator; g.RSSAfter > 0 && s.Opened > 0 {
		ew.printf("generator   RSS %.1f MB -> %.1f MB = %.2f KB per stream\n", mb(g.RSSBefore), mb(g.RSSAfter), g.MemoryPerStreamKB)
	}
	for _, e := range r.Errors {
		ew.printf("error       %d× %s\n", e.Count, e.Error)
	}
	if probs := r.Problems(); len(probs) > 0 {
		ew.printf("PROBLEMS    %s\n", strings.Join(probs, "; "))
	} else {
		ew.printf("result      clean: nothing lost, duplicated or dropped\n")
	}
	return ew.err
}

func (rp *ReplayReport) writeText(ew *errWriter) {
	ew.printf("replay      history of %d events, %.1f MB of data, from cursor %q\n", rp.HistoryEvents, mb(rp.HistoryBytes), rp.Cursor)
	if st := rp.Stall; st != nil {
		closed := "the server still held some at the end"
		if st.ServerClosedAll {
			closed = "the server closed them all"
		}
		ew.printf("  stalled   %d replays and %d polls that never read: %d open, %d failed; held %.1f s, %s; %d ended by the server (%.1f MB read out after)\n",
			st.Replays, st.Polls, st.Opened, st.Failed, st.HeldSeconds, closed, st.EndedByServer, mb(st.ReceivedBytes))
		if st.Samples > 0 {
			ew.printf("  server    RSS idle %.1f MB, peak %.1f MB (+%.1f MB), %.1f MB after close; anonymous idle %.1f MB, peak %.1f MB; %d samples\n",
				mb(st.RSSIdle), mb(st.RSSPeak), mb(st.RSSPeakAboveIdle), mb(st.RSSAfterClose), mb(st.AnonIdle), mb(st.AnonPeak), st.Samples)
		}
	}
	if sr := rp.Storm; sr != nil {
		sr.writeText(ew)
	}
	if rd := rp.Read; rd != nil {
		ew.printf("  read      %d/%d readers read it all, %d failed, in %.2f s: %.0f events/s, %.1f MB/s\n",
			rd.Completed, rd.Readers, rd.Failed, rd.Seconds, rd.EventsPerSecond, rd.MBPerSecond)
		ew.printf("  one       %s\n", rd.Replay)
		if rd.RSSPeak > 0 {
			ew.printf("  server    RSS peak %.1f MB (+%.1f MB above idle), anonymous peak %.1f MB, %.2f s CPU\n", mb(rd.RSSPeak), mb(rd.RSSPeakAboveIdle), mb(rd.AnonPeak), rd.CPUSeconds)
		}
	}
}

// String formats a distribution on one line.
func (l Latency) String() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms (n=%d)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
