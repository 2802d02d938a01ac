package scan

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
)

// The JUnit XML written here is the common format that Jenkins, GitLab,
// Azure DevOps and most CI systems read (Ant's XMLJUnitResultFormatter, as
// Jenkins' junit-4.xsd describes it). scan/testdata/junit.xsd is the schema
// the tests validate it against.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped"`
	Failure   *junitMessage `xml:"failure"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one test case per rule of the
// catalogue. A rule fails when it has findings at or above failOn that the
// baseline does not accept; findings below failOn and accepted ones go to
// the test case's system-out; rules that did not apply are skipped.
func (r *Report) WriteJUnit(w io.Writer, failOn Severity) error {
	host, _ := os.Hostname()
	elapsed := fmt.Sprintf("%.3f", r.Finished.Sub(r.Started).Seconds())
	suite := junitSuite{
		Name: "sseguard scan " + r.Target, Time: elapsed,
		Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"), Hostname: host,
		Properties: []junitProperty{
			{"target", r.Target}, {"profile", r.Profile}, {"protocol", r.Protocol},
			{"fail-on", failOn.String()}, {"version", r.Version},
		},
	}
	for _, rule := range registry {
		tc := r.junitCase(rule, failOn)
		switch {
		case tc.Failure != nil:
			suite.Failures++
		case tc.Skipped != nil:
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, tc)
	}
	suite.Tests = len(suite.Cases)
	if len(r.Notes) > 0 {
		suite.SystemOut = "notes:\n- " + strings.Join(r.Notes, "\n- ") + "\n"
	}
	doc := junitSuites{Name: "sseguard scan", Tests: suite.Tests, Failures: suite.Failures, Skipped: suite.Skipped, Time: elapsed, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// junitCase is the test case of one rule: failed by its findings at or
// above failOn that the baseline does not accept, skipped when the rule
// did not apply and found nothing; other findings go to its system-out.
func (r *Report) junitCase(rule Rule, failOn Severity) junitCase {
	tc := junitCase{Name: rule.ID + ": " + rule.Title, Classname: "sseguard.scan." + strings.SplitN(rule.ID, "-", 2)[0], Time: "0"}
	var failing, other []Finding
	for _, f := range r.Findings {
		if f.Rule != rule.ID {
			continue
		}
		if !f.Accepted && f.Severity >= failOn {
			failing = append(failing, f)
		} else {
			other = append(other, f)
		}
	}
	switch {
	case len(failing) > 0:
		msg := failing[0].Evidence
		if len(failing) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(failing)-1)
		}
		var text strings.Builder
		for _, f := range failing {
			fmt.Fprintf(&text, "%s [%s] seen on %s\n  %s\n", f.Severity, f.Rule, strings.Join(f.Probes, ", "), f.Evidence)
		}
		fmt.Fprintf(&text, "fix: %s\nref: %s\n", failing[0].Remediation, rule.Reference)
		tc.Failure = &junitMessage{Message: msg, Type: failing[0].Severity.String(), Text: text.String()}
	case len(other) == 0 && r.NotApplicable[rule.ID] != "":
		tc.Skipped = &junitMessage{Message: "not applicable: " + r.NotApplicable[rule.ID]}
	}
	if len(other) > 0 {
		var out strings.Builder
		for _, f := range other {
			state := "below --fail-on " + failOn.String()
			if f.Accepted {
				state = "accepted by the baseline: " + f.Reason
			}
			fmt.Fprintf(&out, "%s [%s] (%s): %s\n", f.Severity, f.Rule, state, f.Evidence)
		}
		tc.SystemOut = out.String()
	}
	return tc
}
