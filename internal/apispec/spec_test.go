package apispec_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sseguard/sseguard/policy"
)

// specPath is docs/openapi.yaml, found from this file so that the test
// runs from any folder.
func specPath(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the test's own file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "openapi.yaml")
}

// loadSpec loads and validates docs/openapi.yaml.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath(t))
	if err != nil {
		t.Fatalf("loading docs/openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("docs/openapi.yaml is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("docs/openapi.yaml is not valid: %v", err)
	}
	return doc
}

func TestSpecIsValid(t *testing.T) { loadSpec(t) }

// problemResponse is a components response whose body is a Problem, with
// the status and codes its schema allows.
type problemResponse struct {
	name   string
	status int
	codes  []string
}

// problemResponses reads each components response of problem+json: the
// status and error its allOf narrows Problem to.
func problemResponses(t *testing.T, doc *openapi3.T) []problemResponse {
	t.Helper()
	var out []problemResponse
	for name, ref := range doc.Components.Responses {
		mt := ref.Value.Content.Get("application/problem+json")
		if mt == nil {
			continue
		}
		s := mt.Schema.Value
		if len(s.AllOf) != 2 || s.AllOf[0].Ref != "#/components/schemas/Problem" {
			t.Errorf("response %s: want allOf [Problem, {status, error}]", name)
			continue
		}
		narrow := s.AllOf[1].Value.Properties
		pr := problemResponse{name: name}
		if st, ok := narrow["status"]; ok {
			pr.status = asInt(st.Value.Const)
		}
		if e, ok := narrow["error"]; ok {
			if e.Value.Const != nil {
				pr.codes = []string{fmt.Sprint(e.Value.Const)}
			}
			for _, v := range e.Value.Enum {
				pr.codes = append(pr.codes, fmt.Sprint(v))
			}
		}
		if pr.status == 0 || len(pr.codes) == 0 {
			t.Errorf("response %s: its schema fixes no status or no error codes", name)
		}
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func asInt(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case int:
		return n
	case uint64:
		return int(n)
	case int64:
		return int(n)
	}
	i, _ := strconv.Atoi(fmt.Sprint(v))
	return i
}

// proxyOnly are the codes only sseguard proxy sends: in the enum, in no
// response of the hub.
var proxyOnly = []string{policy.CodeUpstreamFailed, policy.CodeUpstreamTimeout}

// TestSpecCodesMatchPolicy keeps the spec and policy.Codes from drifting:
// the ProblemCode enum is exactly the codes of policy.Codes; each response
// narrows Problem to codes that policy gives its status (a preflight's 403
// method_not_allowed aside); and every code the hub sends has a response.
func TestSpecCodesMatchPolicy(t *testing.T) {
	doc := loadSpec(t)
	var enum []string
	for _, v := range doc.Components.Schemas["ProblemCode"].Value.Enum {
		enum = append(enum, fmt.Sprint(v))
	}
	status := map[string]int{}
	var codes []string
	for _, c := range policy.Codes {
		status[c.Code] = c.Status
		codes = append(codes, c.Code)
	}
	slices.Sort(enum)
	slices.Sort(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("ProblemCode enum\n%q\nwant policy.Codes\n%q", enum, codes)
	}
	// policy.Preflight answers a method the route does not take with 403
	// method_not_allowed: the request is a preflight's, not the method's.
	exceptions := map[string]int{policy.CodeMethodNotAllowed: http.StatusForbidden}
	answered := map[string]bool{}
	for _, pr := range problemResponses(t, doc) {
		for _, code := range pr.codes {
			answered[code] = true
			want, ok := status[code]
			switch {
			case !ok:
				t.Errorf("response %s: code %q is not in policy.Codes", pr.name, code)
			case want != pr.status && exceptions[code] != pr.status:
				t.Errorf("response %s: status %d for %q; policy.Codes gives it %d", pr.name, pr.status, code, want)
			}
		}
	}
	for _, code := range codes {
		if !answered[code] && !slices.Contains(proxyOnly, code) {
			t.Errorf("code %q has no response in components.responses", code)
		}
	}
}

// TestSpecHeadersMatchPolicy checks that each response documents every
// header the strict profile sets on its kind, with the profile's value,
// and the CORS constants of package policy.
func TestSpecHeadersMatchPolicy(t *testing.T) {
	doc := loadSpec(t)
	responses := doc.Components.Responses
	check := func(where string, headers openapi3.Headers, kind policy.Kind) {
		t.Helper()
		for _, h := range policy.Strict.Headers(kind, 1, 1) {
			if h.Name == "Content-Type" {
				continue // the media type of the content
			}
			ref, ok := headers[h.Name]
			if !ok {
				t.Errorf("%s: %s is not documented; the strict profile sets %q", where, h.Name, h.Value)
				continue
			}
			s := ref.Value.Schema.Value
			switch {
			case s.Const != nil && fmt.Sprint(s.Const) != h.Value:
				t.Errorf("%s: %s is %q in the spec, %q in the strict profile", where, h.Name, s.Const, h.Value)
			case s.Const == nil && !slices.Contains(s.Enum, any(h.Value)):
				t.Errorf("%s: %s allows %v; the strict profile sends %q", where, h.Name, s.Enum, h.Value)
			}
			if !ref.Value.Required && !h.HTTP11Only {
				t.Errorf("%s: %s is always sent: mark it required", where, h.Name)
			}
		}
	}
	check("responses.Stream", responses["Stream"].Value.Headers, policy.KindStream)
	check("responses.StreamHead", responses["StreamHead"].Value.Headers, policy.KindStream)
	check("responses.DashboardStream", responses["DashboardStream"].Value.Headers, policy.KindStream)
	check("responses.Page", responses["Page"].Value.Headers, policy.KindPage)
	for _, pr := range problemResponses(t, doc) {
		check("responses."+pr.name, responses[pr.name].Value.Headers, policy.KindProblem)
	}
	for _, path := range []string{"/api/poll", "/healthz", "/readyz"} {
		check(path+" 200", doc.Paths.Value(path).Get.Responses.Status(200).Value.Headers, policy.KindJSON)
	}
	check("/api/publish 201", doc.Paths.Value("/api/publish").Post.Responses.Status(201).Value.Headers, policy.KindJSON)

	preflight := doc.Paths.Value("/events").Options.Responses.Status(204).Value.Headers
	if got := fmt.Sprint(preflight["Access-Control-Allow-Headers"].Value.Schema.Value.Const); got != policy.CORSAllowHeaders {
		t.Errorf("preflight Access-Control-Allow-Headers is %q, policy.CORSAllowHeaders %q", got, policy.CORSAllowHeaders)
	}
	expose := doc.Components.Headers["AccessControlExposeHeaders"].Value.Schema.Value.Const
	if got := fmt.Sprint(expose); got != policy.CORSExposeHeaders {
		t.Errorf("Access-Control-Expose-Headers is %q, policy.CORSExposeHeaders %q", got, policy.CORSExposeHeaders)
	}
	if got := fmt.Sprint(doc.Components.Schemas["Problem"].Value.Properties["type"].Value.Pattern); got != "^"+policy.ProblemTypeBase+"[a-z_]+$" {
		t.Errorf("Problem.type pattern %q does not start with policy.ProblemTypeBase %q", got, policy.ProblemTypeBase)
	}
}
