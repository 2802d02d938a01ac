package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestCSPLint(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		want   []string // CSPIssue.String() prefixes, in order
	}{
		{"strict page", PageCSP, nil},
		{"strict stream", StreamCSP, nil},
		{"baseline", BaselineCSP, nil},
		{"no default-src", "script-src 'self'; connect-src 'self'", []string{"default-src: missing"}},
		{"empty", "", []string{"default-src: missing", "connect-src: missing"}},
		{"connect star", "default-src 'self'; connect-src *", []string{"connect-src *:"}},
		{"connect https scheme", "default-src 'self'; connect-src 'self' https:", []string{"connect-src https::"}},
		{"connect http upper", "default-src 'self'; connect-src HTTP:", []string{"connect-src HTTP::"}},
		{"connect data", "default-src 'self'; connect-src data:", []string{"connect-src data:"}},
		{"default star covers connect", "default-src *", []string{"default-src *:", "default-src *:"}},
		{"unsafe inline", "default-src 'none'; script-src 'self' 'unsafe-inline'", []string{"script-src 'unsafe-inline'"}},
		{"unsafe eval via default", "default-src 'self' 'unsafe-eval'", []string{"default-src 'unsafe-eval'"}},
		{"first directive wins", "default-src 'none'; connect-src 'self'; connect-src *", nil},
		{"case-insensitive names", "DEFAULT-SRC 'none'; Connect-Src *", []string{"connect-src *:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issues := ParseCSP(tt.policy).Lint()
			if len(issues) != len(tt.want) {
				t.Fatalf("Lint(%q) = %v, want %d issues %v", tt.policy, issues, len(tt.want), tt.want)
			}
			for i, is := range issues {
				if !strings.HasPrefix(is.String(), tt.want[i]) {
					t.Errorf("issue %d = %q, want prefix %q", i, is.String(), tt.want[i])
				}
			}
		})
	}
}

func TestCSPBuild(t *testing.T) {
	var c CSP
	c.Set("default-src", "'none'")
	c.Set("connect-src", "'self'", "https://events.example")
	c.Set("DEFAULT-SRC", "'self'")
	if got, want := c.String(), "default-src 'self'; connect-src 'self' https://events.example"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if !reflect.DeepEqual(ParseCSP(c.String()), c) {
		t.Fatalf("ParseCSP(String()) = %+v, want %+v", ParseCSP(c.String()), c)
	}
	if got := ParseCSPList([]string{"default-src 'self', connect-src *", "script-src 'self'"}); len(got) != 3 {
		t.Fatalf("ParseCSPList gave %d policies, want 3", len(got))
	}
}

func FuzzParseCSP(f *testing.F) {
	for _, s := range []string{PageCSP, StreamCSP, "default-src *; ;;", "a b c;d", "\x00;\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCSP(s)
		again := ParseCSP(c.String())
		if !reflect.DeepEqual(c.Directives, again.Directives) && !(len(c.Directives) == 0 && len(again.Directives) == 0) {
			t.Fatalf("not stable: %q -> %q -> %q", s, c.String(), again.String())
		}
		_ = c.Lint()
	})
}
