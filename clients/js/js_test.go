package sseguardjs_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	sseguardjs "github.com/sseguard/sseguard/clients/js"
)

// lookPath finds a tool the test needs: missing, the test is skipped, or
// fails under CI=true so that CI never passes by skipping.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("skipping: %s not found (%v); install Debian's nodejs and npm packages", name, err)
	}
	return p
}

// run runs a command in this folder with a deadline and returns its
// output, failing t when it fails.
func run(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// nodeArgs returns args after the flag that gives node a global
// WebSocket, when this node needs it (20 and 21; later ones have it and
// may drop the flag).
func nodeArgs(t *testing.T, node string, args ...string) []string {
	t.Helper()
	probe := run(t, nil, node, "-e", "console.log(typeof WebSocket)")
	if strings.TrimSpace(string(probe)) == "function" {
		return args
	}
	return append([]string{"--experimental-websocket"}, args...)
}

// TestNodeUnitTests runs the client's unit tests (*.test.mjs) with node's
// built-in runner, so that `go test ./...` runs them too: the state
// machine with fakes, and presence against a scripted hub on loopback.
func TestNodeUnitTests(t *testing.T) {
	node := lookPath(t, "node")
	out := run(t, nil, node, nodeArgs(t, node, "--test", "--test-reporter=tap")...)
	pass := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindSubmatch(out)
	fail := regexp.MustCompile(`(?m)^# fail (\d+)$`).FindSubmatch(out)
	if pass == nil || fail == nil || string(fail[1]) != "0" || string(pass[1]) == "0" {
		t.Fatalf("node --test did not report a clean pass:\n%s", out)
	}
	// A skipped test (no WebSocket in node) would pass by not running.
	if skip := regexp.MustCompile(`(?m)^# skipped (\d+)$`).FindSubmatch(out); skip != nil && string(skip[1]) != "0" {
		t.Fatalf("node --test skipped %s tests:\n%s", skip[1], out)
	}
	t.Logf("node --test: %s passed", pass[1])
}

// TestDeclarationsMatchExports: sseguard.d.ts declares exactly what the
// module exports.
func TestDeclarationsMatchExports(t *testing.T) {
	node := lookPath(t, "node")
	out := run(t, nil, node, "--input-type=module", "-e",
		`const m = await import('./sseguard.js'); console.log(Object.keys(m).sort().join(','))`)
	got := strings.Split(strings.TrimSpace(string(out)), ",")
	dts, err := os.ReadFile("sseguard.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, m := range regexp.MustCompile(`(?m)^export (?:class|function|const) (\w+)`).FindAllSubmatch(dts, -1) {
		declared = append(declared, string(m[1]))
	}
	sort.Strings(declared)
	if !slices.Equal(got, declared) {
		t.Errorf("the module exports %v, sseguard.d.ts declares %v", got, declared)
	}
}

// TestNpmPack packs the package as npm publishes it and checks what is in
// the tarball: the module (the same bytes the binary serves), its
// declarations, the README and package.json, nothing else.
func TestNpmPack(t *testing.T) {
	npm := lookPath(t, "npm")
	dest := t.TempDir()
	// A private cache and no update check: packing needs no network.
	env := []string{"npm_config_cache=" + t.TempDir(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"}
	out := run(t, env, npm, "pack", "--json", "--pack-destination", dest)
	var packed []struct {
		Name     string `json:"name"`
		Filename string `json:"filename"`
		Files    []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v\n%s", err, out)
	}
	if packed[0].Name != "@sseguard/client" {
		t.Errorf("package name %q", packed[0].Name)
	}
	want := []string{"README.md", "package.json", "sseguard.d.ts", "sseguard.js"}
	var listed []string
	for _, f := range packed[0].Files {
		listed = append(listed, f.Path)
	}
	sort.Strings(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("npm pack lists %v, want %v", listed, want)
	}

	f, err := os.Open(filepath.Join(dest, packed[0].Filename))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var inTar []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "package/")
		inTar = append(inTar, name)
		if name == "sseguard.js" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, sseguardjs.Source) {
				t.Error("the packed sseguard.js differs from the embedded Source")
			}
		}
	}
	sort.Strings(inTar)
	if !slices.Equal(inTar, want) {
		t.Errorf("the tarball holds %v, want %v", inTar, want)
	}
}

// TestSourceIsAModule: the embedded file is the ES module, with the
// exports the docs name.
func TestSourceIsAModule(t *testing.T) {
	for _, want := range []string{"export class Subscription", "export function subscribe"} {
		if !bytes.Contains(sseguardjs.Source, []byte(want)) {
			t.Errorf("Source lacks %q", want)
		}
	}
}
