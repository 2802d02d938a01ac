package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/proxy"
	"github.com/sseguard/sseguard/scan"
)

// configCommand validates a configuration file of any kind sseguard reads.
type configCommand struct{}

func (*configCommand) name() string { return "config" }
func (*configCommand) synopsis() string {
	return "config check [--kind serve|proxy|policy] FILE: validate a configuration file"
}

// fileKind is one kind of file sseguard reads, and how to check it.
type fileKind struct {
	name, title string
	keys        []string // its top-level keys
	// check parses and validates data; its errors name fields and lines.
	check func(data []byte) (note string, err error)
}

// policyKeys are the top-level keys of a scan policy file
// (scan.ParseProfile), which exports no type to read them from; the test
// of the docs' examples checks docs/scan.md's file with them.
var policyKeys = []string{"extends", "name", "accept", "unset", "stream", "json", "problem", "page"}

func fileKinds() []*fileKind {
	return []*fileKind{
		{name: "serve", title: "serve configuration", keys: config.KnownKeys(config.Config{}), check: checkServe},
		{name: "proxy", title: "proxy configuration", keys: config.KnownKeys(proxy.Config{}), check: checkProxy},
		{name: "policy", title: "scan policy file", keys: policyKeys, check: checkPolicy},
	}
}

func (c *configCommand) run(_ context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "check [--kind serve|proxy|policy] FILE")
	kindName := fs.String("kind", "", "the kind of file: serve (sseguard serve --config), proxy (sseguard proxy --config) or policy (sseguard scan --policy); default: told by its keys")
	pos, err := parseInterspersed(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] != "check" {
		return &usageError{msg: "want: config check [--kind serve|proxy|policy] FILE", hint: "for example: sseguard config check sseguard.yaml"}
	}
	path := pos[1]
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	kind, how, err := chooseKind(*kindName, data)
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	} else if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	note, err := kind.check(data)
	if err != nil {
		return fmt.Errorf("%s is not a valid %s%s:\n%w", path, kind.title, how, err)
	}
	fmt.Fprintf(env.stdout, "%s: ok (%s%s)\n", path, kind.title, note)
	return nil
}

// chooseKind returns the kind named by --kind, or else the kind data's
// top-level keys tell, with how it was told for error messages.
func chooseKind(name string, data []byte) (*fileKind, string, error) {
	kinds := fileKinds()
	if name != "" {
		for _, k := range kinds {
			if k.name == name {
				return k, "", nil
			}
		}
		return nil, "", &usageError{msg: fmt.Sprintf("--kind %q: want serve, proxy or policy", name), hint: "serve for sseguard serve --config, proxy for sseguard proxy --config, policy for sseguard scan --policy"}
	}
	k, evidence := detectKind(kinds, data)
	switch {
	case len(evidence) > 1:
		var parts []string
		for _, k := range kinds {
			if keys := evidence[k]; len(keys) > 0 {
				parts = append(parts, fmt.Sprintf("of a %s (%s)", k.title, strings.Join(keys, ", ")))
			}
		}
		return nil, "", fmt.Errorf("the file has keys %s: keep one kind per file, or pass --kind to check it as one kind", strings.Join(parts, " and "))
	case len(evidence) == 0:
		return k, " (the default kind: no key tells; pass --kind proxy or --kind policy for another)", nil
	}
	return k, fmt.Sprintf(" (told by its keys %s; --kind chooses another)", strings.Join(evidence[k], ", ")), nil
}

// detectKind returns the kind whose own keys data uses, with the keys of
// each kind that only that kind has: the first kind (serve) when none has
// any, and more than one entry when data mixes kinds.
func detectKind(kinds []*fileKind, data []byte) (*fileKind, map[*fileKind][]string) {
	evidence := map[*fileKind][]string{}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return kinds[0], evidence
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, value := m.Content[i].Value, m.Content[i+1]
		var owners []*fileKind
		for _, k := range kinds {
			if slices.Contains(k.keys, key) {
				owners = append(owners, k)
			}
		}
		// stream is a section in serve files, a list of headers in policy
		// files.
		if key == "stream" && value.Kind == yaml.SequenceNode {
			owners = slices.DeleteFunc(owners, func(k *fileKind) bool { return k.name != "policy" })
		} else if key == "stream" && value.Kind == yaml.MappingNode {
			owners = slices.DeleteFunc(owners, func(k *fileKind) bool { return k.name != "serve" })
		}
		if len(owners) == 1 {
			evidence[owners[0]] = append(evidence[owners[0]], key)
		}
	}
	for _, k := range kinds {
		if len(evidence[k]) > 0 {
			return k, evidence
		}
	}
	return kinds[0], evidence
}

func checkServe(data []byte) (string, error) {
	c, err := config.Parse(data)
	if err != nil {
		return "", err
	}
	return "", config.Locate(data, c.Validate())
}

// placeholderUpstream stands in for --upstream when a proxy file names no
// upstream, which is then given on the command line.
const placeholderUpstream = "http://127.0.0.1:1"

func checkProxy(data []byte) (string, error) {
	c, err := proxy.ParseConfig(data)
	if err != nil {
		return "", err
	}
	note := ""
	if c.Upstream == "" && !anyRouteUpstream(c) {
		c.Upstream, note = placeholderUpstream, "; sseguard proxy needs --upstream with it"
	}
	c.Fill()
	return note, config.Locate(data, c.Validate())
}

// pathPrefixRE matches the "stream[0]: ..." or "extends: ..." that starts
// a scan policy error.
var pathPrefixRE = regexp.MustCompile(`^([a-z_]+(?:\[\d+\])?): (.*)$`)

func checkPolicy(data []byte) (string, error) {
	// Syntax errors and a second document, with their lines.
	if err := config.Decode(data, new(yaml.Node)); err != nil {
		return "", err
	}
	_, err := scan.ParseProfile(data)
	if err == nil {
		return "", nil
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		// scan names the field at the start of its message: make it a
		// FieldError, so that Locate finds its line.
		if m := pathPrefixRE.FindStringSubmatch(err.Error()); m != nil {
			err = &config.FieldError{Field: m[1], Problem: m[2]}
		}
	}
	return "", config.Locate(data, err)
}
