package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
		notOut string // not in stdout, when set
	}{
		{"no args", nil, 2, "", "Usage:", ""},
		{"help", []string{"help"}, 0, "Commands:", "", ""},
		{"version", []string{"version"}, 0, "sseguard ", "", ""},
		{"--version", []string{"--version"}, 0, "sseguard ", "", ""},
		{"version extra arg", []string{"version", "x"}, 2, "", "hint:", ""},
		{"unknown command", []string{"serv"}, 2, "", `did you mean "serve"`, ""},
		{"unknown far", []string{"zzz"}, 2, "", "sseguard help", ""},
		{"serve help", []string{"serve", "--help"}, 0, "-listen", "", ""},
		{"help serve", []string{"help", "serve"}, 0, "Usage: sseguard serve", "", "Commands:"},
		{"help token", []string{"help", "token"}, 0, "-origins", "", "Commands:"},
		{"help unknown", []string{"help", "serv"}, 2, "", `did you mean "serve"`, ""},
		{"serve bad flag", []string{"serve", "--nope"}, 2, "", "hint: run 'sseguard serve --help'", ""},
		{"serve stray arg", []string{"serve", "extra"}, 2, "", "unexpected argument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q lacks %q", out, tt.stdout)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.stderr)
			}
			if tt.notOut != "" && strings.Contains(out, tt.notOut) {
				t.Errorf("stdout %q has %q", out, tt.notOut)
			}
		})
	}
}
