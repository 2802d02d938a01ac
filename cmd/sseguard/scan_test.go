package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/sse"
)

// streamServer serves a policy-compliant stream, with leak set a Server
// header naming a version (a low finding) and with dup a second
// Cache-Control line (a medium one).
func streamServer(t *testing.T, leak, dup bool) string {
	t.Helper()
	h := policy.Middleware(policy.Strict)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if leak {
			w.Header().Set("Server", "demo/1.2")
		}
		st, err := sse.NewStream(w, r, &sse.StreamOptions{Heartbeat: 50 * time.Millisecond})
		if err != nil {
			return
		}
		_ = st.Run(r.Context(), nil)
	}))
	if dup {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner.ServeHTTP(&addHeader{ResponseWriter: w}, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/events?topic=demo"
}

// addHeader appends a second Cache-Control line when the header is
// written, as an intermediary would.
type addHeader struct{ http.ResponseWriter }

func (a *addHeader) WriteHeader(code int) {
	a.Header().Add("Cache-Control", "no-cache")
	a.ResponseWriter.WriteHeader(code)
}

func (a *addHeader) Unwrap() http.ResponseWriter { return a.ResponseWriter }

const short = "--duration=500ms"

func TestScanCLI(t *testing.T) {
	clean := streamServer(t, false, false)
	low := streamServer(t, true, false)
	medium := streamServer(t, false, true)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String() + "/events"
	ln.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler()) // a certificate no root signs
	t.Cleanup(tlsSrv.Close)
	noScheme := strings.TrimPrefix(clean, "http://")
	plainAsTLS := "https://" + noScheme

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"clean", []string{"scan", clean, short}, 0, "PASS", ""},
		{"flags after URL and before", []string{"scan", short, clean, "--fail-on", "low"}, 0, "PASS", ""},
		{"low finding, default fail-on", []string{"scan", low, short}, 0, "HDR-LEAK", ""},
		{"low finding, fail-on low", []string{"scan", low, short, "--fail-on", "low"}, 1, "FAIL", "findings at or above low"},
		{"medium finding", []string{"scan", medium, short}, 1, "HDR-DUP", "at or above medium"},
		{"medium finding, fail-on high", []string{"scan", medium, short, "--fail-on", "high"}, 0, "PASS", ""},
		{"fail-on none", []string{"scan", medium, short, "--fail-on", "none"}, 0, "FAIL", ""},
		{"network error", []string{"scan", closed, short}, 2, "", "connect"},
		{"missing URL", []string{"scan"}, 2, "", "missing the stream URL"},
		{"two URLs", []string{"scan", clean, clean}, 2, "", "unexpected argument"},
		{"bad fail-on", []string{"scan", clean, "--fail-on", "severe"}, 2, "", "--fail-on"},
		{"bad format", []string{"scan", clean, "--format", "xml"}, 2, "", "--format"},
		{"both protocols", []string{"scan", clean, "--http2", "--http1.0"}, 2, "", "exclude each other"},
		{"bad header", []string{"scan", clean, "-H", "nocolon"}, 2, "", "Name: value"},
		{"bad policy", []string{"scan", clean, "--policy", "/no/such/file.yaml"}, 2, "", "--policy"},
		{"bad URL", []string{"scan", "ftp://x/events"}, 2, "", "http or https"},
		{"URL without a scheme", []string{"scan", noScheme}, 2, "", "has no scheme: write http://" + noScheme},
		{"--http2 on plain http", []string{"scan", clean, "--http2", short}, 2, "", "drop --http2"},
		{"untrusted certificate", []string{"scan", tlsSrv.URL + "/events", short}, 2, "", "--insecure"},
		{"TLS to a plain port", []string{"scan", plainAsTLS, short}, 2, "", "use http://"},
		{"order from missing baseline", []string{"scan", clean, "--expect-order", "baseline"}, 2, "", "--baseline"},
		{"duration too long", []string{"scan", clean, "--duration", "2h"}, 2, "", "Duration"},
		{"help", []string{"scan", "--help"}, 0, "-fail-on", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
			if strings.Contains(out, "\x1b[") {
				t.Error("colour codes in output that is not a terminal")
			}
		})
	}
}

func TestScanListRules(t *testing.T) {
	code, out, _ := runCLI(t, "scan", "--list-rules")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, r := range scan.Rules() {
		if !strings.Contains(out, r.ID) || !strings.Contains(out, r.Remediation) {
			t.Errorf("--list-rules lacks %s or its remediation", r.ID)
		}
	}
	code, out, _ = runCLI(t, "scan", "--list-rules", "--format", "json")
	var rules []scan.Rule
	if code != 0 || json.Unmarshal([]byte(out), &rules) != nil || len(rules) != len(scan.Rules()) {
		t.Errorf("--list-rules --format json: exit %d, %d rules", code, len(rules))
	}
}

func TestScanOutputFormatsAndBaseline(t *testing.T) {
	url := streamServer(t, true, true)
	dir := t.TempDir()
	sarif := filepath.Join(dir, "scan.sarif")
	code, out, errOut := runCLI(t, "scan", url, short, "--format", "sarif", "--output", sarif, "--sarif-artifact", "deploy/nginx/sseguard.conf")
	if code != 1 || out != "" || !strings.Contains(errOut, "sarif report written to") {
		t.Fatalf("exit %d\nstdout %q\nstderr %s", code, out, errOut)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct{ RuleID string } `json:"results"`
		} `json:"runs"`
	}
	data, _ := os.ReadFile(sarif)
	if err := json.Unmarshal(data, &log); err != nil || log.Version != "2.1.0" || len(log.Runs[0].Results) == 0 {
		t.Fatalf("SARIF file: %v %+v", err, log)
	}

	code, out, _ = runCLI(t, "scan", url, short, "--format", "junit")
	if code != 1 || !strings.HasPrefix(out, "<?xml") || !strings.Contains(out, "<testsuites") {
		t.Errorf("junit: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "scan", url, short, "--format", "json")
	var rep scan.Report
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) == 0 {
		t.Errorf("json: exit %d\n%s", code, out)
	}

	base := filepath.Join(dir, "baseline.json")
	if code, _, errOut := runCLI(t, "scan", url, short, "--write-baseline", base); code != 1 || !strings.Contains(errOut, "baseline written") {
		t.Fatalf("--write-baseline: exit %d: %s", code, errOut)
	}
	code, out, errOut = runCLI(t, "scan", url, short, "--baseline", base, "--expect-order", "baseline")
	if code != 0 || !strings.Contains(out, "ACCEPTED BY BASELINE") {
		t.Errorf("with the baseline: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestScanFlagsDocumented: every flag of `sseguard scan` is in the flags
// table of docs/scan.md.
func TestScanFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/scan.md")
	if err != nil {
		t.Fatal(err)
	}
	// --help prints the usage, which lists every flag.
	var out strings.Builder
	env := &environ{stdout: &out, stderr: io.Discard, getenv: func(string) string { return "" }}
	_ = (&scanCommand{}).run(context.Background(), env, []string{"--help"})
	n := 0
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "-") {
			continue
		}
		n++
		name := strings.Fields(strings.TrimPrefix(line, "-"))[0]
		want := "`--" + name
		if len(name) == 1 {
			want = "`-" + name
		}
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/scan.md does not document %s", want)
		}
	}
	if n < 20 {
		t.Errorf("found %d flags in the usage; the parsing is off:\n%s", n, out.String())
	}
}
