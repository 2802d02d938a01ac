package scan

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// TextOptions controls WriteText.
type TextOptions struct {
	// Color turns on ANSI colours; set it only when writing to a terminal.
	Color bool
	// FailOn is the threshold the summary line judges by.
	FailOn Severity
	// Verbose adds every exchange's request and response headers.
	Verbose bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

// WriteText writes the readable report: findings grouped by severity, then
// the streaming figures and notes, then a one-line summary.
func (r *Report) WriteText(w io.Writer, opt TextOptions) error {
	bw := bufio.NewWriter(w)
	paint := func(code, s string) string {
		if !opt.Color {
			return s
		}
		return code + s + ansiReset
	}
	fmt.Fprintf(bw, "%s %s\n", paint(ansiBold, "sseguard scan"), printable(r.Target))
	fmt.Fprintf(bw, "%s\n", paint(ansiDim, r.headline()))
	r.writeFindings(bw, paint)
	r.writeAccepted(bw, paint)
	if line := r.streamLine(); line != "" {
		fmt.Fprintf(bw, "\n%s\n", line)
	}
	if line := r.loadLines(); line != "" {
		fmt.Fprintf(bw, "\n%s", line)
	}
	if opt.Verbose {
		r.writeExchanges(bw, paint)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(bw, "\n%s\n", paint(ansiDim, "notes"))
		for _, n := range r.Notes {
			fmt.Fprintf(bw, "  - %s\n", printable(n))
		}
	}
	fmt.Fprintf(bw, "\n%s\n", r.summary(opt.FailOn, paint))
	return bw.Flush()
}

// writeFindings writes the findings the baseline does not accept, by
// severity, one block per rule.
func (r *Report) writeFindings(w io.Writer, paint func(string, string) string) {
	sevColor := map[Severity]string{High: ansiRed + ansiBold, Medium: ansiYellow, Low: ansiCyan, Info: ansiDim}
	for sev := High; sev >= Info; sev-- {
		var group []Finding
		for _, f := range r.Findings {
			if f.Severity == sev && !f.Accepted {
				group = append(group, f)
			}
		}
		if len(group) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", paint(sevColor[sev], fmt.Sprintf("%s (%d)", strings.ToUpper(sev.String()), len(group))))
		for i := 0; i < len(group); {
			j := i + 1
			for j < len(group) && group[j].Rule == group[i].Rule {
				j++
			}
			writeRuleFindings(w, group[i:j], paint, sevColor[sev])
			i = j
		}
	}
}

// writeAccepted lists the findings the baseline accepts, with its reasons.
func (r *Report) writeAccepted(w io.Writer, paint func(string, string) string) {
	var accepted []Finding
	for _, f := range r.Findings {
		if f.Accepted {
			accepted = append(accepted, f)
		}
	}
	if len(accepted) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n", paint(ansiDim, fmt.Sprintf("ACCEPTED BY BASELINE (%d)", len(accepted))))
	for _, f := range accepted {
		fmt.Fprintf(w, "  %-15s %s: %s\n", f.Rule, f.Severity, printable(f.Evidence))
		if f.Reason != "" {
			fmt.Fprintf(w, "    %s %s\n", paint(ansiDim, "why"), printable(f.Reason))
		}
	}
}

// writeExchanges lists every request and response head (-v).
func (r *Report) writeExchanges(w io.Writer, paint func(string, string) string) {
	fmt.Fprintf(w, "\n%s\n", paint(ansiBold, "exchanges"))
	for _, ex := range r.Exchanges {
		fmt.Fprintf(w, "  %s: %s %s (%s)\n", ex.Probe, ex.Method, ex.URL, ex.Purpose)
		for _, h := range ex.Request {
			fmt.Fprintf(w, "    > %s: %s\n", printable(h.Name), printable(h.Value))
		}
		if ex.Error != "" {
			fmt.Fprintf(w, "    ! %s\n", printable(ex.Error))
			continue
		}
		fmt.Fprintf(w, "    < %s %d (%s, head after %.1f ms)\n", printable(ex.Proto), ex.Status, ex.Framing, ex.HeadersMS)
		for _, h := range ex.Header {
			fmt.Fprintf(w, "    < %s: %s\n", printable(h.Name), printable(h.Value))
		}
	}
}

// writeRuleFindings writes the findings of one rule: the rule once, then
// what was seen on which probes, then the fix.
func writeRuleFindings(w io.Writer, fs []Finding, paint func(string, string) string, color string) {
	f := fs[0]
	fmt.Fprintf(w, "  %s  %s\n", paint(color, f.Rule), f.Title)
	for _, f := range fs {
		fmt.Fprintf(w, "    %s %s %s\n", paint(ansiBold, "seen"), printable(f.Evidence), paint(ansiDim, "["+strings.Join(f.Probes, ", ")+"]"))
	}
	fmt.Fprintf(w, "    %s  %s\n", paint(ansiBold, "fix"), f.Remediation)
	fmt.Fprintf(w, "    %s  %s\n", paint(ansiBold, "ref"), f.Reference)
}

// headline is the line under the target: profile, protocol, what the main
// stream answered and how fast.
func (r *Report) headline() string {
	parts := []string{"profile " + r.Profile, r.Protocol}
	for _, ex := range r.Exchanges {
		if ex.Probe != ProbeStream {
			continue
		}
		if ex.Error != "" {
			parts = append(parts, "stream: "+printable(ex.Error))
			break
		}
		ct := "no Content-Type"
		for _, h := range ex.Header {
			if strings.EqualFold(h.Name, "Content-Type") {
				ct = h.Value
				break
			}
		}
		parts = append(parts, fmt.Sprintf("%d %s", ex.Status, printable(ct)), fmt.Sprintf("headers %s", fmtMS(ex.HeadersMS)))
		break
	}
	if s := r.Stream; s != nil {
		if s.FirstByteMS > 0 {
			parts = append(parts, "first byte "+fmtMS(s.FirstByteMS))
		}
		parts = append(parts, "window "+fmtMS(s.WindowMS))
	}
	if l := r.Load; l != nil {
		parts = append(parts, fmt.Sprintf("load %d streams over %s", l.Streams, fmtMS(l.WindowMS)))
	}
	return strings.Join(parts, " · ")
}

func (r *Report) streamLine() string {
	s := r.Stream
	if s == nil {
		return ""
	}
	parts := []string{fmt.Sprintf("stream  %d events · %d comments", s.Events, s.Comments)}
	if s.HeartbeatMS > 0 {
		parts[0] += fmt.Sprintf(" (heartbeat every %s)", fmtMS(s.HeartbeatMS))
	}
	parts = append(parts, "longest silence "+fmtMS(s.LongestGapMS))
	if s.Encoding != "" {
		parts = append(parts, "Content-Encoding "+s.Encoding)
	}
	if s.Latency != nil {
		l := fmt.Sprintf("latency p50 %s p99 %s max %s (%s", fmtMS(s.Latency.P50), fmtMS(s.Latency.P99), fmtMS(s.Latency.Max), s.LatencySource)
		if s.LatencySource == "publish" {
			l += fmt.Sprintf(", %d of %d delivered", s.Delivered, s.Published)
		}
		parts = append(parts, l+")")
	} else if s.Published > 0 {
		parts = append(parts, fmt.Sprintf("%d published, %d delivered", s.Published, s.Delivered))
	}
	switch s.End {
	case endWindow:
		parts = append(parts, "held open for the whole window")
	case endEOF:
		parts = append(parts, "ended by the server after "+fmtMS(s.EndAfterMS))
	case endCut:
		parts = append(parts, "cut after "+fmtMS(s.EndAfterMS))
	default:
		parts = append(parts, "unreadable after "+fmtMS(s.EndAfterMS))
	}
	return strings.Join(parts, " · ")
}

func (r *Report) loadLines() string {
	l := r.Load
	if l == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load    %d streams ramped over %s, watched %s: %d opened, %d never opened, %d failed attempts\n",
		l.Streams, fmtMS(l.RampMS), fmtMS(l.WindowMS), l.Opened, l.Failed, l.ConnectErrors)
	fmt.Fprintf(&b, "        %d drops (%d resets), %d reconnects, %d events received", l.Drops, l.Resets, l.Reconnects, l.Events)
	if l.Published > 0 {
		fmt.Fprintf(&b, ", %d published, %d deliveries missing", l.Published, l.Missing)
	}
	b.WriteString("\n")
	if d := l.Headers; d != nil {
		fmt.Fprintf(&b, "        time to headers p50 %s p90 %s p99 %s max %s\n", fmtMS(d.P50), fmtMS(d.P90), fmtMS(d.P99), fmtMS(d.Max))
	}
	if d := l.Latency; d != nil {
		fmt.Fprintf(&b, "        latency (%s) p50 %s p90 %s p99 %s max %s over %d deliveries\n", l.LatencySource, fmtMS(d.P50), fmtMS(d.P90), fmtMS(d.P99), fmtMS(d.Max), d.Count)
	}
	return b.String()
}

// summary is the last line: PASS or FAIL and the counts.
func (r *Report) summary(failOn Severity, paint func(string, string) string) string {
	counts := map[Severity]int{}
	accepted := 0
	for _, f := range r.Findings {
		if f.Accepted {
			accepted++
			continue
		}
		counts[f.Severity]++
	}
	total := counts[High] + counts[Medium] + counts[Low] + counts[Info]
	detail := fmt.Sprintf("%d findings (%d high, %d medium, %d low, %d info)", total, counts[High], counts[Medium], counts[Low], counts[Info])
	if accepted > 0 {
		detail += fmt.Sprintf(", %d accepted by the baseline", accepted)
	}
	detail += fmt.Sprintf(" · %d rules checked, %d not applicable", len(r.Checked), len(r.NotApplicable))
	if r.Failed(failOn) {
		return paint(ansiRed+ansiBold, "FAIL") + fmt.Sprintf("  %s · %d at or above --fail-on %s", detail, r.Count(failOn), failOn)
	}
	return paint(ansiGreen+ansiBold, "PASS") + fmt.Sprintf("  %s · none at or above --fail-on %s", detail, failOn)
}

// printable escapes control characters, which a hostile server could put in
// a header value to drive the terminal, as \xNN.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) }
