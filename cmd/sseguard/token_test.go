package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/auth"
)

// TestTokenNeverCreatesSecret is the finding that 'sseguard token' run
// outside the hub's folder made a secret of its own, whose tokens the hub
// refused as "signature is not valid".
func TestTokenNeverCreatesSecret(t *testing.T) {
	t.Setenv("SSEGUARD_DATA", "")
	t.Setenv("SSEGUARD_CONFIG", "")
	hints := []string{"--data DIR", "--config FILE", "SSEGUARD_DATA"}

	t.Run("--data without a secret", func(t *testing.T) {
		dir := t.TempDir()
		code, out, errOut := runCLI(t, "token", "--data", dir, "--subscribe", "news")
		if code != exitUsage || out != "" {
			t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
		}
		for _, want := range append([]string{filepath.Join(dir, "secret.key")}, hints...) {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q lacks %q", errOut, want)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("token created %v in the data folder", entries)
		}
	})
	t.Run("the default folder", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		code, _, errOut := runCLI(t, "token", "--subscribe", "news")
		if code != exitUsage {
			t.Fatalf("exit %d; want 2 (stderr %q)", code, errOut)
		}
		if want := filepath.Join(dir, "sseguard-data", "secret.key"); !strings.Contains(errOut, want) {
			t.Errorf("stderr %q does not name %s", errOut, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "sseguard-data")); !os.IsNotExist(err) {
			t.Fatalf("token created ./sseguard-data (%v)", err)
		}
	})
	t.Run("a configuration's secret_file", func(t *testing.T) {
		secret := filepath.Join(t.TempDir(), "hub.key")
		cfg := writeConfigFile(t, "sseguard.yaml", "auth:\n  secret_file: "+secret+"\n")
		code, _, errOut := runCLI(t, "token", "--config", cfg, "--subscribe", "news")
		if code != exitUsage || !strings.Contains(errOut, secret) {
			t.Fatalf("exit %d, stderr %q; want 2 naming %s", code, errOut, secret)
		}
		if _, err := os.Stat(secret); !os.IsNotExist(err) {
			t.Fatalf("token created %s (%v)", secret, err)
		}
	})
	t.Run("the hub's secret signs", func(t *testing.T) {
		dir := t.TempDir()
		key, err := auth.LoadOrCreateSecret(filepath.Join(dir, "secret.key")) // as serve does
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "token", "--data", dir, "--sub", "ops", "--subscribe", "news")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		p, prob := (&auth.Verifier{Keys: []auth.Key{{Algorithm: "HS256", Secret: key}}}).Verify(strings.TrimSpace(out))
		if prob != nil || p.Subject != "ops" || !p.CanSubscribe("news") {
			t.Fatalf("the token does not verify with the hub's secret: %+v, %v", p, prob)
		}
	})
	t.Run("a short secret", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "secret.key")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "token", "--data", dir, "--subscribe", "news")
		if code != exitError || out != "" || !strings.Contains(errOut, path) || !strings.Contains(errOut, "delete it") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1 naming %s and how to fix it", code, out, errOut, path)
		}
	})
}

// TestTokenOriginsAndPatterns: --origins puts the origins in the token,
// and patterns or origins the hub would never match are refused with a
// hint before any secret is read.
func TestTokenOriginsAndPatterns(t *testing.T) {
	dir := t.TempDir()
	key, err := auth.LoadOrCreateSecret(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "token", "--data", dir, "--subscribe", "chat/*,news", "--origins", "https://app.example, http://localhost:3000")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	p, prob := (&auth.Verifier{Keys: []auth.Key{{Algorithm: "HS256", Secret: key}}}).Verify(strings.TrimSpace(out))
	if prob != nil || strings.Join(p.Origins, ",") != "https://app.example,http://localhost:3000" || !p.CanSubscribe("chat/a") {
		t.Fatalf("token: %+v, %v; want the two origins and chat/*", p, prob)
	}
	if p.Presence {
		t.Fatal("a token minted without --presence has the presence permission")
	}
	code, out, errOut = runCLI(t, "token", "--data", dir, "--subscribe", "chat/*", "--presence")
	if code != exitOK {
		t.Fatalf("--presence: exit %d: %s", code, errOut)
	}
	if p, prob := (&auth.Verifier{Keys: []auth.Key{{Algorithm: "HS256", Secret: key}}}).Verify(strings.TrimSpace(out)); prob != nil || !p.Presence {
		t.Fatalf("--presence: %+v, %v; want the presence permission", p, prob)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"star inside", []string{"--subscribe", "a*b"}, `--subscribe: "a*b" has a '*' before its end`},
		{"two stars", []string{"--publish", "**"}, `--publish: "**"`},
		{"space", []string{"--subscribe", "a b"}, "contains a space"},
		{"origin spelled otherwise", []string{"--subscribe", "news", "--origins", "HTTPS://App.example:443/"}, `write "https://app.example"`},
		{"origin star", []string{"--subscribe", "news", "--origins", "*"}, "never allowed"},
		{"origin null", []string{"--subscribe", "news", "--origins", "null"}, "never allowed"},
		{"presence without subscribe", []string{"--publish", "news", "--presence"}, "--presence needs --subscribe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"token", "--data", dir}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, and %q", code, out, errOut, tc.want)
			}
		})
	}
}
