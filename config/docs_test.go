package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

const docPath = "../docs/configuration.md"

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsListEveryKey fails when a key of Config is missing from
// docs/configuration.md, or its row gives a default other than Default's.
func TestDocsListEveryKey(t *testing.T) {
	doc := readDoc(t)
	rows := map[string][]string{} // key -> cells of its table row
	for line := range strings.Lines(doc) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 6 || cells[0] != "" {
			continue
		}
		k := strings.Trim(strings.TrimSpace(cells[1]), "`")
		rows[k] = cells[1 : len(cells)-1]
	}
	for _, k := range keys(t) {
		if !strings.Contains(doc, "`"+k.path+"`") {
			t.Errorf("%s does not mention `%s`", docPath, k.path)
			continue
		}
		row, ok := rows[k.path]
		if !ok || len(row) != 4 {
			t.Errorf("%s: no row | `%s` | type | default | meaning | in the table of keys", docPath, k.path)
			continue
		}
		if want := "`" + yamlText(k.value) + "`"; strings.TrimSpace(row[2]) != want {
			t.Errorf("%s: %s default is %s, want %s", docPath, k.path, strings.TrimSpace(row[2]), want)
		}
	}
}

// TestDocsProductionExample keeps the production example of the docs equal
// to testdata/production.yaml, which TestGolden shows to be valid.
func TestDocsProductionExample(t *testing.T) {
	example, err := os.ReadFile("testdata/production.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readDoc(t), "```yaml\n"+string(example)+"```\n") {
		t.Errorf("%s: the production example differs from testdata/production.yaml", docPath)
	}
	c, err := Parse(example)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("production example: %v", err)
	}
	if len(*c.Auth.AnonymousSubscribe) != 0 {
		t.Errorf("production example allows anonymous topics %q", *c.Auth.AnonymousSubscribe)
	}
}

// yamlText writes a default as the docs' table shows it.
func yamlText(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		s, _ := x.MarshalYAML()
		return s.(string)
	case string:
		if x == "" {
			return `""`
		}
		return x
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}
