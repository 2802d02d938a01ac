package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sseguard/sseguard/policy"
)

// profileFile is the format of a --policy FILE: a built-in profile to
// start from, and changes to it.
//
//	extends: strict          # or baseline; default strict
//	name: acme-edge          # shown in reports
//	accept: lenient          # strict or lenient; default: the extended profile's
//	unset: [X-Accel-Buffering]   # drop headers from every kind
//	stream:                  # replaces or adds stream headers, by name
//	  - name: Cache-Control
//	    value: no-cache, no-transform
//	    reason: our CDN needs it
//	problem: []              # likewise json, problem, page
type profileFile struct {
	Extends string          `yaml:"extends"`
	Name    string          `yaml:"name"`
	Accept  string          `yaml:"accept"`
	Unset   []string        `yaml:"unset"`
	Stream  []profileHeader `yaml:"stream"`
	JSON    []profileHeader `yaml:"json"`
	Problem []profileHeader `yaml:"problem"`
	Page    []profileHeader `yaml:"page"`
}

type profileHeader struct {
	Name       string `yaml:"name"`
	Value      string `yaml:"value"`
	Reason     string `yaml:"reason"`
	HTTP11Only bool   `yaml:"http11_only"`
}

// LoadProfile returns the built-in profile named by arg (strict,
// baseline), or the profile described by the YAML file at path arg.
func LoadProfile(arg string) (*policy.Profile, error) {
	if p, err := policy.Lookup(arg); err == nil {
		return p, nil
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("--policy %q is neither strict, baseline nor a readable file: %w", arg, err)
	}
	p, err := ParseProfile(data)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", arg, err)
	}
	return p, nil
}

// ParseProfile parses a policy file (see the profileFile format in
// docs/scan.md). Unknown keys are errors.
func ParseProfile(data []byte) (*policy.Profile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f profileFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	base, err := policy.Lookup(f.Extends)
	if err != nil {
		return nil, fmt.Errorf("extends: %w", err)
	}
	p := base.Clone()
	if f.Name != "" {
		p.Name = f.Name
	} else {
		p.Name = base.Name + "+file"
	}
	switch strings.ToLower(f.Accept) {
	case "":
	case "strict":
		p.Accept = policy.AcceptStrict
	case "lenient":
		p.Accept = policy.AcceptLenient
	default:
		return nil, fmt.Errorf("accept %q: want strict or lenient", f.Accept)
	}
	for _, kind := range []struct {
		name string
		list *[]policy.Header
		set  []profileHeader
	}{{"stream", &p.Stream, f.Stream}, {"json", &p.JSON, f.JSON}, {"problem", &p.Problem, f.Problem}, {"page", &p.Page, f.Page}} {
		for _, name := range f.Unset {
			*kind.list = removeHeader(*kind.list, name)
		}
		for i, h := range kind.set {
			if h.Name == "" || h.Value == "" {
				return nil, fmt.Errorf("%s[%d]: name and value are required", kind.name, i)
			}
			*kind.list = removeHeader(*kind.list, h.Name)
			reason := h.Reason
			if reason == "" {
				reason = "set by the policy file"
			}
			*kind.list = append(*kind.list, policy.Header{Name: h.Name, Value: h.Value, Reason: reason, HTTP11Only: h.HTTP11Only})
		}
	}
	return p, nil
}

func removeHeader(list []policy.Header, name string) []policy.Header {
	out := list[:0:0]
	for _, h := range list {
		if !strings.EqualFold(h.Name, name) {
			out = append(out, h)
		}
	}
	return out
}
