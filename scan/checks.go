package scan

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// rfcSingletons are fields that RFC 9110 and the Fetch standard define as
// one value; repeating them is never right. The profile's own headers are
// singletons too (singletonNames adds them).
var rfcSingletons = []string{
	"Content-Length", "Content-Encoding", "Date", "Location", "Retry-After", "ETag", "Last-Modified",
	"Expires", "Age", "Server", "Strict-Transport-Security", "X-Powered-By",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
}

// singletonNames returns the names HDR-DUP watches: the RFC singletons and
// every header of the profile, except those with a rule of their own.
func singletonNames(p *policy.Profile) []string {
	names := slices.Clone(rfcSingletons)
	for _, kind := range []policy.Kind{policy.KindStream, policy.KindJSON, policy.KindProblem, policy.KindPage} {
		for _, h := range p.Headers(kind, 1, 1) {
			names = append(names, h.Name)
		}
	}
	var out []string
	for _, n := range names {
		c := http.CanonicalHeaderKey(n)
		if c == "Content-Type" || c == "X-Content-Type-Options" || slices.Contains(out, c) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// judgeDup: no singleton header is repeated, on any response (HDR-DUP).
func judgeDup(p *pass, r *response) {
	p.evaluated()
	for _, name := range singletonNames(p.obs.cfg.Profile) {
		if vs := r.res.Values(name); len(vs) > 1 {
			p.report(r.probe, fmt.Sprintf("%d %s lines: %s", len(vs), name, quoteValues(vs)))
		}
	}
}

// judgeLeak: no version in Server and kin, on any response (HDR-LEAK).
func judgeLeak(p *pass, r *response) {
	p.evaluated()
	for _, name := range []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version"} {
		for _, v := range r.res.Values(name) {
			if versionRE.MatchString(v) {
				p.report(r.probe, fmt.Sprintf("%s: %s names a version", name, v))
			}
		}
	}
	for _, el := range viaVersions(r.res.Values("Via")) {
		p.report(r.probe, fmt.Sprintf("Via: %s names an intermediary's version", el))
	}
}

// judgeHSTS checks Strict-Transport-Security on the responses a browser
// loads (streams, the page); refusals need not repeat it (HDR-HSTS).
func judgeHSTS(p *pass, r *response) {
	if !r.stream && !r.page {
		return
	}
	if !p.obs.https {
		p.skip("the target is plain HTTP")
		return
	}
	p.evaluated()
	vs := r.res.Values("Strict-Transport-Security")
	if len(vs) == 0 {
		p.report(r.probe, "no Strict-Transport-Security on an HTTPS response")
	} else if age, err := policy.ParseHSTS(vs[0]); err != nil {
		p.report(r.probe, fmt.Sprintf("Strict-Transport-Security: %s is not valid (%v), so browsers ignore it", vs[0], err))
	} else if age < policy.MinHSTSMaxAge {
		p.report(r.probe, fmt.Sprintf("Strict-Transport-Security: %s has max-age below %d (180 days)", vs[0], policy.MinHSTSMaxAge))
	}
}

var versionRE = regexp.MustCompile(`/\s*v?\d|\d+\.\d+`)

func quoteValues(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

func quoteOrNone(vs []string) string {
	if len(vs) == 0 {
		return "(none)"
	}
	return quoteValues(vs)
}

func isChunkedField(h []rawhttp.Field) bool {
	for _, v := range rawhttp.Values(h, "Transfer-Encoding") {
		if hasToken(v, "chunked") {
			return true
		}
	}
	return false
}

// hasToken reports whether a comma-separated list contains tok.
func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// judgeXCTO checks X-Content-Type-Options on streams and the page:
// exactly one line, nosniff (HDR-XCTO). Refusals are SSE-ERROR-SHAPE's.
func judgeXCTO(p *pass, r *response) {
	if !r.streamHeaders() && !r.page {
		return
	}
	p.evaluated()
	vs := r.res.Values("X-Content-Type-Options")
	switch {
	case len(vs) == 0:
		p.report(r.probe, "no X-Content-Type-Options")
	case len(vs) > 1:
		p.report(r.probe, fmt.Sprintf("%d X-Content-Type-Options lines: %s", len(vs), quoteValues(vs)))
	case !strings.EqualFold(strings.TrimSpace(vs[0]), "nosniff"):
		p.report(r.probe, fmt.Sprintf("X-Content-Type-Options: %s is not nosniff", vs[0]))
	}
}

// judgeCSP checks Content-Security-Policy on streams and the page against
// the profile's value for the kind (at least as strict, by
// policy.Satisfies), and lints every policy present (HDR-CSP).
func judgeCSP(p *pass, r *response) {
	kind := policy.KindStream
	switch {
	case r.page:
		kind = policy.KindPage
	case !r.streamHeaders():
		return
	}
	vs := r.res.Values("Content-Security-Policy")
	prof := p.obs.cfg.Profile
	want, wanted := prof.Header(kind, "Content-Security-Policy")
	if !wanted && len(vs) == 0 {
		p.skip("the profile sets no CSP on " + kind.String() + " responses")
		return
	}
	p.evaluated()
	if len(vs) == 0 {
		p.report(r.probe, "no Content-Security-Policy")
		return
	}
	if short := policy.Shortfalls(want.Name, vs, want.Value); wanted && len(short) > 0 {
		texts := make([]string, len(short))
		for i, s := range short {
			texts[i] = s.String()
		}
		p.report(r.probe, fmt.Sprintf("Content-Security-Policy %s is less strict than profile %s's %q: it %s",
			quoteValues(vs), prof.Name, want.Value, strings.Join(texts, "; ")))
	}
	for _, csp := range policy.ParseCSPList(vs) {
		for _, issue := range csp.Lint() {
			p.report(r.probe, fmt.Sprintf("Content-Security-Policy %q: %s", csp.String(), issue.String()))
		}
	}
}

// ownRule are the headers whose problems a rule of their own reports, so
// HDR-POLICY leaves them out (it still checks the parts those rules do not
// cover, such as no-store in Cache-Control or the charset of Content-Type).
var ownRule = map[string]bool{
	"X-Content-Type-Options":  true,
	"Content-Security-Policy": true,
	"Connection":              true,
}

// judgePolicy reports the profile's headers that are missing or do not
// mean what the profile's value does (policy.Satisfies) on streams,
// refusals and the page, where no more specific rule covers them
// (HDR-POLICY).
func judgePolicy(p *pass, r *response) {
	major, minor := p.obs.cfg.Proto.Version()
	var kind policy.Kind
	switch {
	case r.page:
		kind, major, minor = policy.KindPage, 1, 1
	case r.refusal:
		kind = policy.KindProblem
	case r.streamHeaders():
		kind = policy.KindStream
	default:
		return
	}
	p.evaluated()
	prof := p.obs.cfg.Profile
	for _, h := range prof.Headers(kind, major, minor) {
		name := http.CanonicalHeaderKey(h.Name)
		got := r.res.Values(name)
		if ownRule[name] || coveredElsewhere(name, h, got, r.res) {
			continue
		}
		var short []string
		for _, s := range policy.Shortfalls(name, got, h.Value) {
			if !reportedElsewhere(name, kind, s) {
				short = append(short, s.String())
			}
		}
		switch {
		case len(short) == 0:
		case len(got) == 0:
			p.report(r.probe, fmt.Sprintf("%s response lacks %s: %s (profile %s: %s)", kind, name, h.Value, prof.Name, h.Reason))
		default:
			p.report(r.probe, fmt.Sprintf("%s response has %s: %s; profile %s wants %q: it %s",
				kind, name, strings.Join(got, ", "), prof.Name, h.Value, strings.Join(short, "; ")))
		}
	}
}

// coveredElsewhere reports whether a profile header's deviation is another
// rule's to report, or none at all.
func coveredElsewhere(name string, h policy.Header, got []string, res *rawhttp.Response) bool {
	switch name {
	case "Content-Type":
		// SSE-CTYPE or SSE-ERROR-SHAPE reports another type.
		mt, ok := policy.ExtractMIMEType(got)
		return !ok || mt.Essence != essenceOf(h.Value)
	case "Cross-Origin-Resource-Policy":
		// CORS widens it when it allows an origin.
		return len(got) == 1 && len(res.Values("Access-Control-Allow-Origin")) > 0
	}
	return false
}

// reportedElsewhere reports whether another rule reports this shortfall of
// a stream's Cache-Control: SSE-NO-COMPRESS a missing no-transform,
// SSE-CACHE a missing no-cache and public or max-age.
func reportedElsewhere(name string, kind policy.Kind, s policy.Shortfall) bool {
	if name != "Cache-Control" {
		return false
	}
	if s.Want == "no-transform" {
		return true
	}
	if kind != policy.KindStream {
		return false
	}
	if s.Got == "" && s.Want == "no-cache" {
		return true
	}
	directive, _, _ := strings.Cut(s.Got, "=")
	return s.Want == "" && (directive == "public" || directive == "max-age" || directive == "s-maxage")
}

func essenceOf(v string) string {
	m, _ := policy.ParseMIMEType(v)
	return m.Essence
}

// judgeErrorShape checks an error response against what
// policy.WriteProblem writes for that status (SSE-ERROR-SHAPE).
func judgeErrorShape(p *pass, r *response) {
	if !r.refusal {
		return
	}
	p.evaluated()
	res, probe := r.res, r.probe
	major, minor := p.obs.cfg.Proto.Version()
	ref := problemReference(p.obs.cfg.Profile, res.StatusCode, major, minor)
	status := fmt.Sprintf("%d refusal", res.StatusCode)
	problemBody(p, r, status)
	xs := res.Values("X-Content-Type-Options")
	if len(xs) != 1 || !strings.EqualFold(xs[0], "nosniff") {
		p.report(probe, fmt.Sprintf("%s has X-Content-Type-Options %s, not nosniff once", status, quoteOrNone(xs)))
	}
	cc := res.Values("Cache-Control")
	if !hasDirective(cc, "no-store") {
		p.report(probe, fmt.Sprintf("%s has Cache-Control %s without no-store", status, quoteOrNone(cc)))
	}
	if ref.Get("Retry-After") != "" && len(res.Values("Retry-After")) == 0 {
		p.report(probe, fmt.Sprintf("%s has no Retry-After", status))
	}
	for _, name := range []string{"X-Accel-Buffering", "Content-Encoding"} {
		if vs := res.Values(name); len(vs) > 0 && ref.Get(name) == "" {
			p.report(probe, fmt.Sprintf("%s carries the stream header %s: %s", status, name, vs[0]))
		}
	}
}

// problemBody checks a refusal's type and body: one JSON Content-Type, and
// a JSON object whose status, if any, is the response's.
func problemBody(p *pass, r *response, status string) {
	res, probe, body := r.res, r.probe, r.body
	cts := res.Values("Content-Type")
	mt, parsed := policy.ExtractMIMEType(cts)
	isJSON := parsed && (mt.Essence == "application/json" || strings.HasSuffix(mt.Essence, "+json"))
	switch {
	case len(cts) == 0:
		p.report(probe, status+" has no Content-Type")
	case len(cts) > 1:
		p.report(probe, fmt.Sprintf("%s has %d Content-Type lines: %s", status, len(cts), quoteValues(cts)))
	case !isJSON:
		p.report(probe, fmt.Sprintf("%s is %s, not JSON", status, cts[0]))
	}
	if isJSON || len(cts) == 0 {
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil {
			p.report(probe, fmt.Sprintf("%s body is not a JSON object: %q", status, clip(string(body), 80)))
		} else if s, ok := obj["status"].(float64); ok && int(s) != res.StatusCode {
			p.report(probe, fmt.Sprintf("%s body says status %v", status, s))
		}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// judgeCORS checks the CORS answer to a request that sent r.origin ("" for
// none): no foreign or null origin allowed, no * with credentials, and
// Vary: Origin with a specific origin (HDR-CORS).
func judgeCORS(p *pass, r *response) {
	if !r.cors {
		return
	}
	p.evaluated()
	acao := r.res.Values("Access-Control-Allow-Origin")
	if len(acao) == 0 {
		return
	}
	a := strings.TrimSpace(acao[0])
	credentials := false
	for _, v := range r.res.Values("Access-Control-Allow-Credentials") {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			credentials = true
		}
	}
	switch origin := r.origin; {
	case origin == "null" && a == "null":
		p.report(r.probe, "Origin: null is allowed (Access-Control-Allow-Origin: null): sandboxed frames and file: pages of any site can read the stream")
	case origin != "" && a == origin:
		p.report(r.probe, fmt.Sprintf("the foreign Origin %s is reflected in Access-Control-Allow-Origin%s", origin, map[bool]string{true: " with credentials", false: ""}[credentials]))
	case a == "*" && credentials:
		p.report(r.probe, "Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true")
	case a == "null":
		p.report(r.probe, "Access-Control-Allow-Origin: null")
	}
	if a != "*" && a != "" && !varies(r.res) {
		p.report(r.probe, fmt.Sprintf("Access-Control-Allow-Origin: %s without Vary: Origin: a cache may serve it to other origins", a))
	}
}

// varies reports whether res says Vary: Origin (or *).
func varies(res *rawhttp.Response) bool {
	for _, v := range res.Values("Vary") {
		if hasToken(v, "Origin") || strings.TrimSpace(v) == "*" {
			return true
		}
	}
	return false
}

// judgeAccept: a stream request whose Accept the profile refuses gets a
// 406, not a stream (SSE-ACCEPT).
func judgeAccept(p *pass, r *response) {
	if r.accept == "" {
		return
	}
	p.evaluated()
	cause := ""
	if ev := cacheEvidence(r.res); ev != "" {
		// The origin may refuse it: the cache answered from what another
		// request stored.
		cause = fmt.Sprintf("; a cache answered (%s), not the origin: key the cache on Accept (Vary: Accept) or bypass it for the stream path", ev)
	}
	switch {
	case r.res.StatusCode == http.StatusNotAcceptable:
	case isEventStream(r.res):
		p.report(r.probe, fmt.Sprintf("Accept: %s got 200 text/event-stream: the stream is served to clients that did not ask for it%s", r.accept, cause))
	default:
		p.report(r.probe, fmt.Sprintf("Accept: %s got %d, not 406%s", r.accept, r.res.StatusCode, cause))
	}
}

// judgeOrder checks the relative order of the pinned header names on the
// main stream (HDR-ORDER).
func judgeOrder(p *pass, r *response) {
	if !r.order {
		return
	}
	p.evaluated()
	pos := map[string]int{}
	for i, f := range r.res.Header {
		c := http.CanonicalHeaderKey(f.Name)
		if _, seen := pos[c]; !seen {
			pos[c] = i
		}
	}
	var present []string
	for _, n := range p.obs.cfg.ExpectOrder {
		c := http.CanonicalHeaderKey(strings.TrimSpace(n))
		if _, ok := pos[c]; !ok {
			p.report(r.probe, fmt.Sprintf("pinned header %s is missing", c))
			continue
		}
		present = append(present, c)
	}
	actual := slices.Clone(present)
	slices.SortStableFunc(actual, func(a, b string) int { return pos[a] - pos[b] })
	if !slices.Equal(present, actual) {
		p.report(r.probe, fmt.Sprintf("headers came as %s; pinned order is %s", strings.Join(actual, ", "), strings.Join(present, ", ")))
	}
}

// checkOrder says why HDR-ORDER was not evaluated.
func checkOrder(p *pass) {
	if p.obs.load != nil {
		p.skip("not checked in load mode")
	}
	if len(p.obs.cfg.ExpectOrder) == 0 {
		p.skip("no --expect-order")
	}
}
