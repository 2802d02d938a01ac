package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// scanCommand is the header and streaming regression scanner. Its exit
// codes: 0 clean, 1 findings at or above --fail-on, 2 usage or network
// error.
type scanCommand struct{}

func (*scanCommand) name() string { return "scan" }
func (*scanCommand) synopsis() string {
	return "check an SSE endpoint's headers, errors, CORS and streaming (CI and staging)"
}

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []rawhttp.Field

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want 'Name: value', got %q", v)
	}
	*h = append(*h, rawhttp.Field{Name: name, Value: strings.TrimSpace(value)})
	return nil
}

func (c *scanCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "URL [flags]")
	var headers headerFlags
	fs.Var(&headers, "H", "extra request header 'Name: value', repeatable (tokens, cookies)")
	format := fs.String("format", "text", "report format: text, json, junit or sarif")
	output := fs.String("output", "", "write the report to this file instead of standard output")
	failOn := fs.String("fail-on", "medium", "exit 1 when a finding is at or above this severity: info, low, medium, high, or none")
	duration := fs.Duration("duration", scan.DefaultDuration, "how long to watch the stream (or, with --concurrency, the load run); at most 1h")
	timeout := fs.Duration("timeout", scan.DefaultTimeout, "bound on connecting and on each response head")
	insecure := fs.Bool("insecure", false, "do not verify the server's TLS certificate")
	http10 := fs.Bool("http1.0", false, "speak HTTP/1.0 (the stream must be close-delimited)")
	http2 := fs.Bool("http2", false, "speak HTTP/2 (ALPN h2 over TLS; prior knowledge over http)")
	policyArg := fs.String("policy", "strict", "what to expect: strict, baseline, or a policy FILE (YAML, see docs/scan.md)")
	expectOrder := fs.String("expect-order", "", "comma-separated header names whose order is pinned, or 'baseline' for the --baseline file's order")
	baselineFile := fs.String("baseline", "", "baseline FILE of accepted findings and pinned headers; differences are reported as drift")
	writeBaseline := fs.String("write-baseline", "", "write a baseline FILE from this scan (accepting its findings, pinning its headers)")
	listRules := fs.Bool("list-rules", false, "print the rule catalogue and exit")
	publishURL := fs.String("publish", "", "an sseguard hub's publish URL: publish timestamped events during the scan to measure latency")
	token := fs.String("token", "", "bearer token for --publish (env SSEGUARD_TOKEN)")
	publishTopic := fs.String("publish-topic", "", "topic for --publish (default: the URL's topic parameter)")
	publishEvery := fs.Duration("publish-every", scan.DefaultPublishEvery, "interval between --publish events")
	maxLatency := fs.Duration("max-latency", scan.DefaultMaxLatency, "longest acceptable time from publish to arrival")
	heartbeatMax := fs.Duration("heartbeat-max", scan.DefaultHeartbeatMax, "longest acceptable silence on the stream")
	page := fs.String("page", "", "URL of the HTML page that opens the stream, to check its CSP and headers")
	concurrency := fs.Int("concurrency", 1, "load mode: open this many streams and assert every one (at most 20000)")
	ramp := fs.Duration("ramp", 0, "load mode: spread the opening of streams over this time (default a quarter of --duration, at most 10s)")
	sarifArtifact := fs.String("sarif-artifact", "", "location SARIF results point to, such as deploy/nginx/sseguard.conf (default the URL)")
	color := fs.String("color", "auto", "colour the text report: auto (on a terminal, unless NO_COLOR is set), always or never")
	verbose := fs.Bool("v", false, "text report: list every request and response head")

	pos, err := parseInterspersed(env, fs, args) // flags before and after the URL
	if err != nil {
		return err
	}

	if *listRules {
		return writeRules(env.stdout, *format)
	}
	switch {
	case len(pos) == 0:
		return &usageError{msg: "missing the stream URL", hint: "sseguard scan 'http://127.0.0.1:8080/events?topic=demo'"}
	case len(pos) > 1:
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", pos[1]), hint: "one URL per scan; quote URLs that contain & or ?"}
	}
	threshold, none := scan.Severity(0), false
	if strings.EqualFold(*failOn, "none") {
		none = true
	} else {
		s, err := scan.ParseSeverity(*failOn)
		if err != nil {
			return &usageError{msg: "--fail-on: " + err.Error(), hint: "--fail-on medium (the default), or none to always exit 0 on a finished scan"}
		}
		threshold = s
	}
	switch *format {
	case "text", "json", "junit", "sarif":
	default:
		return &usageError{msg: fmt.Sprintf("--format %q: want text, json, junit or sarif", *format)}
	}
	if *http10 && *http2 {
		return &usageError{msg: "--http1.0 and --http2 exclude each other", hint: "pick one; the default is HTTP/1.1"}
	}
	if *color != "auto" && *color != "always" && *color != "never" {
		return &usageError{msg: fmt.Sprintf("--color %q: want auto, always or never", *color)}
	}
	profile, err := scan.LoadProfile(*policyArg)
	if err != nil {
		return &usageError{msg: err.Error(), hint: "--policy strict, --policy baseline or --policy FILE"}
	}

	cfg := scan.Config{
		URL: pos[0], Header: headers, Insecure: *insecure, Timeout: *timeout, Duration: *duration,
		Profile: profile, PageURL: *page, MaxLatency: *maxLatency, HeartbeatMax: *heartbeatMax,
		Concurrency: *concurrency, Ramp: *ramp, Version: buildVersion(),
	}
	switch {
	case *http10:
		cfg.Proto = rawhttp.HTTP10
	case *http2:
		cfg.Proto = rawhttp.HTTP2
	}
	if *baselineFile != "" {
		b, err := scan.LoadBaseline(*baselineFile)
		if err != nil {
			return &usageError{msg: err.Error(), hint: "write one with --write-baseline FILE"}
		}
		cfg.Baseline = b
	}
	switch {
	case *expectOrder == "baseline":
		if cfg.Baseline == nil || len(cfg.Baseline.Order()) == 0 {
			return &usageError{msg: "--expect-order baseline needs a --baseline file that pins headers"}
		}
		cfg.ExpectOrder = cfg.Baseline.Order()
	case *expectOrder != "":
		for _, n := range strings.Split(*expectOrder, ",") {
			if n = strings.TrimSpace(n); n != "" {
				cfg.ExpectOrder = append(cfg.ExpectOrder, n)
			}
		}
	}
	if *publishURL != "" {
		tok := *token
		if tok == "" {
			tok = env.getenv("SSEGUARD_TOKEN")
		}
		cfg.Publish = &scan.PublishConfig{URL: *publishURL, Token: tok, Topic: *publishTopic, Every: *publishEvery}
	}
	if cfg.Concurrency > 1 && isTerminal(env.stderr) {
		cfg.Progress = env.stderr
	}

	rep, err := scan.Run(ctx, cfg)
	if errors.Is(err, scan.ErrConfig) {
		return &usageError{msg: err.Error(), hint: "run 'sseguard scan --help'"}
	}
	if rep == nil {
		return &exitCodeError{code: exitUsage, err: err}
	}

	var out io.Writer = env.stdout
	if *output != "" {
		f, ferr := os.Create(*output)
		if ferr != nil {
			return &exitCodeError{code: exitUsage, err: fmt.Errorf("--output: %w", ferr)}
		}
		defer f.Close()
		out = f
	}
	useColor := *color == "always" || (*color == "auto" && *output == "" && env.getenv("NO_COLOR") == "" && isTerminal(env.stdout))
	var werr error
	switch *format {
	case "json":
		werr = rep.WriteJSON(out)
	case "junit":
		werr = rep.WriteJUnit(out, threshold)
	case "sarif":
		werr = rep.WriteSARIF(out, scan.SARIFOptions{ArtifactURI: *sarifArtifact})
	default:
		werr = rep.WriteText(out, scan.TextOptions{Color: useColor, FailOn: threshold, Verbose: *verbose})
	}
	if werr != nil {
		return &exitCodeError{code: exitUsage, err: fmt.Errorf("write report: %w", werr)}
	}
	if f, ok := out.(*os.File); ok && out != env.stdout {
		if cerr := f.Close(); cerr != nil {
			return &exitCodeError{code: exitUsage, err: fmt.Errorf("--output: %w", cerr)}
		}
	}
	if *output != "" {
		fmt.Fprintf(env.stderr, "sseguard scan: %s report written to %s: %d findings, %d at or above %s\n",
			*format, *output, len(rep.Findings), rep.Count(threshold), threshold)
	}
	if *writeBaseline != "" {
		if berr := scan.NewBaseline(rep).Write(*writeBaseline); berr != nil {
			return &exitCodeError{code: exitUsage, err: fmt.Errorf("--write-baseline: %w", berr)}
		}
		fmt.Fprintf(env.stderr, "sseguard scan: baseline written to %s; review the accepted findings before committing it\n", *writeBaseline)
	}
	if err != nil {
		return &exitCodeError{code: exitUsage, err: err}
	}
	if !none && rep.Failed(threshold) {
		return &exitCodeError{code: exitError, err: fmt.Errorf("%d findings at or above %s", rep.Count(threshold), threshold)}
	}
	return nil
}

// writeRules prints the catalogue.
func writeRules(w io.Writer, format string) error {
	rules := scan.Rules()
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rules)
	}
	for _, r := range rules {
		fmt.Fprintf(w, "%-15s %-6s %s\n", r.ID, r.Severity, r.Title)
		fmt.Fprintf(w, "%22s %s\n", "why:", r.Why)
		fmt.Fprintf(w, "%22s %s\n", "fix:", r.Remediation)
		if r.Nginx != "" {
			fmt.Fprintf(w, "%22s %s\n", "nginx:", r.Nginx)
		}
		fmt.Fprintf(w, "%22s %s\n", "ref:", r.Reference)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
