package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is a failure of one field, named by its path in the file (for
// example "stream.heartbeat" or "routes[1].kind"). Decode sets Line;
// Validate methods leave it 0 and Locate fills it in from the file.
//
// Every configuration error of serve and proxy files is a *FieldError, or
// several joined with errors.Join, one per line.
type FieldError struct {
	Field, Problem string
	Line           int
}

func (e *FieldError) Error() string {
	s := e.Problem
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	return s
}

// problems collects the *FieldError values of one validation.
type problems struct {
	prefix string
	errs   []error
}

// add records a problem of the field named name under the prefix.
func (p *problems) add(name, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Field: join(p.prefix, name), Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// join names a key inside a section: join("auth", "keys[0]") is
// "auth.keys[0]", join("", "listen") is "listen".
func join(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

// Decode reads one YAML document into v, a pointer to a struct whose yaml
// tags are the file's keys, refusing unknown keys. A key of the wrong
// type, an unknown key, a repeated key and a syntax error are each a
// *FieldError with its line; all of them are reported, joined. An empty
// file leaves v as it is.
//
// It is the decoder of every sseguard file format, so that they all fail
// the same way.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) { // an empty file
		return nil
	}
	if err == nil {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return syntaxError(err)
		}
		return &FieldError{Line: next.Line, Problem: "a second YAML document after ---; want one"}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fieldErrors(data, te, reflect.TypeOf(v))
	}
	return syntaxError(err)
}

var (
	unknownKeyRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	wrongTypeRE  = regexp.MustCompile("(?s)^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
	repeatedRE   = regexp.MustCompile(`^mapping key ".*" already defined at line (\d+)$`)
	lineRE       = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	syntaxRE     = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)
)

// syntaxError turns "yaml: line 3: mapping values are not allowed" into a
// *FieldError on line 3; an error without a line stays as it is.
func syntaxError(err error) error {
	if m := syntaxRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{Line: line, Problem: "not YAML: " + m[2]}
	}
	return fmt.Errorf("config: %w", err)
}

// fieldErrors turns the decoder's "line 3: field x not found in type
// config.Stream" into "line 3: stream.x: unknown key; ...", naming the key
// the way the file and the docs do. t is the type decoded into, for the
// lists of known keys; nil leaves them out.
func fieldErrors(data []byte, te *yaml.TypeError, t reflect.Type) error {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it parsed once already
	paths := map[int]string{}
	keyPaths(&root, "", paths)
	onLine := map[int][]string{} // every key path on each line
	walkPaths(&root, "", func(line int, p string) { onLine[line] = append(onLine[line], p) })
	values := map[int]string{} // the first scalar value on each line
	walkValues(&root, values)
	keys := map[string][]string{}
	if t != nil {
		knownKeys(t, keys)
	}

	var errs []error
	for _, msg := range te.Errors {
		fe := &FieldError{Problem: msg}
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Field, fe.Problem = paths[fe.Line], m[2]
		}
		if m := unknownKeyRE.FindStringSubmatch(fe.Problem); m != nil {
			// On a line such as "- {name: a, valeu: b}", name the key
			// itself rather than the first one.
			for _, p := range onLine[fe.Line] {
				if p == m[1] || strings.HasSuffix(p, "."+m[1]) {
					fe.Field = p
					break
				}
			}
			fe.Problem = "unknown key"
			if known := keys[m[2]]; len(known) > 0 {
				fe.Problem += "; want one of " + strings.Join(known, ", ")
			}
		} else if m := wrongTypeRE.FindStringSubmatch(fe.Problem); m != nil {
			got := map[string]string{"seq": "a list", "map": "a mapping"}[m[1]]
			if v, cut := values[fe.Line], strings.TrimSuffix(m[2], "..."); got == "" && cut != m[2] && strings.HasPrefix(v, cut) {
				m[2] = v // the decoder cuts long values short
			}
			if got == "" {
				got = strconv.Quote(m[2])
			}
			fe.Problem = "want " + typeText(m[3]) + ", got " + got
		} else if m := repeatedRE.FindStringSubmatch(fe.Problem); m != nil {
			fe.Problem = "repeated key, first set at line " + m[1]
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// keyPaths records, for each line, the dotted path of the first key or
// list item on it ("stream.heartbeat", "auth.anonymous_subscribe[1]").
func keyPaths(n *yaml.Node, path string, m map[int]string) {
	walkPaths(n, path, func(line int, p string) {
		if _, ok := m[line]; !ok {
			m[line] = p
		}
	})
}

// walkPaths calls at with the line and dotted path of every key and list
// item under n, in file order.
func walkPaths(n *yaml.Node, path string, at func(line int, path string)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkPaths(c, path, at)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			at(n.Content[i].Line, p)
			walkPaths(n.Content[i+1], p, at)
		}
	case yaml.SequenceNode:
		if path == "" { // a list where the file's mapping belongs
			return
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			at(c.Line, p)
			walkPaths(c, p, at)
		}
	default:
		at(n.Line, path)
	}
}

// walkValues records the first scalar value on each line under n.
func walkValues(n *yaml.Node, m map[int]string) {
	if n.Kind == yaml.ScalarNode {
		if _, ok := m[n.Line]; !ok {
			m[n.Line] = n.Value
		}
		return
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // a key
		}
		walkValues(c, m)
	}
}

// knownKeys maps each struct type name ("config.Stream") to its keys, the
// keys of inline sections included.
func knownKeys(t reflect.Type, m map[string][]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	if _, done := m[t.String()]; done {
		return
	}
	m[t.String()] = appendKeys(nil, t)
	for i := range t.NumField() {
		knownKeys(t.Field(i).Type, m)
	}
}

// appendKeys appends the keys of struct type t to keys, in field order.
func appendKeys(keys []string, t reflect.Type) []string {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case opts == "inline":
			keys = appendKeys(keys, f.Type)
		case !f.IsExported():
		default:
			keys = append(keys, name)
		}
	}
	return keys
}

// KnownKeys returns the top-level keys of a file decoded into v, a struct
// or a pointer to one, in field order.
func KnownKeys(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return appendKeys(nil, t)
}

func typeText(goType string) string {
	switch goType {
	case "int", "int64":
		return "an integer"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	if strings.Contains(goType, ".") { // a section such as config.Stream
		return "a mapping"
	}
	return goType
}

func nodeText(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return strconv.Quote(n.Value)
}

// Locate gives the errors in err the lines of the file data they are
// about, and returns them joined in the order of the file (errors about
// fields the file leaves out last). Each *FieldError without a line gets the line
// of its field, or else of the nearest enclosing key that the file writes
// ("routes[0].upstream" left out: the line of routes[0]); a field the file
// leaves out entirely (a default) keeps none. A *yaml.TypeError, from a
// decoder other than Decode, is turned into *FieldError values first.
//
// Validate methods know the configuration, not the file; Locate is how
// "sseguard config check" shows where to look.
func Locate(data []byte, err error) error {
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fieldErrors(data, te, nil)
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	lines := map[string]int{}
	walkPaths(&root, "", func(line int, p string) {
		if _, ok := lines[p]; !ok {
			lines[p] = line
		}
	})
	var all []error
	eachError(err, func(e error) {
		var fe *FieldError
		if errors.As(e, &fe) {
			for p := fe.Field; fe.Line == 0 && p != ""; p = parent(p) {
				fe.Line = lines[p]
			}
		}
		all = append(all, e)
	})
	slices.SortStableFunc(all, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
	return errors.Join(all...)
}

// lineOf orders errors by line, those without one last.
func lineOf(err error) int {
	var fe *FieldError
	if errors.As(err, &fe) && fe.Line > 0 {
		return fe.Line
	}
	return math.MaxInt
}

// parent returns the enclosing path: "a.b[0].c" → "a.b[0]" → "a.b" → "a"
// → "".
func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// eachFieldError calls f with every *FieldError in the tree of err.
func eachFieldError(err error, f func(*FieldError)) {
	eachError(err, func(e error) {
		var fe *FieldError
		if errors.As(e, &fe) {
			f(fe)
		}
	})
}

// eachError calls f with each leaf of the tree of errors.Join in err.
func eachError(err error, f func(error)) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, c := range j.Unwrap() {
			eachError(c, f)
		}
		return
	}
	f(err)
}
