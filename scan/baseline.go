package scan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// BaselineVersion is the version of the baseline file format.
const BaselineVersion = 1

// Baseline is what a team accepted at one point: findings it lives with,
// and the stream's header lines it pins. A scan with a baseline reports
// accepted findings without failing on them, and reports any difference in
// the pinned headers as BASELINE-DRIFT.
//
// The file is JSON; --write-baseline writes one from a scan, to be
// reviewed and committed:
//
//	{
//	  "version": 1,
//	  "target": "https://staging.example.com/events?topic=demo",
//	  "accept": [
//	    {"rule": "HDR-LEAK", "evidence": "Server: nginx/1.22.1", "reason": "upgrade planned, TICKET-12"}
//	  ],
//	  "headers": [
//	    {"name": "Content-Type", "value": "text/event-stream; charset=utf-8"},
//	    {"name": "Cache-Control", "value": "no-cache, no-store, no-transform"}
//	  ],
//	  "ignore": ["X-Edge-Node"]
//	}
type Baseline struct {
	Version int    `json:"version"`
	Target  string `json:"target,omitempty"`
	Created string `json:"created,omitempty"`
	// Accept lists accepted findings.
	Accept []Accepted `json:"accept"`
	// Headers pins the main stream's response header lines, in order.
	// Empty pins nothing.
	Headers []rawhttp.Field `json:"headers,omitempty"`
	// Ignore names more headers to leave out of drift detection, beyond
	// VolatileHeaders, which always are.
	Ignore []string `json:"ignore,omitempty"`
}

// VolatileHeaders change with every response, so baselines never pin them
// and drift detection ignores them.
var VolatileHeaders = []string{
	"Date", "Age", "Expires", "Last-Modified", "ETag", "Set-Cookie",
	"X-Request-Id", "X-Correlation-Id", "X-Amzn-Trace-Id", "Traceparent", "Tracestate",
	"Cf-Ray", "X-Served-By", "X-Timer", "Server-Timing", "Via",
}

// Accepted matches findings: the rule, and optionally a substring of the
// evidence and a probe.
type Accepted struct {
	Rule string `json:"rule"`
	// Evidence, when set, must occur in the finding's evidence.
	Evidence string `json:"evidence,omitempty"`
	// Probe, when set, must be one of the finding's probes.
	Probe string `json:"probe,omitempty"`
	// Reason says why it is accepted; reports show it.
	Reason string `json:"reason,omitempty"`
}

func (a Accepted) matches(f Finding) bool {
	return a.Rule == f.Rule &&
		(a.Evidence == "" || strings.Contains(f.Evidence, a.Evidence)) &&
		(a.Probe == "" || slices.Contains(f.Probes, a.Probe))
}

// LoadBaseline reads a baseline file.
func LoadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	b, err := ParseBaseline(data)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return b, nil
}

// ParseBaseline parses a baseline file's contents. Unknown fields, unknown
// rule IDs and a version other than BaselineVersion are errors.
func ParseBaseline(data []byte) (*Baseline, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Baseline
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if b.Version != BaselineVersion {
		return nil, fmt.Errorf("version %d: want %d", b.Version, BaselineVersion)
	}
	for i, a := range b.Accept {
		if _, ok := LookupRule(a.Rule); !ok {
			return nil, fmt.Errorf("accept[%d].rule %q: no such rule (see --list-rules)", i, a.Rule)
		}
	}
	for i, h := range b.Headers {
		if h.Name == "" {
			return nil, fmt.Errorf("headers[%d].name: empty", i)
		}
	}
	return &b, nil
}

// NewBaseline returns a baseline that accepts every finding of rep and
// pins the main stream's header lines.
func NewBaseline(rep *Report) *Baseline {
	b := &Baseline{Version: BaselineVersion, Target: rep.Target, Created: rep.Started.Format(time.RFC3339), Accept: []Accepted{}}
	for _, f := range rep.Findings {
		if f.Rule == RuleDrift {
			continue
		}
		b.Accept = append(b.Accept, Accepted{Rule: f.Rule, Evidence: f.Evidence, Reason: "accepted by --write-baseline; say why, or fix it"})
	}
	for _, ex := range rep.Exchanges {
		if ex.Probe == ProbeStream {
			for _, h := range ex.Header {
				if !b.ignored(h.Name) {
					b.Headers = append(b.Headers, h)
				}
			}
			break
		}
	}
	return b
}

// Write writes the baseline as indented JSON.
func (b *Baseline) Write(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Order returns the pinned header names in order, each once: what
// --expect-order baseline asserts.
func (b *Baseline) Order() []string {
	var out []string
	for _, h := range b.Headers {
		c := http.CanonicalHeaderKey(h.Name)
		if !slices.Contains(out, c) && !b.ignored(c) {
			out = append(out, c)
		}
	}
	return out
}

func (b *Baseline) ignored(name string) bool {
	for _, n := range VolatileHeaders {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	for _, n := range b.Ignore {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// checkDrift reports differences between the headers the baseline pins
// and the main stream's (BASELINE-DRIFT).
func checkDrift(p *pass) {
	b := p.obs.cfg.Baseline
	switch {
	case b == nil:
		p.skip("no --baseline")
		return
	case p.obs.load != nil:
		p.skip("not checked in load mode; scan without --concurrency")
		return
	case p.obs.main == nil:
		return
	case len(b.Headers) == 0:
		p.skip("the baseline pins no headers")
		return
	}
	p.evaluated()
	now := redact(p.obs.main.Header) // pins are written redacted
	var names []string
	for _, h := range b.Headers {
		names = appendName(names, h.Name)
	}
	for _, h := range now {
		names = appendName(names, h.Name)
	}
	for _, name := range names {
		if b.ignored(name) {
			continue
		}
		pinned := rawhttp.Values(b.Headers, name)
		got := rawhttp.Values(now, name)
		switch {
		case sameLines(name, pinned, got):
		case len(pinned) == 0:
			p.report(ProbeStream, fmt.Sprintf("%s appeared: %s", name, quoteValues(got)))
		case len(got) == 0:
			p.report(ProbeStream, fmt.Sprintf("%s disappeared (pinned %s)", name, quoteValues(pinned)))
		default:
			p.report(ProbeStream, fmt.Sprintf("%s changed: pinned %s, now %s", name, quoteValues(pinned), quoteValues(got)))
		}
	}
}

// sameLines reports whether two lists of a header's lines mean the same
// (policy.Equivalent): as many lines, each with the same meaning.
func sameLines(name string, a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !policy.Equivalent(name, a[i], b[i]) {
			return false
		}
	}
	return true
}

func appendName(names []string, n string) []string {
	c := http.CanonicalHeaderKey(n)
	if slices.Contains(names, c) {
		return names
	}
	return append(names, c)
}

// accept marks the findings the baseline accepts and returns notes on
// entries that matched nothing (fixed, or the evidence changed).
func (b *Baseline) accept(findings []Finding) []string {
	used := make([]bool, len(b.Accept))
	for i := range findings {
		f := &findings[i]
		for j, a := range b.Accept {
			if a.matches(*f) {
				f.Accepted, f.Reason = true, a.Reason
				used[j] = true
				break
			}
		}
	}
	var notes []string
	for j, a := range b.Accept {
		if !used[j] {
			e := a.Rule
			if a.Evidence != "" {
				e += " (" + clip(a.Evidence, 60) + ")"
			}
			notes = append(notes, fmt.Sprintf("baseline entry %s matched no finding: fixed? Remove it from the baseline", e))
		}
	}
	return notes
}
