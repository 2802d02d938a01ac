package scan

import (
	"slices"
	"time"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// Finding is one rule that failed, with what was seen.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Title    string   `json:"title"`
	// Evidence says what was seen, quoting the header lines or timings.
	Evidence    string `json:"evidence"`
	Remediation string `json:"remediation"`
	Reference   string `json:"reference"`
	// Probes names the requests that showed it: stream, accept-any, ...
	Probes []string `json:"probes"`
	// Accepted is set when the --baseline file accepts the finding; it
	// is reported but does not count towards --fail-on.
	Accepted bool   `json:"accepted,omitempty"`
	Reason   string `json:"accepted_reason,omitempty"`
}

// Exchange is one request of the scan and the response head it got.
type Exchange struct {
	Probe   string          `json:"probe"`
	Purpose string          `json:"purpose"`
	Method  string          `json:"method"`
	URL     string          `json:"url"`
	Request []rawhttp.Field `json:"request_headers"`
	// Proto is the protocol of the response ("HTTP/1.1", "HTTP/2.0").
	Proto   string          `json:"proto,omitempty"`
	Status  int             `json:"status,omitempty"`
	Header  []rawhttp.Field `json:"response_headers,omitempty"`
	Framing string          `json:"framing,omitempty"`
	// HeadersMS is the time from sending the request to the complete
	// response head.
	HeadersMS float64 `json:"headers_ms,omitempty"`
	// Body is the start of a refusal's body.
	Body  string `json:"body,omitempty"`
	Error string `json:"error,omitempty"`
}

// StreamStats is what the streaming window measured on the main stream.
type StreamStats struct {
	WindowMS      float64       `json:"window_ms"`
	ConnectMS     float64       `json:"connect_ms"`
	HeadersMS     float64       `json:"headers_ms"`
	FirstByteMS   float64       `json:"first_byte_ms,omitempty"` // from sending the request; 0: no byte
	Bytes         int64         `json:"bytes"`
	Reads         int           `json:"reads"`
	Events        int           `json:"events"`
	Comments      int           `json:"comments"`
	Retry         string        `json:"retry,omitempty"`
	LastEventID   string        `json:"last_event_id,omitempty"`
	Encoding      string        `json:"content_encoding,omitempty"`
	LongestGapMS  float64       `json:"longest_silence_ms"`
	HeartbeatMS   float64       `json:"heartbeat_interval_ms,omitempty"` // median gap between comments
	GapsMS        []float64     `json:"event_gaps_ms,omitempty"`         // between consecutive events
	Bursts        int           `json:"buffered_bursts"`
	Published     int           `json:"published,omitempty"`
	Delivered     int           `json:"delivered,omitempty"`
	Latency       *Distribution `json:"latency,omitempty"`
	LatencySource string        `json:"latency_source,omitempty"` // "publish" or "ts"
	End           string        `json:"end"`                      // window, eof, cut, error
	EndAfterMS    float64       `json:"end_after_ms,omitempty"`
	EndError      string        `json:"end_error,omitempty"`
}

// Distribution summarises durations, in milliseconds.
type Distribution struct {
	Count int     `json:"count"`
	Min   float64 `json:"min_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func distribution(ds []time.Duration) *Distribution {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p*float64(len(s))+0.999999) - 1
		i = max(0, min(i, len(s)-1))
		return ms(s[i])
	}
	return &Distribution{Count: len(s), Min: ms(s[0]), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Report is the result of a scan.
type Report struct {
	Tool     string    `json:"tool"`
	Version  string    `json:"version"`
	Target   string    `json:"target"`
	Profile  string    `json:"profile"`
	Protocol string    `json:"protocol"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`

	Findings []Finding `json:"findings"`
	// Checked lists the rules that were evaluated; NotApplicable says why
	// the others were not (HSTS on plain HTTP, load rules without load).
	// Every rule of the catalogue is in exactly one of the two.
	Checked       []string          `json:"checked"`
	NotApplicable map[string]string `json:"not_applicable"`
	Notes         []string          `json:"notes,omitempty"`

	Exchanges []Exchange   `json:"exchanges"`
	Stream    *StreamStats `json:"stream,omitempty"`
	Load      *LoadStats   `json:"load,omitempty"`
}

// Count returns how many findings at or above min were not accepted by the
// baseline.
func (r *Report) Count(min Severity) int {
	n := 0
	for _, f := range r.Findings {
		if !f.Accepted && f.Severity >= min {
			n++
		}
	}
	return n
}

// Failed reports whether the scan fails at the given threshold.
func (r *Report) Failed(failOn Severity) bool { return r.Count(failOn) > 0 }
