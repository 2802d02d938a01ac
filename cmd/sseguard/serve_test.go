package main

import (
	"bytes"
	"context"
	"encoding/json"
	stdlog "log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// syncBuffer is an output the test reads while the command writes it; it
// signals every write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until cond holds for what was written, the command ended,
// or 20 s passed.
func (s *syncBuffer) waitFor(t *testing.T, exited <-chan int, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !cond(s.String()) {
		select {
		case <-s.changed:
		case code := <-exited:
			t.Fatalf("sseguard exited %d before %s:\n%s", code, what, s)
		case <-deadline:
			t.Fatalf("no %s within 20 s:\n%s", what, s)
		}
	}
}

// runServe runs `sseguard serve args...` in this process until it logged
// that it listens, calls during, then stops it and returns its stdout and
// stderr.
func runServe(t *testing.T, during func(stderr *syncBuffer), args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, append([]string{"serve"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	stderr.waitFor(t, exited, "listening log line", func(s string) bool { return strings.Contains(s, `"msg":"listening"`) })
	if during != nil {
		during(stderr)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s of its context ending")
	}
	return stdout.String(), stderr.String()
}

func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "sseguard.yaml")
	if err := os.WriteFile(file, []byte("log:\n  format: json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestServeBannerOnlyWithoutConfig: the getting-started text, with its
// day-long tokens, is printed for the quick start (no configuration file)
// and never when a file is given, by flag or by environment, since a
// deployed hub's stdout ends up in a journal.
func TestServeBannerOnlyWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir)
	tests := []struct {
		name   string
		env    string
		args   []string
		banner bool
	}{
		{"quick start", "", nil, true},
		{"--config", "", []string{"--config", file}, false},
		{"SSEGUARD_CONFIG", file, nil, false},
		{"quick start --quiet", "", []string{"--quiet"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SSEGUARD_CONFIG", tt.env)
			args := append([]string{"--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data")}, tt.args...)
			stdout, stderr := runServe(t, nil, args...)
			hasTokens := strings.Contains(stdout, "Bearer eyJ")
			if hasTokens != tt.banner {
				t.Errorf("tokens printed: %v, want %v; stdout:\n%s", hasTokens, tt.banner, stdout)
			}
			if strings.Contains(stderr, "eyJ") {
				t.Errorf("token material in the log:\n%s", stderr)
			}
		})
	}
}

// TestServeDefaultLoggerIsTheConfiguredOne: what other code logs through
// the log package or slog's default, such as a handler panic recovered by
// net/http, is a JSON record of the configured log while serve runs.
func TestServeDefaultLoggerIsTheConfiguredOne(t *testing.T) {
	dir := t.TempDir()
	file := writeConfig(t, dir)
	_, stderr := runServe(t, func(stderr *syncBuffer) {
		stdlog.Print("from the log package")
		stderr.waitFor(t, nil, "the log package's line", func(s string) bool { return strings.Contains(s, "from the log package") })
	}, "--config", file, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	for line := range strings.Lines(stderr) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a log line is not JSON: %v: %q", err, line)
		}
	}
	if w := stdlog.Writer(); w != os.Stderr {
		t.Errorf("the log package still writes to %T after serve ended", w)
	}
}

// TestServePprofMustBeLoopback: --pprof on an address other than loopback
// is a usage error (exit 2) before anything starts, unless --pprof-unsafe,
// which logs a warning.
func TestServePprofMustBeLoopback(t *testing.T) {
	// Addresses on no interface of this machine: were the refusal missing,
	// the listen would fail rather than expose anything.
	for _, addr := range []string{"192.0.2.1:6060", "[2001:db8::1]:6060"} {
		t.Run(addr, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			code, _, stderr := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--data", data, "--pprof", addr)
			if code != exitUsage || !strings.Contains(stderr, "not a loopback address") || !strings.Contains(stderr, "--pprof-unsafe") {
				t.Errorf("exit %d, stderr %q; want 2 with a hint on --pprof-unsafe", code, stderr)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("the data folder was created (%v): the refusal must come before anything starts", err)
			}
		})
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:6060": true, "127.3.2.1:6060": true, "[::1]:6060": true, "localhost:6060": true,
		"[::ffff:127.0.0.1]:6060": true,
		"0.0.0.0:6060":            false, ":6060": false, "[::]:6060": false, "10.1.2.3:6060": false,
		"example.com:6060": false, // a name could resolve anywhere; it is not looked up
	} {
		if ok, err := loopbackAddr(addr); ok != want || err != nil {
			t.Errorf("loopbackAddr(%q) = %v, %v; want %v", addr, ok, err, want)
		}
	}
	if _, err := loopbackAddr("6060"); err == nil {
		t.Error("loopbackAddr took an address without a port")
	}
	t.Run("--pprof-unsafe", func(t *testing.T) {
		// 192.0.2.1 (TEST-NET-1) is on no interface here: the listen fails
		// after the warning, and nothing is ever exposed.
		code, _, stderr := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"),
			"--quiet", "--pprof-unsafe", "--pprof", "192.0.2.1:0")
		if !strings.Contains(stderr, "pprof is served on an address that is not loopback") {
			t.Errorf("no warning; exit %d, stderr:\n%s", code, stderr)
		}
		if code != exitError || !strings.Contains(stderr, "pprof listen") {
			t.Errorf("exit %d, want 1 from the failed listen; stderr:\n%s", code, stderr)
		}
	})
}

// TestServeRefusesDamagedStore: a damaged events.db stops serve before it
// listens, with a message that names the file and says what to do, and
// no Go panic dump.
func TestServeRefusesDamagedStore(t *testing.T) {
	dir := t.TempDir()
	junk := bytes.Repeat([]byte("not a bbolt file "), 1024)
	if err := os.WriteFile(filepath.Join(dir, "events.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--config", writeConfig(t, dir)},
		strings.NewReader(""), &stdout, &stderr)
	out := stderr.String()
	if code == 0 || !strings.Contains(out, "events.db") || strings.Contains(out, "goroutine ") || strings.Contains(out, `"listening"`) {
		t.Fatalf("serve on a damaged store: exit %d\n%s", code, out)
	}
}

// TestServeStartFailuresReleaseEverything makes serve fail at each step
// after the store is open, and checks that each failure names its cause,
// leaves no goroutine or descriptor behind (the server allocates only in
// New, and the store is closed on every path), and that the store is free:
// a serve on the same data folder then starts.
func TestServeStartFailuresReleaseEverything(t *testing.T) {
	t.Setenv("SSEGUARD_CONFIG", "")
	t.Setenv("SSEGUARD_LISTEN", "")
	t.Setenv("SSEGUARD_DATA", "")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name   string
		config string // the file's content
		args   []string
		want   string // in stderr
	}{
		{"listen", "", []string{"--listen", busy}, "listen: "},
		{"pprof", "", []string{"--listen", "127.0.0.1:0", "--pprof", busy}, "pprof listen: "},
		{"metrics", "telemetry:\n  metrics_listen: " + busy + "\n", []string{"--listen", "127.0.0.1:0"}, "metrics listen: "},
		{"tls", "tls:\n  cert_file: " + missing + "\n  key_file: " + missing + "\n", []string{"--listen", "127.0.0.1:0"}, "tls.cert_file"},
		{"key", "auth:\n  keys:\n    - id: k\n      algorithm: HS256\n      secret_file: " + missing + "\n", []string{"--listen", "127.0.0.1:0"}, "auth.keys[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			file := writeConfigFile(t, "sseguard.yaml", "log:\n  format: json\n"+tt.config)
			ignore := goleak.IgnoreCurrent()
			fds := countFDs(t)
			code, _, errOut := runCLI(t, append([]string{"serve", "--config", file, "--data", data}, tt.args...)...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut, tt.want)
			}
			goleak.VerifyNone(t, ignore)
			if n := countFDs(t); n != fds {
				t.Fatalf("open descriptors went from %d to %d", fds, n)
			}
			runServe(t, nil, "--config", writeConfigFile(t, "ok.yaml", "log:\n  format: json\n"), "--data", data, "--listen", "127.0.0.1:0")
		})
	}
}

// countFDs counts the process's open file descriptors.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to count descriptors: %v", err)
	}
	return len(ents)
}

// TestServeFlagsDocumented: every flag of sseguard serve has a row in the
// flag table of docs/configuration.md.
func TestServeFlagsDocumented(t *testing.T) {
	code, usage, _ := runCLI(t, "serve", "--help")
	if code != exitOK {
		t.Fatalf("serve --help exited %d", code)
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(usage) {
		name, ok := strings.CutPrefix(line, "  -")
		if !ok {
			continue
		}
		name = strings.Fields(name)[0]
		n++
		if !strings.Contains(string(doc), "\n| `--"+name+"`") && !strings.Contains(string(doc), "\n| `--"+name+" ") {
			t.Errorf("docs/configuration.md has no row for serve's --%s", name)
		}
	}
	if n < 6 {
		t.Fatalf("found %d flags in the usage text, want at least 6:\n%s", n, usage)
	}
}
