package scan_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/nginxtest"
	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// These tests run Debian's nginx, as a child process on a loopback port,
// in front of the project's own hub. Outside CI a missing nginx skips them
// with a message; under CI=true (set by .ci/run, which installs nginx) it
// fails them.

const nginxDir = "../deploy/nginx"

func nginxBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found, and CI=true: .ci/run installs Debian's nginx package")
	}
	t.Skip("nginx not found: install Debian's nginx package (apt-get install nginx) to run the real-intermediary tests")
	return ""
}

// nginxSite rewrites a deploy/nginx file for the test: the upstream hub's
// address and the listen directive, each of which must occur exactly once.
func nginxSite(conf, upstream, listen string) (string, error) {
	for _, r := range []struct{ old, new string }{
		{"server 127.0.0.1:8080;", "server " + upstream + ";"},
		{"listen 80;", "listen " + listen + ";"},
	} {
		if n := strings.Count(conf, r.old); n != 1 {
			return "", fmt.Errorf("%q occurs %d times, want exactly once", r.old, n)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	return conf, nil
}

// startNginx runs nginx with the site file in front of upstream and
// returns its base URL. listenExtra is appended to the listen address
// (" http2" for cleartext HTTP/2). It stops nginx when the test ends.
func startNginx(t testing.TB, siteFile, upstream, listenExtra string) string {
	t.Helper()
	bin := nginxBinary(t)
	raw, err := os.ReadFile(siteFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		site, err := nginxSite(string(raw), upstream, addr+listenExtra)
		if err != nil {
			t.Fatalf("%s: %v", siteFile, err)
		}
		cmd, err := nginxtest.Command(bin, dir, site, 512)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitListening(addr, exited); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			lastErr = fmt.Errorf("nginx did not start: %v\n%s%s", err, out.String(), log)
			_ = cmd.Process.Kill()
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		return "http://" + addr
	}
	t.Fatal(lastErr)
	return ""
}

func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 10 s")
}

// hubHost is the hub's host:port, what nginx's upstream needs.
func hubHost(h *testHub) string { return strings.TrimPrefix(h.base, "http://") }

// TestNginxRecommended: deploy/nginx/sseguard.conf (origin-set headers)
// and deploy/nginx/sseguard-proxy-headers.conf (proxy_hide_header plus
// add_header) in front of the hub scan clean, with latency measured through
// nginx, over HTTP/1.1, HTTP/1.0 and cleartext HTTP/2.
func TestNginxRecommended(t *testing.T) {
	t.Parallel()
	// Two heartbeats in one read mean buffering (SSE-FLUSH): 400 ms apart,
	// only a buffer, not a busy machine delaying nginx, holds one that long.
	h := startHub(t, 400*time.Millisecond)
	type protoCase struct {
		name   string
		proto  rawhttp.Proto
		listen string
	}
	var cases []protoCase
	for _, file := range []string{"sseguard.conf", "sseguard-proxy-headers.conf"} {
		for _, p := range []protoCase{
			{"HTTP/1.1", rawhttp.HTTP11, ""},
			{"HTTP/1.0", rawhttp.HTTP10, ""},
			{"HTTP/2 cleartext", rawhttp.HTTP2, " http2"},
		} {
			cases = append(cases, protoCase{file + " " + p.name, p.proto, p.listen})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file, _, _ := strings.Cut(tc.name, " ")
			base := startNginx(t, filepath.Join(nginxDir, file), hubHost(h), tc.listen)
			rep := runScan(t, scan.Config{
				URL:          base + "/events?topic=demo",
				Proto:        tc.proto,
				PageURL:      "/",
				Duration:     1500 * time.Millisecond,
				HeartbeatMax: time.Second,
				// Straight to the hub: the h2c listener speaks nothing else.
				Publish: &scan.PublishConfig{URL: h.base + "/api/publish", Token: h.token, Every: 150 * time.Millisecond},
			})
			if len(rep.Findings) > 0 {
				t.Fatalf("findings behind the recommended nginx config: %s", describe(rep))
			}
			if got := serverHeader(rep); got != "nginx" {
				t.Errorf("Server %q: the scan did not go through nginx (or server_tokens is on)", got)
			}
			if st := rep.Stream; st == nil || st.Published < 3 || st.Delivered != st.Published {
				t.Errorf("stream %+v: want every published event delivered through nginx", st)
			}
		})
	}
}

func serverHeader(rep *scan.Report) string {
	for _, ex := range rep.Exchanges {
		if ex.Probe == scan.ProbeStream {
			if v := rawhttp.Values(ex.Header, "Server"); len(v) > 0 {
				return v[0]
			}
		}
	}
	return ""
}

// variant is one misconfigured nginx file and what its header comments
// say about it.
type variant struct {
	file      string
	expect    []string
	heartbeat time.Duration
	timeout   time.Duration
}

func readVariants(t testing.TB) []variant {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(nginxDir, "testdata", "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no nginx variants in %s/testdata (%v)", nginxDir, err)
	}
	var out []variant
	for _, f := range files {
		out = append(out, readVariant(t, f))
	}
	return out
}

// TestNginxMisconfigured: each variant in deploy/nginx/testdata produces
// the findings its comments expect, each with an nginx remediation.
func TestNginxMisconfigured(t *testing.T) {
	t.Parallel()
	variants := readVariants(t)
	var mu sync.Mutex
	hubs := map[time.Duration]*testHub{}
	hubFor := func(d time.Duration) *testHub {
		mu.Lock()
		defer mu.Unlock()
		if hubs[d] == nil {
			hubs[d] = startHub(t, d)
		}
		return hubs[d]
	}
	for _, v := range variants {
		t.Run(strings.TrimSuffix(filepath.Base(v.file), ".conf"), func(t *testing.T) {
			t.Parallel()
			h := hubFor(v.heartbeat)
			base := startNginx(t, v.file, hubHost(h), "")
			cfg := scan.Config{
				URL:          base + "/events?topic=demo",
				Duration:     1500 * time.Millisecond,
				Timeout:      v.timeout,
				HeartbeatMax: time.Second,
				Publish:      &scan.PublishConfig{URL: h.base + "/api/publish", Token: h.token, Every: 200 * time.Millisecond},
			}
			if slices.Contains(v.expect, scan.RuleCut) {
				// nginx cuts a stream that stays quiet for its read
				// timeout: publishing would keep it busy until the window
				// all but ends, so the stream is left quiet, and watched
				// long enough that the cut falls well inside the window on
				// a loaded machine too.
				cfg.Publish, cfg.Duration = nil, 4*time.Second
			}
			rep := runScan(t, cfg)
			assertFires(t, rep, v.expect...)
			for _, f := range rep.Findings {
				rule, _ := scan.LookupRule(f.Rule)
				if rule.Nginx != "" && !strings.Contains(f.Remediation, "nginx: "+rule.Nginx) {
					t.Errorf("%s remediation lacks the nginx fix: %q", f.Rule, f.Remediation)
				}
			}
			t.Logf("findings: %s", describe(rep))
		})
	}
}

func TestNginxSiteRewriteNeedsOneOfEach(t *testing.T) {
	if _, err := nginxSite("listen 80; listen 80; server 127.0.0.1:8080;", "a:1", "b:2"); err == nil {
		t.Error("two listen directives were accepted")
	}
	if _, err := nginxSite("listen 80;", "a:1", "b:2"); err == nil {
		t.Error("a missing upstream was accepted")
	}
}
