package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/httpserve/certtest"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
)

// TestOwnTLSScansCleanOfHSTS: serve and proxy ending TLS themselves scan
// clean with their own scanner, HDR-HSTS included, with the default
// tls.hsts; with hsts: off HDR-HSTS fires, which shows the rule was
// evaluated on their responses.
func TestOwnTLSScansCleanOfHSTS(t *testing.T) {
	ca := certtest.NewCA(t)
	cert, key := ca.Issue(t, certtest.Leaf{CN: "hub", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	tlsSection := "tls:\n  cert_file: " + certtest.WriteFile(t, "hub.pem", cert) +
		"\n  key_file: " + certtest.WriteFile(t, "hub.key", key) + "\n"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("retry: 1000\n\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(upstream.Close)

	for _, hsts := range []string{"", "  hsts: \"off\"\n"} {
		wantFinding := hsts != ""
		t.Run("serve"+map[bool]string{true: " hsts off"}[wantFinding], func(t *testing.T) {
			file := writeConfigFile(t, "sseguard.yaml", "log:\n  format: json\n"+tlsSection+hsts)
			listenRE := regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)
			runServe(t, func(stderr *syncBuffer) {
				m := listenRE.FindStringSubmatch(stderr.String())
				if m == nil {
					t.Fatalf("no address in the listening line:\n%s", stderr)
				}
				checkHSTSRule(t, "https://"+m[1], true, wantFinding)
			}, "--config", file, "--data", t.TempDir(), "--listen", "127.0.0.1:0")
		})
		t.Run("proxy"+map[bool]string{true: " hsts off"}[wantFinding], func(t *testing.T) {
			file := writeConfigFile(t, "proxy.yaml", "upstream: "+upstream.URL+"\n"+tlsSection+hsts)
			t.Setenv("SSEGUARD_PROXY_CONFIG", "")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stdout, stderr := eventually.NewOutput(), eventually.NewOutput()
			code, exited := 0, make(chan struct{})
			go func() {
				defer close(exited)
				code = Run(ctx, []string{"proxy", "--config", file, "--listen", "127.0.0.1:0"}, strings.NewReader(""), stdout, stderr)
			}()
			addrRE := regexp.MustCompile(`listening on (https://\S+)`)
			if err := stdout.WaitFor(10*time.Second, exited, addrRE.MatchString); err != nil {
				t.Fatalf("%v; stderr: %s", err, stderr)
			}
			base := addrRE.FindStringSubmatch(stdout.String())[1]
			checkHSTSRule(t, base, false, wantFinding)
			cancel()
			<-exited
			if code != 0 {
				t.Errorf("proxy exited %d: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), `"msg":"header drift"`) || strings.Contains(stderr.String(), policy.HSTSHeader) {
				t.Errorf("want drift logged for the upstream's missing headers, but not for HSTS, which is the proxy's own:\n%s", stderr)
			}
		})
	}
}

// checkHSTSRule scans base's stream (and page, when the hub serves one)
// with sseguard scan and checks that HDR-HSTS was evaluated and fired or
// not as wanted, and that nothing else was found.
func checkHSTSRule(t *testing.T, base string, page, wantFinding bool) {
	t.Helper()
	args := []string{"scan", base + "/events?topic=demo", "--insecure", "--format", "json", "--fail-on", "none", "--duration", "1s"}
	if page {
		args = append(args, "--page", base+"/")
	}
	code, out, errOut := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("scan exited %d: %s", code, errOut)
	}
	var rep scan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("scan report: %v\n%s", err, out)
	}
	if !slices.Contains(rep.Checked, scan.RuleHSTS) {
		t.Fatalf("HDR-HSTS was not evaluated (not applicable: %q)", rep.NotApplicable[scan.RuleHSTS])
	}
	fired := false
	for _, f := range rep.Findings {
		if f.Rule == scan.RuleHSTS {
			fired = true
			continue
		}
		t.Errorf("finding %s (%s): %s", f.Rule, f.Severity, f.Evidence)
	}
	if fired != wantFinding {
		t.Errorf("HDR-HSTS fired %v, want %v", fired, wantFinding)
	}
}
