//go:build linux

package bench_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterScriptWrk runs bench/cluster.sh wrk, one round of one second,
// so that the script behind docs/cluster.md's publish figures keeps
// working: every setup (bolt, one Redis node, two Redis nodes, and
// Centrifugo when CENTRIFUGO_BIN is set) publishes, none fails, and the
// CPU per publish is read.
func TestClusterScriptWrk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts redis-server and three hubs")
	}
	for _, tool := range []string{"bash", "go", "redis-server", "redis-cli", "wrk", "curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found, and CI=true", tool)
			}
			t.Skipf("%s not found: bench/cluster.sh wrk is not tested", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "cluster.sh", "wrk")
	cmd.Env = append(os.Environ(), "RUNS=1", "DURATION=1")
	// The script's processes (Redis, the hubs, wrk) share its process
	// group, so that a timeout ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/cluster.sh wrk: %v\n%s", err, out)
	}
	_, medians, ok := strings.Cut(string(out), "medians of 1 runs")
	if !ok {
		t.Fatalf("no medians in the output:\n%s", out)
	}
	setups := []string{"bolt, one node", "redis, one node", "redis, two nodes"}
	if os.Getenv("CENTRIFUGO_BIN") != "" {
		setups = append(setups, "centrifugo redis, one node", "centrifugo redis, two nodes")
	}
	for _, s := range setups {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s) + `\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)$`).FindStringSubmatch(medians)
		if m == nil {
			t.Errorf("no median line for %q:\n%s", s, out)
			continue
		}
		rate, _ := strconv.Atoi(m[1])
		cpu, _ := strconv.ParseFloat(m[3], 64)
		if rate == 0 || m[2] != "0" || cpu <= 0 {
			t.Errorf("%s: %d publishes/s, %s failed, %.1f µs of server CPU per publish; want publishes, none failed, CPU read", s, rate, m[2], cpu)
		}
	}
}
