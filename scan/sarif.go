package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"time"
)

// SARIF 2.1.0 (OASIS Standard, "Static Analysis Results Interchange
// Format Version 2.1.0"). The section numbers in the comments are the
// specification's; scan/testdata/sarif-2.1.0-subset.schema.json checks the
// output in tests.

// SARIFOptions controls WriteSARIF.
type SARIFOptions struct {
	// ArtifactURI is the location results point to. Empty means the
	// scanned URL. Code-scanning dashboards annotate files of the
	// repository, so a CI job may point it at the deployment file whose
	// settings the scan checks, such as deploy/nginx/sseguard.conf.
	ArtifactURI string
}

const sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"

// sarifLog is the top-level object (3.13).
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

// sarifRun is one run of one tool (3.14).
type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

// sarifTool (3.18) holds the driver, a toolComponent (3.19).
type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

// sarifRule is a reportingDescriptor (3.49).
type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	FullDescription      sarifText         `json:"fullDescription"`
	Help                 sarifText         `json:"help"`
	HelpURI              string            `json:"helpUri"`
	DefaultConfiguration sarifRuleConfig   `json:"defaultConfiguration"`
	Properties           sarifRuleProperty `json:"properties"`
}

// sarifText is a message (3.11) or multiformatMessageString (3.12).
type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

// sarifRuleConfig is a reportingConfiguration (3.50).
type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifRuleProperty struct {
	Tags             []string `json:"tags"`
	SecuritySeverity string   `json:"security-severity"`
	Precision        string   `json:"precision"`
	Reference        string   `json:"reference"`
}

// sarifInvocation (3.20).
type sarifInvocation struct {
	ExecutionSuccessful bool   `json:"executionSuccessful"`
	StartTimeUTC        string `json:"startTimeUtc"`
	EndTimeUTC          string `json:"endTimeUtc"`
}

// sarifResult (3.27).
type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          map[string]any     `json:"properties"`
}

// sarifLocation (3.28) with a physicalLocation (3.29) and its
// artifactLocation (3.4).
type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
	} `json:"physicalLocation"`
}

// sarifSuppression (3.35): a finding the baseline accepts.
type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification,omitempty"`
}

// sarifLevel maps a severity to a SARIF level (3.27.10).
func sarifLevel(s Severity) string {
	switch s {
	case High:
		return "error"
	case Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the score code-scanning dashboards rank alerts by
// (0.1-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0+ critical).
func securitySeverity(s Severity) string {
	switch s {
	case High:
		return "8.0"
	case Medium:
		return "5.5"
	case Low:
		return "3.0"
	}
	return "1.0"
}

// ruleName turns SSE-CTYPE-DUP into SseCtypeDup, the PascalCase name SARIF
// viewers show.
func ruleName(id string) string {
	var b strings.Builder
	for _, part := range strings.Split(id, "-") {
		if part == "" {
			continue
		}
		b.WriteString(part[:1])
		b.WriteString(strings.ToLower(part[1:]))
	}
	return b.String()
}

// WriteSARIF writes the report as a SARIF 2.1.0 log with one run: every
// rule of the catalogue in the driver, one result per finding, accepted
// findings as suppressed results.
func (r *Report) WriteSARIF(w io.Writer, opt SARIFOptions) error {
	artifact := opt.ArtifactURI
	if artifact == "" {
		artifact = r.Target
	}
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{Name: "sseguard-scan", Version: r.Version, InformationURI: "https://github.com/sseguard/sseguard"}},
		Invocations: []sarifInvocation{{
			ExecutionSuccessful: true,
			StartTimeUTC:        r.Started.UTC().Format(time.RFC3339),
			EndTimeUTC:          r.Finished.UTC().Format(time.RFC3339),
		}},
		Results:    []sarifResult{},
		Properties: map[string]any{"target": r.Target, "profile": r.Profile, "protocol": r.Protocol},
	}
	index := map[string]int{}
	for i, rule := range registry {
		index[rule.ID] = i
		help := rule.Remediation
		md := rule.Remediation
		if rule.Nginx != "" {
			help += " nginx: " + rule.Nginx
			md += "\n\n**nginx:** " + rule.Nginx
		}
		md += "\n\nReference: " + rule.Reference
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: rule.ID, Name: ruleName(rule.ID),
			ShortDescription:     sarifText{Text: rule.Title},
			FullDescription:      sarifText{Text: rule.Why},
			Help:                 sarifText{Text: help, Markdown: md},
			HelpURI:              "https://github.com/sseguard/sseguard/blob/main/docs/scan.md#" + strings.ToLower(rule.ID),
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(rule.Severity)},
			Properties: sarifRuleProperty{Tags: []string{"security", "server-sent-events", strings.ToLower(strings.SplitN(rule.ID, "-", 2)[0])},
				SecuritySeverity: securitySeverity(rule.Severity), Precision: "high", Reference: rule.Reference},
		})
	}
	for _, f := range r.Findings {
		sum := sha256.Sum256([]byte(r.Target + "\x00" + f.Rule + "\x00" + f.Evidence))
		res := sarifResult{
			RuleID: f.Rule, RuleIndex: index[f.Rule], Level: sarifLevel(f.Severity),
			Message:             sarifText{Text: f.Title + ": " + f.Evidence + " (seen on " + strings.Join(f.Probes, ", ") + " of " + r.Target + ")"},
			PartialFingerprints: map[string]string{"sseguardFinding/v1": hex.EncodeToString(sum[:16])},
			Properties:          map[string]any{"severity": f.Severity.String(), "probes": f.Probes, "remediation": f.Remediation},
		}
		var loc sarifLocation
		loc.PhysicalLocation.ArtifactLocation.URI = artifact
		res.Locations = []sarifLocation{loc}
		if f.Accepted {
			res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: f.Reason}}
		}
		run.Results = append(run.Results, res)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}})
}

// WriteJSON writes the whole report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
