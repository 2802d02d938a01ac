package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/gobuild"
)

// bins builds the sseguard command and the Go examples once per test
// binary (removed by TestMain).
var bins = &gobuild.Set{Packages: map[string]string{
	"sseguard":  gobuild.Sseguard,
	"publish":   "github.com/sseguard/sseguard/examples/go/publish",
	"subscribe": "github.com/sseguard/sseguard/examples/go/subscribe",
}}

// binaries returns the folder that holds the built sseguard, publish and
// subscribe.
func binaries(t *testing.T) string { return bins.Dir(t) }

// childEnv is the test's environment without the variables the examples
// and the hub read, so that a developer's settings change nothing.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "SSEGUARD_"), name == "IDEMPOTENCY_KEY", name == "LAST_EVENT_ID":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// process is one running program, killed with its process group (a shell
// script's curl too) when the test ends.
type process struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *eventually.Output
	done           chan struct{} // closed once the process was waited for
	err            error         // from Wait, once done is closed
}

func start(t *testing.T, env []string, argv ...string) *process {
	t.Helper()
	p := &process{name: strings.Join(argv, " "), stdout: eventually.NewOutput(), stderr: eventually.NewOutput(), done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s\nstdout:\n%s\nstderr:\n%s", p.name, p.stdout, p.stderr)
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code, or fails
// the test after timeout.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\nstdout:\n%s\nstderr:\n%s", p.name, timeout, p.stdout, p.stderr)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

// hub is a running `sseguard serve` with its data folder and
// configuration file, which a test may stop and start again on the same
// address.
type hub struct {
	t         *testing.T
	bin       string
	dir, conf string
	addr      string // host:port it listens on
	proc      *process
}

// startHub runs the sseguard binary of bin on a free loopback port with a
// new data folder and the configuration conf.
func startHub(t *testing.T, bin, conf string) *hub {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sseguard.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, bin: filepath.Join(bin, "sseguard"), dir: filepath.Join(dir, "data"), conf: path}
	h.start("127.0.0.1:0")
	return h
}

// start runs the hub on listen and waits until it listens. With a
// configuration file serve prints no banner: its log line "listening"
// (JSON on stderr) names the address.
func (h *hub) start(listen string) {
	h.t.Helper()
	h.proc = start(h.t, childEnv(), h.bin, "serve", "--config", h.conf, "--data", h.dir, "--listen", listen)
	var addr string
	err := h.proc.stderr.WaitFor(20*time.Second, h.proc.done, func(s string) bool {
		for line := range strings.Lines(s) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				addr = rec.Addr
				return true
			}
		}
		return false
	})
	if err != nil {
		h.t.Fatalf("sseguard serve did not log its address: %v\nstderr:\n%s", err, h.proc.stderr)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		h.t.Fatalf("sseguard serve listens on %q, not loopback", addr)
	}
	h.addr = addr
}

// URL returns the hub's base URL.
func (h *hub) URL() string { return "http://" + h.addr }

// stop stops the hub with SIGTERM, as systemd does, and waits for it.
func (h *hub) stop() {
	h.t.Helper()
	if err := h.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		h.t.Fatalf("stopping the hub: %v", err)
	}
	if code := h.proc.wait(h.t, 20*time.Second); code != 0 {
		h.t.Fatalf("sseguard serve exited %d after SIGTERM\nstderr:\n%s", code, h.proc.stderr)
	}
}

// restart starts the stopped hub again on the same address and data.
func (h *hub) restart() { h.t.Helper(); h.start(h.addr) }

// token mints a token with `sseguard token`, as the docs say to.
func (h *hub) token(sub string, flags ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := append([]string{"token", "--data", h.dir, "--sub", sub}, flags...)
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = childEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("sseguard %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
