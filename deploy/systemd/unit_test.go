// These tests check deploy/systemd/sseguard.service: with systemd's own
// analyzer where it exists, and by running its ExecStart line.
package systemd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/gobuild"
)

const unitFile = "sseguard.service"

// bins builds the sseguard command once per test binary (removed by
// TestMain).
var bins = &gobuild.Set{Packages: map[string]string{"sseguard": gobuild.Sseguard}}

// sseguardBinary returns the path of the built sseguard command.
func sseguardBinary(t *testing.T) string { return bins.Path(t, "sseguard") }

// systemdAnalyze returns the path of systemd-analyze. It skips without
// it, under CI=true too: containers (CI's machine among them) often have
// no systemd, and the unit's other tests do not need it.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("skipping: systemd-analyze is not installed (package systemd): %v", err)
	}
	return p
}

// unit reads the unit file as section -> key -> values, in order.
func unit(t *testing.T) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read line %q", unitFile, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// installed writes the unit to a temporary folder with ExecStart pointing
// at the binary just built, as systemd-analyze verify checks that the
// command exists, and returns its path.
func installed(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("ExecStart=/usr/local/bin/sseguard ")) {
		t.Fatalf("%s: ExecStart does not run /usr/local/bin/sseguard", unitFile)
	}
	out := bytes.ReplaceAll(src, []byte("ExecStart=/usr/local/bin/sseguard "), []byte("ExecStart="+sseguardBinary(t)+" "))
	path := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUnitVerifies runs systemd-analyze verify: unknown keys, bad values
// and a missing command are errors, and any warning fails the test too.
func TestUnitVerifies(t *testing.T) {
	sa := systemdAnalyze(t)
	path := installed(t)
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
}

// TestUnitSandbox checks the sandbox with systemd-analyze security: an
// overall exposure of at most 2.0 ("OK"; the default service is 9.6).
func TestUnitSandbox(t *testing.T) {
	sa := systemdAnalyze(t)
	path := installed(t)
	// The threshold is in tenths of the exposure level it prints.
	out, err := exec.Command(sa, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}

// TestUnitSettings checks what the issue asks of the unit, whether or not
// systemd is here to analyze it.
func TestUnitSettings(t *testing.T) {
	svc := unit(t)["Service"]
	if svc == nil {
		t.Fatalf("%s has no [Service] section", unitFile)
	}
	want := map[string]string{
		"DynamicUser":     "yes",
		"StateDirectory":  "sseguard",
		"ProtectSystem":   "strict",
		"NoNewPrivileges": "yes",
		"ProtectHome":     "yes",
		"PrivateTmp":      "yes",
		"KillSignal":      "SIGTERM",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	// One descriptor per stream: the 1M streams of the targets.
	if n, err := strconv.Atoi(strings.Join(svc["LimitNOFILE"], "")); err != nil || n < 1<<20 {
		t.Errorf("LimitNOFILE=%q, want at least %d", svc["LimitNOFILE"], 1<<20)
	}
	// The hub's own shutdown_timeout (10 s) must fit in the stop timeout.
	if d, err := time.ParseDuration(strings.Join(svc["TimeoutStopSec"], "")); err != nil || d < 15*time.Second {
		t.Errorf("TimeoutStopSec=%q, want a duration of at least 15s", svc["TimeoutStopSec"])
	}
}

// TestUnitExecStartRuns runs the unit's ExecStart as systemd would, with
// the directories systemd gives it, and stops it as systemd does.
func TestUnitExecStartRuns(t *testing.T) {
	svc := unit(t)["Service"]
	if len(svc["ExecStart"]) != 1 {
		t.Fatalf("ExecStart=%q, want one command", svc["ExecStart"])
	}
	confDir, stateDir := t.TempDir(), filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The only change from a deployed file: loopback on a free port.
	conf := "listen: 127.0.0.1:0\nlog:\n  format: json\n"
	if err := os.WriteFile(filepath.Join(confDir, "sseguard.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := strings.Fields(svc["ExecStart"][0])
	for i, a := range argv {
		a = strings.ReplaceAll(a, "${CONFIGURATION_DIRECTORY}", confDir)
		argv[i] = strings.ReplaceAll(a, "${STATE_DIRECTORY}", stateDir)
	}
	if argv[0] != "/usr/local/bin/sseguard" {
		t.Fatalf("ExecStart runs %s, want /usr/local/bin/sseguard", argv[0])
	}
	argv[0] = sseguardBinary(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout bytes.Buffer
	stderr := &lines{found: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // systemd's environment, none of the developer's SSEGUARD_*
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case addr := <-stderr.found:
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("listening on %q", addr)
		}
	case err := <-done:
		t.Fatalf("ExecStart exited: %v\n%s", err, stderr.String())
	case <-ctx.Done():
		t.Fatalf("ExecStart did not listen\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(stateDir, "events.db")); err != nil {
		t.Errorf("the store is not in STATE_DIRECTORY: %v", err)
	}
	// With a configuration file nothing goes to stdout, the journal: no
	// development tokens.
	if stdout.Len() > 0 {
		t.Errorf("ExecStart printed to stdout:\n%s", stdout.String())
	}
}

// lines collects a process's JSON log and reports the address of its
// "listening" line once.
type lines struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	found chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for line := range strings.Lines(l.buf.String()) {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			select {
			case l.found <- rec.Addr:
			default:
			}
		}
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
