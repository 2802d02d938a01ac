package scan_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/scan"
)

func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range scan.Rules() {
		if seen[r.ID] {
			t.Errorf("duplicate rule %s", r.ID)
		}
		seen[r.ID] = true
		if r.Title == "" || r.Why == "" || r.Remediation == "" || r.Reference == "" {
			t.Errorf("%s lacks a title, why, remediation or reference: %+v", r.ID, r)
		}
		if r.Severity < scan.Info || r.Severity > scan.High {
			t.Errorf("%s: severity %v", r.ID, r.Severity)
		}
	}
	// The SPEC's starting catalogue, with its severities.
	spec := map[string]scan.Severity{
		"SSE-STATUS": scan.High, "SSE-CTYPE": scan.High, "SSE-CTYPE-DUP": scan.High, "SSE-CHARSET": scan.Low,
		"SSE-H2-CONNHDR": scan.High, "SSE-H1-FRAMING": scan.Medium, "SSE-NO-COMPRESS": scan.Medium, "SSE-CACHE": scan.Medium,
		"SSE-FLUSH": scan.High, "SSE-HEARTBEAT": scan.Medium, "SSE-KEEPALIVE": scan.Low, "SSE-ACCEPT": scan.Medium,
		"SSE-ERROR-SHAPE": scan.Medium, "HDR-XCTO": scan.Medium, "HDR-CSP": scan.Medium, "HDR-CORS": scan.High,
		"HDR-DUP": scan.Medium, "HDR-LEAK": scan.Low, "HDR-HSTS": scan.Low,
	}
	for id, sev := range spec {
		r, ok := scan.LookupRule(id)
		if !ok || r.Severity != sev {
			t.Errorf("SPEC rule %s: got %+v, want severity %s", id, r, sev)
		}
	}
}

// rulesMarkdown renders the catalogue as docs/scan.md shows it.
func rulesMarkdown() string {
	var b strings.Builder
	for _, r := range scan.Rules() {
		fmt.Fprintf(&b, "### %s\n\n**%s** · %s\n\n%s\n\n**Fix:** %s\n\n", r.ID, r.Severity, r.Title, r.Why, r.Remediation)
		if r.Nginx != "" {
			fmt.Fprintf(&b, "**nginx:** %s\n\n", r.Nginx)
		}
		fmt.Fprintf(&b, "**Reference:** %s\n\n", r.Reference)
	}
	return b.String()
}

// TestDocsMatchCatalogue: the rule sections of docs/scan.md are generated
// from the catalogue (go test ./scan -run TestDocsMatchCatalogue -update),
// so the docs and --list-rules cannot drift apart.
func TestDocsMatchCatalogue(t *testing.T) {
	const path = "../docs/scan.md"
	const begin, end = "<!-- BEGIN generated:rules -->\n", "<!-- END generated:rules -->"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated rules markers", path)
	}
	want := begin + "\n" + rulesMarkdown()
	got := doc[i:j]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's rules differ from the catalogue; run go test ./scan -run TestDocsMatchCatalogue -update", path)
}

// otherCoverage lists the tests outside TestRules that make a rule fire or
// keep it quiet; TestEveryRuleHasFireAndQuietTests checks that the named
// tests exist.
var otherCoverage = []struct {
	rule, test string
	fires      bool
}{
	{scan.RuleAuthLeak, "TestPrivateStreamCached", true},
	{scan.RuleAuthLeak, "TestPrivateStreamCached", false},
	{scan.RuleDrift, "TestBaseline", true},
	{scan.RuleDrift, "TestBaseline", false},
	{scan.RuleResume, "TestResumeWithPublishedEvents", true},
	{scan.RuleFlush, "TestFlushWithPublishedEvents", true},
	{scan.RuleLoadConnect, "TestLoadFaults", true},
	{scan.RuleLoadDrop, "TestLoadFaults", true},
	{scan.RuleLoadLoss, "TestLoadFaults", true},
	{scan.RuleLoadLatency, "TestLoadFaults", true},
	{scan.RuleLoadConnect, "TestLoadAgainstHub", false},
	{scan.RuleLoadDrop, "TestLoadAgainstHub", false},
	{scan.RuleLoadLoss, "TestLoadAgainstHub", false},
	{scan.RuleLoadLatency, "TestLoadAgainstHub", false},
	{scan.RuleCut, "TestNginxMisconfigured", true},
	{scan.RuleCut, "TestIntermediaryMisconfigured", true},
	{scan.RuleHeadDelay, "TestHeadHeldUntilFirstByte", true},
	{scan.RuleHeadDelay, "TestIntermediaryMisconfigured", false},
	{scan.RuleKeepAlive, "TestNginxMisconfigured", true},
}

// TestEveryRuleHasFireAndQuietTests: every rule has at least one test that
// makes it fire and one that keeps it quiet.
func TestEveryRuleHasFireAndQuietTests(t *testing.T) {
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range ruleCases {
		for _, id := range tc.fires {
			fires[id] = true
		}
		for _, id := range tc.quiet {
			quiet[id] = true
		}
	}
	tests := testFuncs(t)
	for _, c := range otherCoverage {
		if !slices.Contains(tests, c.test) {
			t.Errorf("otherCoverage names %s, which does not exist", c.test)
		}
		if c.fires {
			fires[c.rule] = true
		} else {
			quiet[c.rule] = true
		}
	}
	for _, r := range scan.Rules() {
		if !fires[r.ID] {
			t.Errorf("no test makes %s fire", r.ID)
		}
		if !quiet[r.ID] {
			t.Errorf("no test keeps %s quiet", r.ID)
		}
	}
}

func testFuncs(t *testing.T) []string {
	files, _ := filepath.Glob("*_test.go")
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && strings.HasPrefix(fn.Name.Name, "Test") {
				names = append(names, fn.Name.Name)
			}
		}
	}
	return names
}
