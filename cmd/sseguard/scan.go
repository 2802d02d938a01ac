package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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

// scanFlags are the flags of sseguard scan, bound to its FlagSet by bind.
type scanFlags struct {
	headers                                      headerFlags
	otherCreds                                   headerFlags
	format, output, failOn                       string
	duration, timeout                            time.Duration
	insecure, http10, http2                      bool
	policy, expectOrder                          string
	baseline, writeBaseline                      string
	listRules                                    bool
	publishURL, token, publishTopic              string
	publishEvery, maxLatency, heartbeat, headMax time.Duration
	page, origin                                 string
	concurrency                                  int
	ramp                                         time.Duration
	sarifArtifact, color                         string
	verbose                                      bool
}

func (f *scanFlags) bind(fs *flag.FlagSet) {
	fs.Var(&f.headers, "H", "extra request header 'Name: value', repeatable (tokens, cookies)")
	fs.Var(&f.otherCreds, "other-credentials", "another principal's credential header 'Name: value', repeatable: it must not get the -H principal's stream from a cache (SSE-AUTH-LEAK)")
	fs.StringVar(&f.format, "format", "text", "report format: text, json, junit or sarif")
	fs.StringVar(&f.output, "output", "", "write the report to this file instead of standard output")
	fs.StringVar(&f.failOn, "fail-on", "medium", "exit 1 when a finding is at or above this severity: info, low, medium, high, or none")
	fs.DurationVar(&f.duration, "duration", scan.DefaultDuration, "how long to watch the stream (or, with --concurrency, the load run); at most 1h")
	fs.DurationVar(&f.timeout, "timeout", scan.DefaultTimeout, "bound on connecting and on each response head")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the server's TLS certificate")
	fs.BoolVar(&f.http10, "http1.0", false, "speak HTTP/1.0 (the stream must be close-delimited)")
	fs.BoolVar(&f.http2, "http2", false, "speak HTTP/2 (ALPN h2 over TLS; prior knowledge over http)")
	fs.StringVar(&f.policy, "policy", "strict", "what to expect: strict, baseline, or a policy FILE (YAML, see docs/scan.md)")
	fs.StringVar(&f.expectOrder, "expect-order", "", "comma-separated header names whose order is pinned, or 'baseline' for the --baseline file's order")
	fs.StringVar(&f.baseline, "baseline", "", "baseline FILE of accepted findings and pinned headers; differences are reported as drift")
	fs.StringVar(&f.writeBaseline, "write-baseline", "", "write a baseline FILE from this scan (accepting its findings, pinning its headers)")
	fs.BoolVar(&f.listRules, "list-rules", false, "print the rule catalogue and exit")
	fs.StringVar(&f.publishURL, "publish", "", "an sseguard hub's publish URL: publish timestamped events during the scan to measure latency")
	fs.StringVar(&f.token, "token", "", "bearer token for --publish (env SSEGUARD_TOKEN)")
	fs.StringVar(&f.publishTopic, "publish-topic", "", "topic for --publish (default: the URL's topic parameter)")
	fs.DurationVar(&f.publishEvery, "publish-every", scan.DefaultPublishEvery, "interval between --publish events")
	fs.DurationVar(&f.maxLatency, "max-latency", scan.DefaultMaxLatency, "longest acceptable time from publish to arrival")
	fs.DurationVar(&f.heartbeat, "heartbeat-max", scan.DefaultHeartbeatMax, "longest acceptable silence on the stream")
	fs.DurationVar(&f.headMax, "head-max", scan.DefaultHeadMax, "longest acceptable wait for a stream's response head (SSE-HEAD-DELAY)")
	fs.StringVar(&f.origin, "origin", "", "the backend URL behind the intermediary (scheme and host): asked directly too, so that findings name their cause")
	fs.StringVar(&f.page, "page", "", "URL of the HTML page that opens the stream, to check its CSP and headers")
	fs.IntVar(&f.concurrency, "concurrency", 1, "load mode: open this many streams and assert every one (at most 20000)")
	fs.DurationVar(&f.ramp, "ramp", 0, "load mode: spread the opening of streams over this time (default a quarter of --duration, at most 10s)")
	fs.StringVar(&f.sarifArtifact, "sarif-artifact", "", "location SARIF results point to, such as deploy/nginx/sseguard.conf (default the URL)")
	fs.StringVar(&f.color, "color", "auto", "colour the text report: auto (on a terminal, unless NO_COLOR is set), always or never")
	fs.BoolVar(&f.verbose, "v", false, "text report: list every request and response head")
}

func (c *scanCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "URL [flags]")
	var f scanFlags
	f.bind(fs)
	pos, err := parseInterspersed(env, fs, args) // flags before and after the URL
	if err != nil {
		return err
	}
	if f.listRules {
		return writeRules(env.stdout, f.format)
	}
	threshold, none, err := f.check(pos)
	if err != nil {
		return err
	}
	cfg, err := f.config(env, pos[0])
	if err != nil {
		return err
	}
	rep, err := scan.Run(ctx, cfg)
	if errors.Is(err, scan.ErrConfig) {
		return &usageError{msg: err.Error(), hint: "run 'sseguard scan --help'"}
	}
	if rep == nil {
		return &exitCodeError{code: exitUsage, err: err}
	}
	if werr := f.writeReport(env, rep, threshold); werr != nil {
		return werr
	}
	if err != nil {
		return &exitCodeError{code: exitUsage, err: err}
	}
	if !none && rep.Failed(threshold) {
		return &exitCodeError{code: exitError, err: fmt.Errorf("%d findings at or above %s", rep.Count(threshold), threshold)}
	}
	return nil
}

// check validates the arguments and the flags that need no file, and
// returns the --fail-on threshold (none: never fail).
func (f *scanFlags) check(pos []string) (threshold scan.Severity, none bool, err error) {
	switch {
	case len(pos) == 0:
		return 0, false, &usageError{msg: "missing the stream URL", hint: "sseguard scan 'http://127.0.0.1:8080/events?topic=demo'"}
	case len(pos) > 1:
		return 0, false, &usageError{msg: fmt.Sprintf("unexpected argument %q", pos[1]), hint: "one URL per scan; quote URLs that contain & or ?"}
	}
	if strings.EqualFold(f.failOn, "none") {
		none = true
	} else if threshold, err = scan.ParseSeverity(f.failOn); err != nil {
		return 0, false, &usageError{msg: "--fail-on: " + err.Error(), hint: "--fail-on medium (the default), or none to always exit 0 on a finished scan"}
	}
	switch f.format {
	case "text", "json", "junit", "sarif":
	default:
		return 0, false, &usageError{msg: fmt.Sprintf("--format %q: want text, json, junit or sarif", f.format)}
	}
	if f.http10 && f.http2 {
		return 0, false, &usageError{msg: "--http1.0 and --http2 exclude each other", hint: "pick one; the default is HTTP/1.1"}
	}
	if f.color != "auto" && f.color != "always" && f.color != "never" {
		return 0, false, &usageError{msg: fmt.Sprintf("--color %q: want auto, always or never", f.color)}
	}
	return threshold, none, nil
}

// config builds the scan's configuration from the flags, reading the
// policy and baseline files they name.
func (f *scanFlags) config(env *environ, target string) (scan.Config, error) {
	profile, err := scan.LoadProfile(f.policy)
	if err != nil {
		return scan.Config{}, &usageError{msg: err.Error(), hint: "--policy strict, --policy baseline or --policy FILE"}
	}
	cfg := scan.Config{
		URL: target, Header: f.headers, OtherCredentials: f.otherCreds, Insecure: f.insecure, Timeout: f.timeout, Duration: f.duration,
		Profile: profile, PageURL: f.page, Origin: f.origin, MaxLatency: f.maxLatency, HeartbeatMax: f.heartbeat, HeadMax: f.headMax,
		Concurrency: f.concurrency, Ramp: f.ramp, Version: buildVersion(),
	}
	switch {
	case f.http10:
		cfg.Proto = rawhttp.HTTP10
	case f.http2:
		cfg.Proto = rawhttp.HTTP2
	}
	if f.baseline != "" {
		if cfg.Baseline, err = scan.LoadBaseline(f.baseline); err != nil {
			return scan.Config{}, &usageError{msg: err.Error(), hint: "write one with --write-baseline FILE"}
		}
	}
	if cfg.ExpectOrder, err = f.order(cfg.Baseline); err != nil {
		return scan.Config{}, err
	}
	if f.publishURL != "" {
		tok := f.token
		if tok == "" {
			tok = env.getenv("SSEGUARD_TOKEN")
		}
		cfg.Publish = &scan.PublishConfig{URL: f.publishURL, Token: tok, Topic: f.publishTopic, Every: f.publishEvery}
	}
	if isTerminal(env.stderr) {
		cfg.Progress = env.stderr
	}
	return cfg, nil
}

// order returns the header names --expect-order pins.
func (f *scanFlags) order(b *scan.Baseline) ([]string, error) {
	var names []string
	switch {
	case f.expectOrder == "baseline":
		if b == nil || len(b.Order()) == 0 {
			return nil, &usageError{msg: "--expect-order baseline needs a --baseline file that pins headers"}
		}
		names = b.Order()
	case f.expectOrder != "":
		for _, n := range strings.Split(f.expectOrder, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	return names, nil
}

// writeReport writes the report in --format to --output (or standard
// output), and the baseline to --write-baseline.
func (f *scanFlags) writeReport(env *environ, rep *scan.Report, threshold scan.Severity) error {
	var out io.Writer = env.stdout
	if f.output != "" {
		file, err := os.Create(f.output)
		if err != nil {
			return &exitCodeError{code: exitUsage, err: fmt.Errorf("--output: %w", err)}
		}
		defer file.Close()
		out = file
	}
	useColor := f.color == "always" || (f.color == "auto" && f.output == "" && env.getenv("NO_COLOR") == "" && isTerminal(env.stdout))
	var err error
	switch f.format {
	case "json":
		err = rep.WriteJSON(out)
	case "junit":
		err = rep.WriteJUnit(out, threshold)
	case "sarif":
		err = rep.WriteSARIF(out, scan.SARIFOptions{ArtifactURI: f.sarifArtifact})
	default:
		err = rep.WriteText(out, scan.TextOptions{Color: useColor, FailOn: threshold, Verbose: f.verbose})
	}
	if err != nil {
		return &exitCodeError{code: exitUsage, err: fmt.Errorf("write report: %w", err)}
	}
	if file, ok := out.(*os.File); ok && out != env.stdout {
		if err := file.Close(); err != nil {
			return &exitCodeError{code: exitUsage, err: fmt.Errorf("--output: %w", err)}
		}
	}
	if f.output != "" {
		fmt.Fprintf(env.stderr, "sseguard scan: %s report written to %s: %d findings, %d at or above %s\n",
			f.format, f.output, len(rep.Findings), rep.Count(threshold), threshold)
	}
	if f.writeBaseline != "" {
		if err := scan.NewBaseline(rep).Write(f.writeBaseline); err != nil {
			return &exitCodeError{code: exitUsage, err: fmt.Errorf("--write-baseline: %w", err)}
		}
		fmt.Fprintf(env.stderr, "sseguard scan: baseline written to %s; review the accepted findings before committing it\n", f.writeBaseline)
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
		for _, k := range []string{scan.HAProxy, scan.Apache, scan.Caddy, scan.Varnish, scan.Squid} {
			if fix := r.Fixes[k]; fix != "" {
				fmt.Fprintf(w, "%22s %s\n", k+":", fix)
			}
		}
		fmt.Fprintf(w, "%22s %s\n", "ref:", r.Reference)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
