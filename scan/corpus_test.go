package scan_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// The corpus of real intermediaries beside nginx (nginx_test.go): each
// runs as a child process on a free loopback port, with its own config,
// pid and log files under t.TempDir(), in front of the project's hub.
// Outside CI a missing binary skips its cases with a message; under
// CI=true (set by .ci/run, which installs them) it fails them.

// intermediary is one kind of proxy the corpus runs.
type intermediary struct {
	name string // as fixes name it in remediations
	dir  string // its deploy/ folder
	rec  string // the recommended config, in dir
	pkg  string // the Debian package
	bins []string
	// start runs it with the config file's text in front of upstream,
	// listening on addr; it returns the process and what to read on
	// failure.
	start func(t testing.TB, bin, conf, upstream, addr, dir string) *exec.Cmd
}

var corpus = []intermediary{
	{name: "HAProxy", dir: "../deploy/haproxy", rec: "sseguard.cfg", pkg: "haproxy", bins: []string{"/usr/sbin/haproxy", "haproxy"}, start: startHAProxy},
	{name: "Apache httpd", dir: "../deploy/apache", rec: "sseguard.conf", pkg: "apache2", bins: []string{"/usr/sbin/apache2", "apache2"}, start: startApache},
	{name: "Squid", dir: "../deploy/squid", rec: "squid.conf", pkg: "squid", bins: []string{"/usr/sbin/squid", "squid"}, start: startSquid},
	{name: "Caddy", dir: "../deploy/caddy", rec: "Caddyfile", pkg: "caddy", bins: []string{"/usr/bin/caddy", "caddy"}, start: startCaddy},
	{name: "Varnish", dir: "../deploy/varnish", rec: "sseguard.vcl", pkg: "varnish", bins: []string{"/usr/sbin/varnishd", "varnishd"}, start: startVarnish},
}

// fixKeys maps the corpus names to the keys of Rule.Fixes.
var fixKeys = map[string]string{"HAProxy": scan.HAProxy, "Apache httpd": scan.Apache, "Squid": scan.Squid, "Caddy": scan.Caddy, "Varnish": scan.Varnish}

func startSquid(t testing.TB, bin, conf, upstream, addr, dir string) *exec.Cmd {
	t.Helper()
	host, port, _ := net.SplitHostPort(upstream)
	cfg, err := rewrite(conf, "http_port 80 ", "http_port "+addr+" ", "cache_peer 127.0.0.1 parent 8080 ", "cache_peer "+host+" parent "+port+" ")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pid_filename %s/squid.pid\ncache_log %s/error.log\naccess_log none\ncoredump_dir %s\npinger_enable off\nshutdown_lifetime 0 seconds\nlogfile_rotate 0\ncache_mem 8 MB\n", dir, dir, dir)
	if os.Getuid() == 0 {
		b.WriteString("cache_effective_user proxy\n")
		_ = os.Chmod(dir, 0o777) // its logs, written as that user
	}
	file := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(file, []byte(b.String()+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return exec.Command(bin, "-N", "-f", file)
}

func startCaddy(t testing.TB, bin, conf, upstream, addr, dir string) *exec.Cmd {
	t.Helper()
	host, _, _ := net.SplitHostPort(addr)
	// bind: on the test's loopback address only, not on every interface
	// (Caddy's default), where the port is more likely taken.
	cfg, err := rewrite(conf, ":80 {", "http://"+addr+" {\n\tbind "+host, "127.0.0.1:8080", upstream)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	return cmd
}

func startVarnish(t testing.TB, bin, conf, upstream, addr, dir string) *exec.Cmd {
	t.Helper()
	host, port, _ := net.SplitHostPort(upstream)
	cfg, err := rewrite(conf, `.host = "127.0.0.1";`, `.host = "`+host+`";`, `.port = "8080";`, `.port = "`+port+`";`)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "sseguard.vcl")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "-f", file, "-a", addr, "-n", filepath.Join(dir, "varnish"), "-s", "malloc,16m",
		"-p", "timeout_idle=5", "-p", "send_timeout=600", "-p", "thread_pool_min=10"}
	if os.Getuid() == 0 {
		args = append(args, "-j", "none")
	}
	return exec.Command(bin, args...)
}

func (in intermediary) binary(t testing.TB) string {
	t.Helper()
	for _, b := range in.bins {
		if strings.HasPrefix(b, "/") {
			if _, err := os.Stat(b); err == nil {
				return b
			}
		} else if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found, and CI=true: .ci/run installs Debian's %s package", in.name, in.pkg)
	}
	t.Skipf("%s not found: install Debian's %s package (apt-get install %s) to run the real-intermediary tests", in.name, in.pkg, in.pkg)
	return ""
}

// rewrite replaces each old with its new, and fails unless each occurs
// exactly once.
func rewrite(conf string, pairs ...string) (string, error) {
	for i := 0; i < len(pairs); i += 2 {
		if n := strings.Count(conf, pairs[i]); n != 1 {
			return "", fmt.Errorf("%q occurs %d times, want exactly once", pairs[i], n)
		}
		conf = strings.Replace(conf, pairs[i], pairs[i+1], 1)
	}
	return conf, nil
}

func startHAProxy(t testing.TB, bin, conf, upstream, addr, dir string) *exec.Cmd {
	t.Helper()
	cfg, err := rewrite(conf, "bind :80", "bind "+addr, "server hub 127.0.0.1:8080", "server hub "+upstream)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return exec.Command(bin, "-db", "-f", file, "-p", filepath.Join(dir, "haproxy.pid"))
}

func startApache(t testing.TB, bin, conf, upstream, addr, dir string) *exec.Cmd {
	t.Helper()
	site, err := rewrite(conf, "Listen 80", "Listen "+addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(site, "127.0.0.1:8080") {
		t.Fatal("the Apache config names no hub at 127.0.0.1:8080")
	}
	site = strings.ReplaceAll(site, "127.0.0.1:8080", upstream)
	mods := "/usr/lib/apache2/modules"
	var main strings.Builder
	fmt.Fprintf(&main, "ServerRoot %s\nServerName localhost\nPidFile %s/apache.pid\nErrorLog %s/error.log\nLogLevel warn\nDefaultRuntimeDir %s\nMutex posixsem\n", dir, dir, dir, dir)
	for _, m := range []string{"mpm_event", "authz_core", "proxy", "proxy_http", "headers", "filter", "deflate", "setenvif", "env"} {
		fmt.Fprintf(&main, "LoadModule %s_module %s/mod_%s.so\n", m, mods, m)
	}
	if os.Getuid() == 0 {
		main.WriteString("User nobody\nGroup nogroup\n")
	}
	fmt.Fprintf(&main, "Include %s/site.conf\n", dir)
	for name, text := range map[string]string{"site.conf": site, "httpd.conf": main.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return exec.Command(bin, "-DFOREGROUND", "-d", dir, "-f", filepath.Join(dir, "httpd.conf"))
}

// run starts the intermediary with the config file in front of upstream
// and returns its base URL; it stops it when the test ends.
func (in intermediary) run(t testing.TB, file, upstream string) string {
	t.Helper()
	bin := in.binary(t)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		dir := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cmd := in.start(t, bin, string(raw), upstream, addr, dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		// Apache's children inherit the output pipe: Wait must not wait
		// for them to close it.
		cmd.WaitDelay = 2 * time.Second
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		done := make(chan struct{})
		go func() { exited <- cmd.Wait(); close(done) }()
		stop := func(sig syscall.Signal) {
			_ = syscall.Kill(-cmd.Process.Pid, sig)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
		if err := waitListening(addr, exited); err != nil {
			stop(syscall.SIGKILL)
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			lastErr = fmt.Errorf("%s did not start: %v\n%s%s", in.name, err, out.String(), log)
			continue
		}
		t.Cleanup(func() { stop(syscall.SIGTERM) })
		return "http://" + addr
	}
	t.Fatal(lastErr)
	return ""
}

// TestIntermediaryRecommended: each recommended config in deploy/ in
// front of the hub scans without a finding at medium or above, every
// published event delivered through it, with the idle stream beside.
func TestIntermediaryRecommended(t *testing.T) {
	t.Parallel()
	h := startHub(t, 400*time.Millisecond)
	for _, in := range corpus {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			base := in.run(t, filepath.Join(in.dir, in.rec), hubHost(h))
			rep := runScan(t, scan.Config{
				URL:          base + "/events?topic=demo",
				Header:       []rawhttp.Field{{Name: "Authorization", Value: "Bearer " + h.token}},
				PageURL:      "/",
				Duration:     2 * time.Second,
				HeartbeatMax: 1500 * time.Millisecond,
				Publish:      &scan.PublishConfig{URL: h.base + "/api/publish", Token: h.token, Every: 150 * time.Millisecond},
			})
			for _, f := range rep.Findings {
				if f.Severity >= scan.Medium {
					t.Errorf("finding behind the recommended %s config: %s", in.name, describe(rep))
					break
				}
			}
			if st := rep.Stream; st == nil || st.Published < 3 || st.Delivered != st.Published {
				t.Errorf("stream %+v: want every published event delivered through %s", st, in.name)
			}
			t.Logf("findings: %s", describe(rep))
		})
	}
}

// TestIntermediaryMisconfigured: each variant in deploy/<name>/testdata
// produces the findings its comments expect, with that intermediary's fix
// in the remediation; an idle cut is seen while the main stream is kept
// busy by publishing (the documented CI recipe).
func TestIntermediaryMisconfigured(t *testing.T) {
	t.Parallel()
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
	for _, in := range corpus {
		files, err := filepath.Glob(filepath.Join(in.dir, "testdata", "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s variants in %s/testdata", in.name, in.dir)
		}
		for _, file := range files {
			v := readVariant(t, file)
			t.Run(in.name+"/"+filepath.Base(file), func(t *testing.T) {
				t.Parallel()
				h := hubFor(v.heartbeat)
				base := in.run(t, file, hubHost(h))
				rep := runScan(t, scan.Config{
					URL:          base + "/events?topic=demo",
					Header:       []rawhttp.Field{{Name: "Authorization", Value: "Bearer " + h.token}},
					Duration:     3 * time.Second,
					Timeout:      v.timeout,
					HeartbeatMax: 5 * time.Second,
					Publish:      &scan.PublishConfig{URL: h.base + "/api/publish", Token: h.token, Every: 200 * time.Millisecond},
				})
				assertFires(t, rep, v.expect...)
				if slices.Contains(v.expect, scan.RuleNoCompress) {
					// Whatever else a compressor causes names it.
					for _, f := range rep.Findings {
						if (f.Rule == scan.RuleFlush || f.Rule == scan.RuleHeartbeat) && !strings.Contains(f.Evidence, "compress") {
							t.Errorf("%s on a compressed stream does not name the compression: %q", f.Rule, f.Evidence)
						}
					}
				}
				idleCut := false
				for _, f := range rep.Findings {
					idleCut = idleCut || (f.Rule == scan.RuleCut && strings.Contains(f.Evidence, "the idle stream") && strings.Contains(f.Evidence, "heartbeat"))
					rule, _ := scan.LookupRule(f.Rule)
					key := fixKeys[in.name]
					if fix := rule.Fixes[key]; fix != "" && !strings.Contains(f.Remediation, in.name+": "+fix) {
						t.Errorf("%s remediation lacks the %s fix: %q", f.Rule, in.name, f.Remediation)
					}
				}
				if !slices.Contains(v.expect, scan.RuleHeadDelay) {
					assertQuiet(t, rep, scan.RuleHeadDelay)
				}
				if slices.Contains(v.expect, scan.RuleCut) && !idleCut {
					t.Errorf("no SSE-CUT of the idle stream, with its time and the heartbeat: %s", describe(rep))
				}
				t.Logf("findings: %s", describe(rep))
			})
		}
	}
}

// TestHeadHeldUntilFirstByte: a server (as a buffering or compressing
// proxy does) that holds the head for longer than --timeout: the head is
// awaited for the whole window, the header rules run on it when it comes
// (a duplicate Content-Type), and the delay is its own finding.
func TestHeadHeldUntilFirstByte(t *testing.T) {
	t.Parallel()
	f := &fault{heartbeat: 200 * time.Millisecond, mod: func(h http.Header) { h.Add("Content-Type", "text/event-stream") }}
	base := serveT(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") == "text/event-stream" {
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		f.ServeHTTP(w, r)
	}))
	rep := runScan(t, scan.Config{URL: base + "/events", Timeout: 300 * time.Millisecond, HeadMax: 500 * time.Millisecond, Duration: 3 * time.Second, HeartbeatMax: 2 * time.Second})
	assertFires(t, rep, scan.RuleHeadDelay, scan.RuleCTypeDup)
	for _, fd := range rep.Findings {
		if fd.Rule == scan.RuleHeadDelay && !strings.Contains(fd.Evidence, "came with the first bytes of the body") {
			t.Errorf("SSE-HEAD-DELAY evidence %q does not name the cause", fd.Evidence)
		}
	}
}

// readVariant reads a variant's header comments (# expect:, # hub-heartbeat:,
// # scan: --timeout), for nginx's variants and the other intermediaries'.
func readVariant(t testing.TB, file string) variant {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v := variant{file: file, heartbeat: 200 * time.Millisecond}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "# expect:"):
			v.expect = strings.Fields(strings.TrimPrefix(line, "# expect:"))
		case strings.HasPrefix(line, "# hub-heartbeat:"):
			v.heartbeat, err = time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(line, "# hub-heartbeat:")))
		case strings.HasPrefix(line, "# scan: --timeout"):
			v.timeout, err = time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(line, "# scan: --timeout")))
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	if len(v.expect) == 0 {
		t.Fatalf("%s has no '# expect:' line", file)
	}
	for _, id := range v.expect {
		if _, ok := scan.LookupRule(id); !ok {
			t.Fatalf("%s expects unknown rule %s", file, id)
		}
	}
	return v
}
