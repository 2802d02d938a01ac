package policy

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated sections of docs/ from the policy")

// TestDocsMatchPolicy keeps the header and error tables in docs/ equal to
// the policy they describe. Run with -update to regenerate them.
func TestDocsMatchPolicy(t *testing.T) {
	sections := map[string]map[string]string{
		"../docs/security.md": {
			"strict":   headerTable(Strict),
			"baseline": headerTable(Baseline),
		},
		"../docs/errors.md": {
			"codes": codeTable(),
		},
	}
	for path, gens := range sections {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(raw)
		for name, body := range gens {
			begin := fmt.Sprintf("<!-- BEGIN generated:%s -->\n", name)
			end := fmt.Sprintf("<!-- END generated:%s -->", name)
			i, j := strings.Index(doc, begin), strings.Index(doc, end)
			if i < 0 || j < i {
				t.Errorf("%s: markers for %q missing", path, name)
				continue
			}
			current := doc[i+len(begin) : j]
			if current == body {
				continue
			}
			if *update {
				doc = doc[:i+len(begin)] + body + doc[j:]
				continue
			}
			t.Errorf("%s: section %q is out of date with the policy; run go test ./policy -run TestDocsMatchPolicy -update", path, name)
		}
		if *update && doc != string(raw) {
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func headerTable(p *Profile) string {
	var b strings.Builder
	b.WriteString("| response | header | value | why |\n|---|---|---|---|\n")
	for _, k := range []Kind{KindStream, KindJSON, KindProblem, KindPage} {
		for _, h := range p.Headers(k, 1, 1) {
			why := h.Reason
			if h.HTTP11Only {
				why += " (HTTP/1.1 only)"
			}
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s |\n", k, h.Name, h.Value, why)
		}
	}
	fmt.Fprintf(&b, "\nAccept mode: %s.\n", map[AcceptMode]string{
		AcceptStrict:  "strict (text/event-stream must be named explicitly with q > 0; `*/*` alone gets 406)",
		AcceptLenient: "lenient (any Accept giving text/event-stream q > 0, wildcards and no Accept included)",
	}[p.Accept])
	return b.String()
}

func codeTable() string {
	var b strings.Builder
	b.WriteString("| error | status | meaning |\n|---|---|---|\n")
	for _, c := range Codes {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c.Code, c.Status, c.Meaning)
	}
	return b.String()
}
