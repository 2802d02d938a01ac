//go:build linux

package bench_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProxyScript runs bench/proxy.sh, small, for sseguard proxy and for
// nginx, so that the script behind docs/benchmarks.md's proxy figures keeps
// working: every stream gets every event through the proxy, and the
// proxy's memory is read.
func TestProxyScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts three processes")
	}
	for _, tool := range []string{"bash", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	for _, front := range []string{"sseguard", "nginx"} {
		t.Run(front, func(t *testing.T) {
			if front == "nginx" {
				missing := ""
				if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
					missing = "/usr/sbin/nginx"
				} else if _, err := exec.LookPath("ss"); err != nil {
					missing = "ss"
				}
				if missing != "" {
					if os.Getenv("CI") == "true" {
						t.Fatalf("%s not found, and CI=true", missing)
					}
					t.Skipf("%s not found: the nginx side of bench/proxy.sh is not tested", missing)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "proxy.sh", front, "20", "--events", "3", "--rate", "20", "--settle", "100ms", "--drain", "5s")
			// The script's own processes (the backend, the proxy, the
			// bench) share its process group, so a timeout ends them all.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			cmd.WaitDelay = 10 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bench/proxy.sh %s: %v\n%s", front, err, out)
			}
			for _, want := range []string{"20/20 open", "60/60 delivered, 0 lost", "KB per stream", "result      clean"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("no %q in the output:\n%s", want, out)
				}
			}
		})
	}
}
