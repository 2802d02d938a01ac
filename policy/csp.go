package policy

import (
	"fmt"
	"strings"
)

// CSP is a Content-Security-Policy: an ordered list of directives, each a
// name and its source expressions. The zero CSP is empty.
type CSP struct {
	Directives []Directive
}

// Directive is one CSP directive.
type Directive struct {
	Name    string   // lower case
	Sources []string // as written; keywords keep their quotes
}

// ParseCSP parses one serialized policy (W3C CSP3 section 2.2.1): directives
// separated by ";", the first of a repeated name wins, names are ASCII
// case-insensitive. Multiple policies in one header value (separated by ",")
// are parsed as one list; use [ParseCSPList] to keep them apart.
func ParseCSP(s string) CSP {
	var c CSP
	seen := map[string]bool{}
	for _, tok := range strings.Split(s, ";") {
		fields := strings.FieldsFunc(tok, isASCIISpace)
		if len(fields) == 0 {
			continue
		}
		name := strings.ToLower(fields[0])
		if seen[name] {
			continue
		}
		seen[name] = true
		c.Directives = append(c.Directives, Directive{Name: name, Sources: fields[1:]})
	}
	return c
}

// ParseCSPList parses every policy in a list of header values: each value may
// hold several policies separated by commas, and a browser enforces all.
func ParseCSPList(values []string) []CSP {
	var out []CSP
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) != "" {
				out = append(out, ParseCSP(p))
			}
		}
	}
	return out
}

// Set replaces or adds a directive, keeping the order of existing ones.
func (c *CSP) Set(name string, sources ...string) {
	name = strings.ToLower(name)
	for i := range c.Directives {
		if c.Directives[i].Name == name {
			c.Directives[i].Sources = sources
			return
		}
	}
	c.Directives = append(c.Directives, Directive{Name: name, Sources: sources})
}

// Get returns the sources of a directive and whether it is present.
func (c CSP) Get(name string) ([]string, bool) {
	name = strings.ToLower(name)
	for _, d := range c.Directives {
		if d.Name == name {
			return d.Sources, true
		}
	}
	return nil, false
}

// Effective returns the sources that govern a fetch directive: the
// directive itself, or default-src when it is absent.
func (c CSP) Effective(name string) ([]string, bool) {
	if s, ok := c.Get(name); ok {
		return s, true
	}
	return c.Get("default-src")
}

// String serializes the policy.
func (c CSP) String() string {
	var b strings.Builder
	for i, d := range c.Directives {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.Name)
		for _, s := range d.Sources {
			b.WriteByte(' ')
			b.WriteString(s)
		}
	}
	return b.String()
}

// CSPIssue is one weakness Lint found.
type CSPIssue struct {
	Directive string // the directive at fault
	Source    string // the offending source expression, if one
	Message   string
}

func (i CSPIssue) String() string {
	if i.Source != "" {
		return fmt.Sprintf("%s %s: %s", i.Directive, i.Source, i.Message)
	}
	return fmt.Sprintf("%s: %s", i.Directive, i.Message)
}

// permissiveConnect are connect-src sources that allow any host.
var permissiveConnect = map[string]string{
	"*":      "allows connections to any origin",
	"https:": "allows connections to any HTTPS origin",
	"http:":  "allows connections to any HTTP origin",
	"wss:":   "allows connections to any secure WebSocket origin",
	"ws:":    "allows connections to any WebSocket origin",
	"data:":  "allows data: URLs",
	"blob:":  "allows blob: URLs",
}

// Lint reports the weaknesses of the policy: default-src missing; a
// connect-src (or the default-src it falls back to) that allows any host; a
// script-src (or default-src) with 'unsafe-inline' or 'unsafe-eval'. An
// empty result means none was found.
func (c CSP) Lint() []CSPIssue {
	var issues []CSPIssue
	if _, ok := c.Get("default-src"); !ok {
		issues = append(issues, CSPIssue{Directive: "default-src",
			Message: "missing: every fetch directive left out is then unrestricted"})
	}
	if srcs, ok := c.Effective("connect-src"); ok {
		name := "connect-src"
		if _, own := c.Get("connect-src"); !own {
			name = "default-src"
		}
		for _, s := range srcs {
			if msg, bad := permissiveConnect[strings.ToLower(s)]; bad {
				issues = append(issues, CSPIssue{Directive: name, Source: s, Message: msg})
			}
		}
	} else {
		issues = append(issues, CSPIssue{Directive: "connect-src",
			Message: "missing, and no default-src: connections to any origin are allowed"})
	}
	if srcs, ok := c.Effective("script-src"); ok {
		name := "script-src"
		if _, own := c.Get("script-src"); !own {
			name = "default-src"
		}
		for _, s := range srcs {
			switch l := strings.ToLower(s); {
			case l == "'unsafe-inline'":
				issues = append(issues, CSPIssue{Directive: name, Source: s, Message: "allows inline script, which XSS injects"})
			case l == "'unsafe-eval'":
				issues = append(issues, CSPIssue{Directive: name, Source: s, Message: "allows eval of strings, which XSS abuses"})
			case l == "*" || l == "https:" || l == "http:" || l == "data:":
				issues = append(issues, CSPIssue{Directive: name, Source: s, Message: "allows script from any origin"})
			}
		}
	}
	return issues
}

// isASCIISpace is CSP's whitespace: tab, LF, FF, CR and space.
func isASCIISpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r'
}
