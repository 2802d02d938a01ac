package nginx_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/internal/nginxtest"
	"github.com/sseguard/sseguard/server/servertest"
)

// These tests run Debian's nginx with the files of this folder in front of
// a real hub, on loopback. The header and streaming checks of the same
// files are in scan/nginx_test.go; these check what the files refuse.
// Outside CI a missing nginx skips them; under CI=true it fails them.

func nginxBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found, and CI=true: .ci/run installs Debian's nginx package")
	}
	t.Skip("nginx not found: install Debian's nginx package (apt-get install nginx) to run these tests")
	return ""
}

// startNginx runs nginx with site (a file of this folder) in front of the
// hub at upstream and returns its base URL.
func startNginx(t *testing.T, site, upstream string) string {
	t.Helper()
	bin := nginxBinary(t)
	raw, err := os.ReadFile(site)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + nginxtest.Start(t, bin, func(addr string) string {
		conf := string(raw)
		for _, r := range [][2]string{{"server 127.0.0.1:8080;", "server " + upstream + ";"}, {"listen 80;", "listen " + addr + ";"}} {
			if n := strings.Count(conf, r[0]); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want once", site, r[0], n)
			}
			conf = strings.Replace(conf, r[0], r[1], 1)
		}
		return conf
	}, 64)
}

// TestNginxHidesMetrics: both files refuse /metrics, however it is
// spelled, with the hub's 404 problem, while the hub behind them serves it
// to its loopback peers and the rest goes through.
func TestNginxHidesMetrics(t *testing.T) {
	hubAddr := servertest.Start(t, nil).Addr
	if res, err := http.Get("http://" + hubAddr + "/metrics"); err != nil || res.StatusCode != 200 {
		t.Fatalf("the hub itself: /metrics %v %v, want 200 to a loopback peer", res, err)
	} else {
		res.Body.Close()
	}
	for _, file := range []string{"sseguard.conf", "sseguard-proxy-headers.conf"} {
		t.Run(file, func(t *testing.T) {
			base := startNginx(t, file, hubAddr)
			if res, err := http.Get(base + "/healthz"); err != nil || res.StatusCode != 200 {
				t.Fatalf("/healthz through nginx: %v %v, want 200", res, err)
			} else {
				res.Body.Close()
			}
			for _, path := range []string{"/metrics", "/%6Detrics", "//metrics", "/metrics?x=1"} {
				res, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var prob struct {
					Status int
					Error  string
				}
				if res.StatusCode != 404 || json.Unmarshal(body, &prob) != nil || prob.Status != 404 || prob.Error != "not_found" {
					t.Errorf("%s: %d %.200q, want the 404 not_found problem", path, res.StatusCode, body)
					continue
				}
				for name, want := range map[string]string{
					"Content-Type":           "application/problem+json",
					"Cache-Control":          "no-store",
					"X-Content-Type-Options": "nosniff",
				} {
					if got := res.Header.Values(name); len(got) != 1 || got[0] != want {
						t.Errorf("%s: %s = %q, want exactly %q", path, name, got, want)
					}
				}
			}
		})
	}
}
