package scan_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// cannedReport is a fixed report with every kind of finding, for the
// writers' tests.
func cannedReport() *scan.Report {
	started := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rep := &scan.Report{
		Tool: "sseguard scan", Version: "v0.0.0-test", Target: "http://127.0.0.1:8080/events?topic=demo&x=<y>",
		Profile: "strict", Protocol: "HTTP/1.1", Started: started, Finished: started.Add(1500 * time.Millisecond),
		Findings: []scan.Finding{
			{Rule: scan.RuleCTypeDup, Severity: scan.High, Title: "exactly one Content-Type line",
				Evidence:    `2 Content-Type lines: "text/event-stream; charset=utf-8", "text/event-stream"`,
				Remediation: "Set Content-Type in one place.", Reference: "RFC 9110, 5.3", Probes: []string{"stream", "reconnect"}},
			{Rule: scan.RuleErrorShape, Severity: scan.Medium, Title: "refusals are JSON with nosniff, no-store and Retry-After",
				Evidence: "406 refusal is text/plain; charset=utf-8 & <b>not JSON</b>\x01", Remediation: "Use problem+json.",
				Reference: "RFC 9457", Probes: []string{"accept-any"}},
			{Rule: scan.RuleErrorShape, Severity: scan.Medium, Title: "refusals are JSON with nosniff, no-store and Retry-After",
				Evidence: "406 refusal has no Retry-After", Remediation: "Use problem+json.", Reference: "RFC 9457", Probes: []string{"accept-json"}},
			{Rule: scan.RuleLeak, Severity: scan.Low, Title: "Server and X-Powered-By carry no versions",
				Evidence: "Server: nginx/1.22.1 names a version", Remediation: "server_tokens off.", Reference: "RFC 9110, 10.2.4",
				Probes: []string{"stream"}, Accepted: true, Reason: "upgrade planned"},
			{Rule: scan.RulePolicy, Severity: scan.Low, Title: "headers match the --policy profile",
				Evidence: "stream response lacks X-Accel-Buffering: no", Remediation: "Send it.", Reference: "SPEC", Probes: []string{"stream"}},
		},
		Checked:       []string{scan.RuleStatus, scan.RuleCTypeDup, scan.RuleErrorShape, scan.RuleLeak, scan.RulePolicy},
		NotApplicable: map[string]string{},
		Notes:         []string{"a note"},
		Exchanges: []scan.Exchange{{Probe: "stream", Method: "GET", URL: "http://127.0.0.1:8080/events", Proto: "HTTP/1.1", Status: 200,
			Header:    []rawhttp.Field{{Name: "Content-Type", Value: "text/event-stream; charset=utf-8"}, {Name: "Content-Type", Value: "text/event-stream"}},
			HeadersMS: 1.5}},
		Stream: &scan.StreamStats{WindowMS: 1500, HeadersMS: 1.5, FirstByteMS: 1.7, Events: 3, Comments: 2, HeartbeatMS: 500,
			LongestGapMS: 510, End: "window", Published: 3, Delivered: 3, LatencySource: "publish",
			Latency: &scan.Distribution{Count: 3, Min: 1, P50: 2, P90: 3, P99: 3, Max: 3}},
	}
	for _, r := range scan.Rules() {
		checked := false
		for _, c := range rep.Checked {
			checked = checked || c == r.ID
		}
		if !checked {
			rep.NotApplicable[r.ID] = "not in this canned report"
		}
	}
	return rep
}

// scannedReport is a real scan of a server with many faults.
func scannedReport(t *testing.T) *scan.Report {
	f := modified(func(h http.Header) {
		h.Add("Content-Type", "text/plain")
		h.Set("Server", "demo/1.2")
	})
	f.textErrors = true
	f.cors = "reflect"
	return runScan(t, scan.Config{URL: serveT(t, f) + "/events?topic=t&a=<b>", HeartbeatMax: 600 * time.Millisecond})
}

func TestJUnitValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rep  func(t *testing.T) *scan.Report
	}{{"canned", func(*testing.T) *scan.Report { return cannedReport() }}, {"scanned", scannedReport}} {
		t.Run(tc.name, func(t *testing.T) {
			rep := tc.rep(t)
			var b bytes.Buffer
			if err := rep.WriteJUnit(&b, scan.Medium); err != nil {
				t.Fatal(err)
			}
			if err := validateJUnit(t, b.Bytes()); err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
			var doc struct {
				Suites []struct {
					Tests    int `xml:"tests,attr"`
					Failures int `xml:"failures,attr"`
					Skipped  int `xml:"skipped,attr"`
					Cases    []struct {
						Name    string    `xml:"name,attr"`
						Failure *struct{} `xml:"failure"`
						Skipped *struct{} `xml:"skipped"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			s := doc.Suites[0]
			if s.Tests != len(scan.Rules()) || len(s.Cases) != s.Tests {
				t.Errorf("%d test cases, tests=%d; want one per rule (%d)", len(s.Cases), s.Tests, len(scan.Rules()))
			}
			failures := 0
			for _, c := range s.Cases {
				if c.Failure != nil {
					failures++
				}
			}
			if failures != s.Failures || failures == 0 {
				t.Errorf("failures attribute %d, failing cases %d", s.Failures, failures)
			}
			if tc.name == "canned" && failures != 2 {
				t.Errorf("canned report: %d failing cases, want 2 (SSE-CTYPE-DUP, SSE-ERROR-SHAPE; the low and accepted ones pass)", failures)
			}
		})
	}
}

func TestJUnitValidatorRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"suite without name":   `<testsuites><testsuite tests="1"><testcase name="a"/></testsuite></testsuites>`,
		"count not a number":   `<testsuites><testsuite name="s" tests="x"/></testsuites>`,
		"unknown element":      `<testsuites><testsuite name="s" tests="0"><bogus/></testsuite></testsuites>`,
		"failure before skip":  `<testsuites><testsuite name="s" tests="1"><testcase name="a"><failure/><skipped/></testcase></testsuite></testsuites>`,
		"bad timestamp":        `<testsuites><testsuite name="s" tests="0" timestamp="yesterday"/></testsuites>`,
		"case without name":    `<testsuites><testsuite name="s" tests="1"><testcase/></testsuite></testsuites>`,
		"undeclared attribute": `<testsuites><testsuite name="s" tests="0" color="red"/></testsuites>`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := validateJUnit(t, []byte(doc)); err == nil {
				t.Errorf("accepted %s", doc)
			}
		})
	}
}

func TestSARIFValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rep  func(t *testing.T) *scan.Report
		opt  scan.SARIFOptions
	}{
		{"canned", func(*testing.T) *scan.Report { return cannedReport() }, scan.SARIFOptions{}},
		{"canned with artifact", func(*testing.T) *scan.Report { return cannedReport() }, scan.SARIFOptions{ArtifactURI: "deploy/nginx/sseguard.conf"}},
		{"scanned", scannedReport, scan.SARIFOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := tc.rep(t)
			var b bytes.Buffer
			if err := rep.WriteSARIF(&b, tc.opt); err != nil {
				t.Fatal(err)
			}
			if err := validateSARIF(t, b.Bytes()); err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
			var log struct {
				Runs []struct {
					Tool struct {
						Driver struct {
							Rules []struct{ ID string } `json:"rules"`
						} `json:"driver"`
					} `json:"tool"`
					Results []struct {
						RuleID       string `json:"ruleId"`
						RuleIndex    int    `json:"ruleIndex"`
						Level        string `json:"level"`
						Suppressions []struct {
							Status string `json:"status"`
						} `json:"suppressions"`
						Locations []struct {
							PhysicalLocation struct {
								ArtifactLocation struct{ URI string } `json:"artifactLocation"`
							} `json:"physicalLocation"`
						} `json:"locations"`
					} `json:"results"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(b.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			run := log.Runs[0]
			if len(run.Tool.Driver.Rules) != len(scan.Rules()) || len(run.Results) != len(rep.Findings) {
				t.Fatalf("%d rules, %d results; want %d and %d", len(run.Tool.Driver.Rules), len(run.Results), len(scan.Rules()), len(rep.Findings))
			}
			levels := map[scan.Severity]string{scan.High: "error", scan.Medium: "warning", scan.Low: "note", scan.Info: "note"}
			for i, r := range run.Results {
				f := rep.Findings[i]
				if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID || r.RuleID != f.Rule {
					t.Errorf("result %d: ruleId %s, ruleIndex %d names %s", i, r.RuleID, r.RuleIndex, run.Tool.Driver.Rules[r.RuleIndex].ID)
				}
				if r.Level != levels[f.Severity] {
					t.Errorf("result %d: level %s for %s", i, r.Level, f.Severity)
				}
				if (len(r.Suppressions) == 1 && r.Suppressions[0].Status == "accepted") != f.Accepted {
					t.Errorf("result %d: suppressions %+v, accepted %v", i, r.Suppressions, f.Accepted)
				}
				want := tc.opt.ArtifactURI
				if want == "" {
					want = rep.Target
				}
				if got := r.Locations[0].PhysicalLocation.ArtifactLocation.URI; got != want {
					t.Errorf("result %d: location %q, want %q", i, got, want)
				}
			}
		})
	}
}

func TestSARIFValidatorRejects(t *testing.T) {
	var b bytes.Buffer
	if err := cannedReport().WriteSARIF(&b, scan.SARIFOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string][2]string{
		"unknown level":   {`"level": "error"`, `"level": "critical"`},
		"wrong version":   {`"version": "2.1.0"`, `"version": "2.0.0"`},
		"misspelt field":  {`"ruleId"`, `"ruleID"`},
		"bad severity":    {`"security-severity": "8.0"`, `"security-severity": "high"`},
		"no message text": {`"message": {`, `"message": {"x": 1, `},
	} {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(b.String(), change[0], change[1], 1)
			if doc == b.String() {
				t.Fatalf("%q not in the SARIF output", change[0])
			}
			if err := validateSARIF(t, []byte(doc)); err == nil {
				t.Errorf("accepted a log with %s", name)
			}
		})
	}
}

func TestTextReport(t *testing.T) {
	rep := cannedReport()
	var plain, color bytes.Buffer
	if err := rep.WriteText(&plain, scan.TextOptions{FailOn: scan.Medium}); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteText(&color, scan.TextOptions{FailOn: scan.Medium, Color: true}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain.Bytes(), []byte("\x1b[")) {
		t.Error("colour codes without Color")
	}
	if !bytes.Contains(color.Bytes(), []byte("\x1b[31")) {
		t.Error("no colour codes with Color")
	}
	lines := strings.Split(strings.TrimRight(plain.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "FAIL  4 findings (1 high, 2 medium, 1 low, 0 info), 1 accepted by the baseline") {
		t.Errorf("summary line %q", last)
	}
	golden := filepath.Join("testdata", "report.txt.golden")
	if *update {
		if err := os.WriteFile(golden, plain.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./scan -run TestTextReport -update)", err)
	}
	if plain.String() != string(want) {
		t.Errorf("text report differs from %s (run with -update if the change is meant):\n%s", golden, plain.String())
	}
	var pass bytes.Buffer
	_ = rep.WriteText(&pass, scan.TextOptions{FailOn: scan.High + 1})
	if !strings.Contains(pass.String(), "\nPASS  ") {
		t.Errorf("no PASS line when nothing reaches --fail-on:\n%s", pass.String())
	}
}

func TestJSONReportRoundTrip(t *testing.T) {
	rep := cannedReport()
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back scan.Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Findings) != len(rep.Findings) || back.Findings[0].Severity != scan.High || !back.Findings[3].Accepted {
		t.Errorf("round trip lost findings: %+v", back.Findings)
	}
	if !strings.Contains(b.String(), `"severity": "high"`) {
		t.Error("severities are not written by name")
	}
}
