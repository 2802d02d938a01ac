package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfigFile writes content to name in a fresh temporary folder and returns
// its path.
func writeConfigFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigCheck(t *testing.T) {
	good := writeConfigFile(t, "good.yaml", "listen: 0.0.0.0:8080\nprofile: strict\nauth:\n  anonymous_subscribe: []\n")
	empty := writeConfigFile(t, "empty.yaml", "")
	invalid := writeConfigFile(t, "invalid.yaml", "stream:\n  heartbeat: -1s\n  max_topics: 5000\nlog:\n  level: loud\n")
	typo := writeConfigFile(t, "typo.yaml", "stream:\n  hearbeat: 5s\n  retry: 5\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	proxyGood, err := filepath.Abs("../../proxy/testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	proxyBad := writeConfigFile(t, "proxy.yaml", "upstream: http://127.0.0.1:3000\ncors:\n  allowed_origins: [https://App.Example]\nroutes:\n  - prefix: /events\n    kind: sse\n")
	proxyNoUpstream := writeConfigFile(t, "proxy-routes.yaml", "routes:\n  - prefix: /events\n    kind: stream\n")
	policyGood := writeConfigFile(t, "policy.yaml", "extends: baseline\nunset: [X-Accel-Buffering]\n")
	policyBad := writeConfigFile(t, "policy-bad.yaml", "extends: strict\nstream:\n  - name: Cache-Control\n  - {name: X, value: y, reasn: z}\n")
	mixed := writeConfigFile(t, "mixed.yaml", "upstream: http://127.0.0.1:3000\nstore:\n  driver: memory\n")
	notYAML := writeConfigFile(t, "not.yaml", "listen: 127.0.0.1:1\n  data: x\n")

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr []string // substrings
	}{
		{"good file", []string{"config", "check", good}, 0, []string{good + ": ok (serve configuration)\n"}, nil},
		{"empty file", []string{"config", "check", empty}, 0, []string{empty + ": ok (serve configuration)\n"}, nil},
		{"invalid values, with lines", []string{"config", "check", invalid}, 1, nil, []string{
			invalid + " is not a valid serve configuration (told by its keys stream; --kind chooses another):\n",
			"\nline 2: stream.heartbeat: must not be negative\n",
			"\nline 3: stream.max_topics: want 1 to 1024, got 5000\n",
			"\nline 5: log.level: want debug, info, warn or error, got \"loud\"\n",
		}},
		{"unknown key and wrong type", []string{"config", "check", typo}, 1, nil, []string{
			typo + " is not a valid serve configuration",
			"\nline 2: stream.hearbeat: unknown key",
			"\nline 3: stream.retry: want a duration such as \"15s\", got \"5\"\n",
		}},
		{"not YAML", []string{"config", "check", notYAML}, 1, nil, []string{"\nline 2: not YAML: "}},
		{"proxy file", []string{"config", "check", proxyGood}, 0, []string{proxyGood + ": ok (proxy configuration)\n"}, nil},
		{"proxy file, invalid", []string{"config", "check", proxyBad}, 1, nil, []string{
			proxyBad + " is not a valid proxy configuration (told by its keys upstream, routes; --kind chooses another):\n",
			"\nline 3: cors.allowed_origins[0]: got \"https://App.Example\", write \"https://app.example\"",
			"\nline 6: routes[0].kind: want auto, stream or json, got \"sse\"",
		}},
		{"proxy file without upstream", []string{"config", "check", proxyNoUpstream}, 0, []string{
			proxyNoUpstream + ": ok (proxy configuration; sseguard proxy needs --upstream with it)\n"}, nil},
		{"policy file", []string{"config", "check", policyGood}, 0, []string{policyGood + ": ok (scan policy file)\n"}, nil},
		{"policy file, invalid", []string{"config", "check", policyBad}, 1, nil, []string{
			policyBad + " is not a valid scan policy file",
			"\nline 4: stream[1].reasn: unknown key",
		}},
		{"kind flag", []string{"config", "check", "--kind", "proxy", empty}, 0, []string{empty + ": ok (proxy configuration; sseguard proxy needs --upstream with it)\n"}, nil},
		{"kind flag after the file", []string{"config", "check", good, "--kind=serve"}, 0, []string{good + ": ok (serve configuration)\n"}, nil},
		{"kind flag overrides the keys", []string{"config", "check", "--kind", "serve", proxyGood}, 1, nil, []string{
			proxyGood + " is not a valid serve configuration:\n", "line 3: upstream: unknown key"}},
		{"mixed kinds", []string{"config", "check", mixed}, 1, nil, []string{
			mixed + ": the file has keys of a serve configuration (store) and of a proxy configuration (upstream)"}},
		{"unknown kind", []string{"config", "check", "--kind", "nginx", good}, 2, nil, []string{`--kind "nginx": want serve, proxy or policy`, "hint: "}},
		{"missing file", []string{"config", "check", missing}, 1, nil, []string{"missing.yaml", "no such file"}},
		{"no subcommand", []string{"config"}, 2, nil, []string{"want: config check [--kind serve|proxy|policy] FILE", "hint: "}},
		{"no file", []string{"config", "check"}, 2, nil, []string{"want: config check"}},
		{"two files", []string{"config", "check", good, good}, 2, nil, []string{"want: config check"}},
		{"unknown subcommand", []string{"config", "lint", good}, 2, nil, []string{"want: config check"}},
		{"unknown flag", []string{"config", "--strict", "check", good}, 2, nil, []string{"hint: run 'sseguard config --help'"}},
		{"help", []string{"config", "--help"}, 0, []string{"Usage: sseguard config check [--kind serve|proxy|policy] FILE", "-kind"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout %q lacks %q", out, s)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr %q lacks %q", errOut, s)
				}
			}
			if tt.code != 0 && out != "" {
				t.Errorf("stdout %q, want nothing on failure", out)
			}
		})
	}
}

// skipMarker, on the line before a yaml block of the docs, marks a block
// that is not an sseguard file (a CI workflow, a fragment).
const skipMarker = "<!-- config: skip -->"

// TestDocsExamplesAreValid runs "sseguard config check" on every yaml
// block of the README and docs/*.md, so that no page shows a file
// sseguard would refuse. A block that is not one of sseguard's files is
// marked with skipMarker on the line before it.
func TestDocsExamplesAreValid(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../../README.md")
	kinds := map[string]int{}
	for _, page := range pages {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range yamlBlocks(string(raw)) {
			name := fmt.Sprintf("%s:%d", filepath.Base(page), b.line)
			if b.skip {
				continue
			}
			t.Run(name, func(t *testing.T) {
				file := writeConfigFile(t, "example.yaml", b.text)
				code, out, errOut := runCLI(t, "config", "check", file)
				if code != 0 {
					t.Fatalf("%s: the yaml block at line %d is refused (mark it %s if it is not an sseguard file):\n%s", page, b.line, skipMarker, errOut)
				}
				for _, k := range []string{"serve configuration", "proxy configuration", "scan policy file"} {
					if strings.Contains(out, "("+k) {
						kinds[k]++
					}
				}
			})
		}
	}
	// The pages show one file of each kind at least; if a page loses its
	// example, or its fence changes, this test would check nothing.
	for _, k := range []string{"serve configuration", "proxy configuration", "scan policy file"} {
		if kinds[k] == 0 {
			t.Errorf("no yaml block of the docs was checked as a %s", k)
		}
	}
}

// block is one fenced yaml block of a page.
type block struct {
	line int // of its opening fence
	text string
	skip bool
}

// yamlBlocks returns the ```yaml blocks of a Markdown page, with their
// indentation (inside a list item) removed.
func yamlBlocks(page string) []block {
	var blocks []block
	var cur *block
	var indent, prev string
	for i, line := range strings.Split(page, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
			cur = &block{line: i + 1, skip: prev == skipMarker}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	return blocks
}

// TestServeRefusesInvalidConfig checks that serve stops before listening,
// with exit 1 and the field named, when the file is invalid.
func TestServeRefusesInvalidConfig(t *testing.T) {
	t.Setenv("SSEGUARD_CONFIG", "")
	t.Setenv("SSEGUARD_LISTEN", "")
	t.Setenv("SSEGUARD_DATA", "")
	bad := writeConfigFile(t, "bad.yaml", "stream:\n  heartbeat: -1s\n")
	code, _, errOut := runCLI(t, "serve", "--config", bad, "--data", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "invalid configuration:\nstream.heartbeat: must not be negative") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	file := writeConfigFile(t, "sseguard.yaml", "listen: 127.0.0.1:1001\ndata: /file/data\nprofile: baseline\n")
	other := writeConfigFile(t, "other.yaml", "listen: 127.0.0.1:1002\n")
	invalid := writeConfigFile(t, "invalid.yaml", "listen: nowhere\n")

	tests := []struct {
		name         string
		env          map[string]string
		file         string // --config
		listen, data string // --listen, --data
		wantListen   string
		wantData     string
		wantProfile  string
	}{
		{
			name:       "defaults",
			wantListen: "127.0.0.1:8080", wantData: "./sseguard-data", wantProfile: "strict",
		},
		{
			name:       "file",
			file:       file,
			wantListen: "127.0.0.1:1001", wantData: "/file/data", wantProfile: "baseline",
		},
		{
			name:       "file from env",
			env:        map[string]string{"SSEGUARD_CONFIG": file},
			wantListen: "127.0.0.1:1001", wantData: "/file/data", wantProfile: "baseline",
		},
		{
			name:       "flag file over env file",
			env:        map[string]string{"SSEGUARD_CONFIG": file},
			file:       other,
			wantListen: "127.0.0.1:1002", wantData: "./sseguard-data", wantProfile: "strict",
		},
		{
			name:       "env over file",
			env:        map[string]string{"SSEGUARD_LISTEN": "127.0.0.1:2001", "SSEGUARD_DATA": "/env/data"},
			file:       file,
			wantListen: "127.0.0.1:2001", wantData: "/env/data", wantProfile: "baseline",
		},
		{
			name:       "env over defaults",
			env:        map[string]string{"SSEGUARD_LISTEN": "127.0.0.1:2001"},
			wantListen: "127.0.0.1:2001", wantData: "./sseguard-data", wantProfile: "strict",
		},
		{
			name:       "flags over env over file",
			env:        map[string]string{"SSEGUARD_CONFIG": file, "SSEGUARD_LISTEN": "127.0.0.1:2001", "SSEGUARD_DATA": "/env/data"},
			listen:     "127.0.0.1:3001",
			data:       "/flag/data",
			wantListen: "127.0.0.1:3001", wantData: "/flag/data", wantProfile: "baseline",
		},
		{
			name:       "one flag, one env",
			env:        map[string]string{"SSEGUARD_LISTEN": "127.0.0.1:2001", "SSEGUARD_DATA": "/env/data"},
			file:       file,
			listen:     "127.0.0.1:3001",
			wantListen: "127.0.0.1:3001", wantData: "/env/data", wantProfile: "baseline",
		},
		{
			name:       "flag repairs an invalid file, validated last",
			file:       invalid,
			listen:     "127.0.0.1:3001",
			wantListen: "127.0.0.1:3001", wantData: "./sseguard-data", wantProfile: "strict",
		},
		{
			name:       "empty env changes nothing",
			env:        map[string]string{"SSEGUARD_LISTEN": "", "SSEGUARD_DATA": ""},
			file:       file,
			wantListen: "127.0.0.1:1001", wantData: "/file/data", wantProfile: "baseline",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(environWith(tt.env), tt.file, tt.listen, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Listen != tt.wantListen || cfg.Data != tt.wantData || cfg.Profile != tt.wantProfile {
				t.Errorf("listen %q, data %q, profile %q; want %q, %q, %q",
					cfg.Listen, cfg.Data, cfg.Profile, tt.wantListen, tt.wantData, tt.wantProfile)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	invalid := writeConfigFile(t, "invalid.yaml", "listen: nowhere\n")
	typo := writeConfigFile(t, "typo.yaml", "lisen: 127.0.0.1:80\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")

	tests := []struct {
		name   string
		env    map[string]string
		file   string
		listen string
		want   string // substring
	}{
		{"invalid file", nil, invalid, "", "invalid configuration:\nlisten: want host:port"},
		{"unknown key", nil, typo, "", typo + ": line 1: lisen: unknown key"},
		{"missing file", nil, missing, "", "missing.yaml"},
		{"missing file from env", map[string]string{"SSEGUARD_CONFIG": missing}, "", "", "missing.yaml"},
		{"invalid env", map[string]string{"SSEGUARD_LISTEN": "nowhere"}, "", "", "listen: want host:port, got \"nowhere\""},
		{"invalid flag over valid env", map[string]string{"SSEGUARD_LISTEN": "127.0.0.1:1"}, "", "nowhere", "listen: want host:port, got \"nowhere\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(environWith(tt.env), tt.file, tt.listen, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// environWith returns an environ whose getenv reads only vars.
func environWith(vars map[string]string) *environ {
	var out, errb bytes.Buffer
	return &environ{
		stdin:  strings.NewReader(""),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string { return vars[k] },
	}
}

// TestLoadConfigSet: --set KEY=VALUE sets any key over the file and the
// environment, in order; a malformed one is a usage error.
func TestLoadConfigSet(t *testing.T) {
	file := writeConfigFile(t, "set.yaml", "stream:\n  heartbeat: 5s\n")
	env := map[string]string{"SSEGUARD_STREAM_HEARTBEAT": "7s", "SSEGUARD_STREAM_RETRY": "9s"}
	cfg, err := loadConfig(environWith(env), file, "", "", "stream.heartbeat=11s", "poll.max_events=5", "poll.max_events=6")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stream.Heartbeat.D() != 11*time.Second || cfg.Stream.Retry.D() != 9*time.Second || cfg.Poll.MaxEvents != 6 {
		t.Errorf("heartbeat %v retry %v max_events %d; want 11s (flag over env over file), 9s (env), 6 (last flag)",
			cfg.Stream.Heartbeat.D(), cfg.Stream.Retry.D(), cfg.Poll.MaxEvents)
	}
	for _, bad := range []string{"stream.heartbeat", "stream.nope=1", "stream.heartbeat=soon"} {
		_, err := loadConfig(environWith(nil), "", "", "", bad)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("--set %q: %v, want a usage error", bad, err)
		}
	}
}
