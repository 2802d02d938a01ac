package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvName returns the environment variable that sets key: SSEGUARD_ and
// the key's path in capitals with _ for each dot, so store.redis.url is
// SSEGUARD_STORE_REDIS_URL.
func EnvName(key string) string {
	return "SSEGUARD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys returns the path of every key of the serve file, in the order of
// the file (listen, …, store.redis.url, …).
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case opts == "inline":
				walk(f.Type, prefix)
			case name == "" || name == "-" || !f.IsExported():
			case isSection(f.Type):
				walk(f.Type, prefix+name+".")
			default:
				out = append(out, prefix+name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// isSection reports whether t is a mapping of keys (a struct other than
// Duration's kind), rather than one value.
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct
}

// fieldType returns the Go type of the key at path.
func fieldType(path string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	parts := strings.Split(path, ".")
	for i, part := range parts {
		f, ok := fieldByKey(t, part)
		if !ok {
			return nil, false
		}
		t = f.Type
		if i < len(parts)-1 && !isSection(t) {
			return nil, false
		}
	}
	return t, !isSection(t)
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			if g, ok := fieldByKey(f.Type, key); ok {
				return g, true
			}
			continue
		}
		if name == key && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// Set sets the key at path from text, as the file would set it: a YAML
// value (15s, 100, true, [a, b]); for a string key the text as it is. The
// error is a *FieldError naming the key; it does not quote a string
// key's text, which may be a password.
func (c *Config) Set(path, text string) error {
	t, ok := fieldType(path)
	if !ok {
		return &FieldError{Field: path, Problem: "unknown key"}
	}
	value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: text}
	if t.Kind() != reflect.String {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(text), &doc); err == nil && len(doc.Content) == 1 &&
			(doc.Content[0].Kind == yaml.ScalarNode || doc.Content[0].Kind == yaml.SequenceNode) {
			value = doc.Content[0]
		}
	}
	parts := strings.Split(path, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		value = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: parts[i]}, value}}
	}
	data, err := yaml.Marshal(value)
	if err != nil {
		return &FieldError{Field: path, Problem: err.Error()}
	}
	if err := Decode(data, c); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &FieldError{Field: path, Problem: strings.TrimPrefix(fe.Problem, path+": ")}
		}
		return &FieldError{Field: path, Problem: err.Error()}
	}
	return nil
}

// ApplyEnv sets each key whose environment variable (EnvName) getenv
// returns not empty. The errors, one per variable, name it.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var errs []error
	for _, key := range Keys() {
		name := EnvName(key)
		v := getenv(name)
		if v == "" {
			continue
		}
		if err := c.Set(key, v); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Problem = fmt.Sprintf("from %s: %s", name, fe.Problem)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
