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

// checker evaluates the header rules on responses.
type checker struct {
	cfg   *Config
	https bool
	c     *collector
}

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
func (k *checker) singletonNames() []string {
	names := slices.Clone(rfcSingletons)
	for _, kind := range []policy.Kind{policy.KindStream, policy.KindJSON, policy.KindProblem, policy.KindPage} {
		for _, h := range k.cfg.Profile.Headers(kind, 1, 1) {
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

// common runs the rules that hold for every response.
func (k *checker) common(probe string, res *rawhttp.Response) {
	k.c.check(RuleDup, RuleLeak)
	if srv := res.Values("Server"); len(srv) > 0 && strings.Contains(strings.ToLower(strings.Join(srv, " ")), "nginx") {
		k.c.nginx = true
	}
	for _, name := range k.singletonNames() {
		if vs := res.Values(name); len(vs) > 1 {
			k.c.add(RuleDup, probe, fmt.Sprintf("%d %s lines: %s", len(vs), name, quoteValues(vs)))
		}
	}
	for _, name := range []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version"} {
		for _, v := range res.Values(name) {
			if versionRE.MatchString(v) {
				k.c.add(RuleLeak, probe, fmt.Sprintf("%s: %s names a version", name, v))
			}
		}
	}
}

// hsts checks Strict-Transport-Security on a response a browser loads (the
// stream, the page); refusals need not repeat it.
func (k *checker) hsts(probe string, res *rawhttp.Response) {
	if !k.https {
		k.c.skip(RuleHSTS, "the target is plain HTTP")
		return
	}
	k.c.check(RuleHSTS)
	vs := res.Values("Strict-Transport-Security")
	if len(vs) == 0 {
		k.c.add(RuleHSTS, probe, "no Strict-Transport-Security on an HTTPS response")
	} else if age, ok := hstsMaxAge(vs[0]); !ok || age < 15552000 {
		k.c.add(RuleHSTS, probe, fmt.Sprintf("Strict-Transport-Security: %s has max-age below 15552000 (180 days)", vs[0]))
	}
}

var versionRE = regexp.MustCompile(`/\s*v?\d|\d+\.\d+`)

func hstsMaxAge(v string) (int64, bool) {
	for _, d := range strings.Split(v, ";") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		if strings.EqualFold(strings.TrimSpace(name), "max-age") {
			n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func quoteValues(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// streamHead checks the head of a response that should be a stream: the
// main probe and the reconnect. It reports whether the response is a
// stream at all (200, text/event-stream).
func (k *checker) streamHead(probe string, res *rawhttp.Response) bool {
	k.common(probe, res)
	k.hsts(probe, res)
	k.c.check(RuleStatus, RuleCType, RuleCTypeDup, RuleCharset)
	major, minor := k.cfg.Proto.Version()

	ok := true
	if res.StatusCode != http.StatusOK {
		k.c.add(RuleStatus, probe, fmt.Sprintf("status %d %s: EventSource gives up", res.StatusCode, http.StatusText(res.StatusCode)))
		ok = false
	}
	cts := res.Values("Content-Type")
	if len(cts) > 1 {
		k.c.add(RuleCTypeDup, probe, fmt.Sprintf("%d Content-Type lines: %s", len(cts), quoteValues(cts)))
	}
	mt, parsed := policy.ExtractMIMEType(cts)
	switch {
	case len(cts) == 0:
		k.c.add(RuleCType, probe, "no Content-Type")
		ok = false
	case !parsed || mt.Essence != "text/event-stream":
		k.c.add(RuleCType, probe, fmt.Sprintf("Content-Type %s is %q to a browser, not text/event-stream", quoteValues(cts), mt.Essence))
		ok = false
	}
	if cs := mt.Charset(); parsed && cs != "" && cs != "utf-8" {
		k.c.add(RuleCharset, probe, fmt.Sprintf("charset=%s; the stream is decoded as UTF-8 whatever the label says", cs))
	}
	if !ok {
		if res.StatusCode >= 400 {
			return false
		}
		// A 200 that is not a stream still gets its headers checked below.
	}

	// Framing and connection headers.
	k.c.check(RuleH1Framing)
	if cl := res.Values("Content-Length"); len(cl) > 0 && res.StatusCode == http.StatusOK {
		k.c.add(RuleH1Framing, probe, fmt.Sprintf("Content-Length: %s on a stream: the body ends after that many bytes", cl[0]))
	}
	if k.cfg.Proto == rawhttp.HTTP2 {
		k.c.check(RuleH2ConnHdr)
		k.c.skip(RuleKeepAlive, "HTTP/2 has no Connection header")
		for _, name := range policy.ConnectionSpecific {
			if vs := res.Values(name); len(vs) > 0 {
				k.c.add(RuleH2ConnHdr, probe, fmt.Sprintf("%s: %s on HTTP/2 makes the response malformed", name, strings.Join(vs, ", ")))
			}
		}
	} else {
		k.c.skip(RuleH2ConnHdr, "the scan spoke "+k.cfg.Proto.String()+" (use --http2)")
		if k.cfg.Proto == rawhttp.HTTP10 {
			k.c.skip(RuleKeepAlive, "an HTTP/1.0 stream is close-delimited")
			if res.Framing == rawhttp.FramingChunked || isChunkedField(res.Header) {
				k.c.add(RuleH1Framing, probe, "Transfer-Encoding: chunked in answer to an HTTP/1.0 request")
			}
		} else {
			k.c.check(RuleKeepAlive)
			for _, v := range res.Values("Connection") {
				if hasToken(v, "close") {
					k.c.add(RuleKeepAlive, probe, fmt.Sprintf("Connection: %s on an HTTP/1.1 stream (the body is %s-delimited)", v, res.Framing))
					break
				}
			}
		}
	}

	// Compression and caching.
	k.c.check(RuleNoCompress, RuleCache)
	for _, v := range res.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(v), "identity") {
			k.c.add(RuleNoCompress, probe, fmt.Sprintf("Content-Encoding: %s on the stream", v))
		}
	}
	cc := res.Values("Cache-Control")
	dirs := cacheDirectives(cc)
	if want, has := k.cfg.Profile.Header(policy.KindStream, "Cache-Control"); has {
		if _, need := cacheDirectives([]string{want.Value})["no-transform"]; need {
			if _, got := dirs["no-transform"]; !got {
				k.c.add(RuleNoCompress, probe, fmt.Sprintf("Cache-Control %s lacks no-transform: intermediaries may compress the stream", quoteOrNone(cc)))
			}
		}
	}
	_, noCache := dirs["no-cache"]
	_, noStore := dirs["no-store"]
	if !noCache && !noStore {
		k.c.add(RuleCache, probe, fmt.Sprintf("Cache-Control %s has neither no-cache nor no-store", quoteOrNone(cc)))
	}
	if _, pub := dirs["public"]; pub {
		k.c.add(RuleCache, probe, fmt.Sprintf("Cache-Control %s says public", quoteValues(cc)))
	}
	for _, d := range []string{"max-age", "s-maxage"} {
		if v, has := dirs[d]; has && v != "0" {
			k.c.add(RuleCache, probe, fmt.Sprintf("Cache-Control %s allows caching (%s=%s)", quoteValues(cc), d, v))
		}
	}
	if age := res.Values("Age"); len(age) > 0 {
		k.c.add(RuleCache, probe, fmt.Sprintf("Age: %s: a cache answered the stream", age[0]))
	}
	for _, name := range []string{"X-Cache", "CF-Cache-Status", "X-Cache-Status"} {
		for _, v := range res.Values(name) {
			if strings.Contains(strings.ToUpper(v), "HIT") {
				k.c.add(RuleCache, probe, fmt.Sprintf("%s: %s: a cache answered the stream", name, v))
			}
		}
	}

	k.xcto(probe, res)
	k.csp(probe, res, policy.KindStream)
	k.policyHeaders(probe, res, policy.KindStream, major, minor)
	return ok
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

// xcto checks X-Content-Type-Options: exactly one line, nosniff.
func (k *checker) xcto(probe string, res *rawhttp.Response) {
	k.c.check(RuleXCTO)
	vs := res.Values("X-Content-Type-Options")
	switch {
	case len(vs) == 0:
		k.c.add(RuleXCTO, probe, "no X-Content-Type-Options")
	case len(vs) > 1:
		k.c.add(RuleXCTO, probe, fmt.Sprintf("%d X-Content-Type-Options lines: %s", len(vs), quoteValues(vs)))
	case !strings.EqualFold(strings.TrimSpace(vs[0]), "nosniff"):
		k.c.add(RuleXCTO, probe, fmt.Sprintf("X-Content-Type-Options: %s is not nosniff", vs[0]))
	}
}

// csp checks Content-Security-Policy against the profile's expectation for
// the kind and lints every policy present.
func (k *checker) csp(probe string, res *rawhttp.Response, kind policy.Kind) {
	vs := res.Values("Content-Security-Policy")
	_, wanted := k.cfg.Profile.Header(kind, "Content-Security-Policy")
	if !wanted && len(vs) == 0 {
		k.c.skip(RuleCSP, "the profile sets no CSP on "+kind.String()+" responses")
		return
	}
	k.c.check(RuleCSP)
	if len(vs) == 0 {
		k.c.add(RuleCSP, probe, "no Content-Security-Policy")
		return
	}
	for _, p := range policy.ParseCSPList(vs) {
		for _, issue := range p.Lint() {
			k.c.add(RuleCSP, probe, fmt.Sprintf("Content-Security-Policy %q: %s", p.String(), issue.String()))
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

// policyHeaders reports profile headers of the kind that are missing or
// differ (HDR-POLICY).
func (k *checker) policyHeaders(probe string, res *rawhttp.Response, kind policy.Kind, major, minor int) {
	k.c.check(RulePolicy)
	for _, h := range k.cfg.Profile.Headers(kind, major, minor) {
		name := http.CanonicalHeaderKey(h.Name)
		if ownRule[name] {
			continue
		}
		got := res.Values(name)
		switch name {
		case "Content-Type":
			if mt, ok := policy.ExtractMIMEType(got); !ok || mt.Essence != essenceOf(h.Value) {
				continue // SSE-CTYPE or SSE-ERROR-SHAPE reports it
			}
		case "Cache-Control":
			// SSE-CACHE reports a missing no-cache, SSE-NO-COMPRESS a
			// missing no-transform; what else the profile asks is here.
			have := cacheDirectives(got)
			var missing []string
			for d := range cacheDirectives([]string{h.Value}) {
				if _, ok := have[d]; !ok && d != "no-transform" && !(d == "no-cache" && kind == policy.KindStream) {
					missing = append(missing, d)
				}
			}
			slices.Sort(missing)
			if len(missing) > 0 {
				k.c.add(RulePolicy, probe, fmt.Sprintf("%s Cache-Control %s lacks %s (profile %s: %q)", kind, quoteOrNone(got), strings.Join(missing, ", "), k.cfg.Profile.Name, h.Value))
			}
			continue
		case "Cross-Origin-Resource-Policy":
			// CORS widens it when it allows an origin.
			if len(got) == 1 && len(res.Values("Access-Control-Allow-Origin")) > 0 {
				continue
			}
		}
		if valueMatches(name, h.Value, got) {
			continue
		}
		if len(got) == 0 {
			k.c.add(RulePolicy, probe, fmt.Sprintf("%s response lacks %s: %s (profile %s: %s)", kind, name, h.Value, k.cfg.Profile.Name, h.Reason))
		} else {
			k.c.add(RulePolicy, probe, fmt.Sprintf("%s response has %s: %s; profile %s wants %q", kind, name, strings.Join(got, ", "), k.cfg.Profile.Name, h.Value))
		}
	}
}

func essenceOf(v string) string {
	m, _ := policy.ParseMIMEType(v)
	return m.Essence
}

// refusal checks an error response: SSE-ERROR-SHAPE against what
// policy.WriteProblem writes for that status, and HDR-POLICY for the
// profile's problem headers.
func (k *checker) refusal(probe string, res *rawhttp.Response, body []byte) {
	k.common(probe, res)
	k.c.check(RuleErrorShape)
	major, minor := k.cfg.Proto.Version()
	ref := problemReference(k.cfg.Profile, res.StatusCode, major, minor)
	status := fmt.Sprintf("%d refusal", res.StatusCode)

	cts := res.Values("Content-Type")
	mt, parsed := policy.ExtractMIMEType(cts)
	isJSON := parsed && (mt.Essence == "application/json" || strings.HasSuffix(mt.Essence, "+json"))
	switch {
	case len(cts) == 0:
		k.c.add(RuleErrorShape, probe, status+" has no Content-Type")
	case len(cts) > 1:
		k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s has %d Content-Type lines: %s", status, len(cts), quoteValues(cts)))
	case !isJSON:
		k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s is %s, not JSON", status, cts[0]))
	}
	if isJSON || len(cts) == 0 {
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil {
			k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s body is not a JSON object: %q", status, clip(string(body), 80)))
		} else if s, ok := obj["status"].(float64); ok && int(s) != res.StatusCode {
			k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s body says status %v", status, s))
		}
	}
	xs := res.Values("X-Content-Type-Options")
	if len(xs) != 1 || !strings.EqualFold(xs[0], "nosniff") {
		k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s has X-Content-Type-Options %s, not nosniff once", status, quoteOrNone(xs)))
	}
	cc := res.Values("Cache-Control")
	if _, ok := cacheDirectives(cc)["no-store"]; !ok {
		k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s has Cache-Control %s without no-store", status, quoteOrNone(cc)))
	}
	if ref.Get("Retry-After") != "" && len(res.Values("Retry-After")) == 0 {
		k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s has no Retry-After", status))
	}
	for _, name := range []string{"X-Accel-Buffering", "Content-Encoding"} {
		if vs := res.Values(name); len(vs) > 0 && ref.Get(name) == "" {
			k.c.add(RuleErrorShape, probe, fmt.Sprintf("%s carries the stream header %s: %s", status, name, vs[0]))
		}
	}
	k.policyHeaders(probe, res, policy.KindProblem, major, minor)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// cors checks the CORS answer to a request that sent origin ("" for none).
func (k *checker) cors(probe, origin string, res *rawhttp.Response) {
	k.c.check(RuleCORS)
	acao := res.Values("Access-Control-Allow-Origin")
	if len(acao) == 0 {
		return
	}
	a := strings.TrimSpace(acao[0])
	credentials := false
	for _, v := range res.Values("Access-Control-Allow-Credentials") {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			credentials = true
		}
	}
	switch {
	case origin == "null" && a == "null":
		k.c.add(RuleCORS, probe, "Origin: null is allowed (Access-Control-Allow-Origin: null): sandboxed frames and file: pages of any site can read the stream")
	case origin != "" && a == origin:
		k.c.add(RuleCORS, probe, fmt.Sprintf("the foreign Origin %s is reflected in Access-Control-Allow-Origin%s", origin, map[bool]string{true: " with credentials", false: ""}[credentials]))
	case a == "*" && credentials:
		k.c.add(RuleCORS, probe, "Access-Control-Allow-Origin: * with Access-Control-Allow-Credentials: true")
	case a == "null":
		k.c.add(RuleCORS, probe, "Access-Control-Allow-Origin: null")
	}
	if a != "*" && a != "" {
		vary := false
		for _, v := range res.Values("Vary") {
			if hasToken(v, "Origin") || strings.TrimSpace(v) == "*" {
				vary = true
			}
		}
		if !vary {
			k.c.add(RuleCORS, probe, fmt.Sprintf("Access-Control-Allow-Origin: %s without Vary: Origin: a cache may serve it to other origins", a))
		}
	}
}

// order checks the relative order of the pinned header names.
func (k *checker) order(probe string, res *rawhttp.Response, want []string) {
	k.c.check(RuleOrder)
	pos := map[string]int{}
	for i, f := range res.Header {
		c := http.CanonicalHeaderKey(f.Name)
		if _, seen := pos[c]; !seen {
			pos[c] = i
		}
	}
	var present []string
	for _, n := range want {
		c := http.CanonicalHeaderKey(strings.TrimSpace(n))
		if _, ok := pos[c]; !ok {
			k.c.add(RuleOrder, probe, fmt.Sprintf("pinned header %s is missing", c))
			continue
		}
		present = append(present, c)
	}
	actual := slices.Clone(present)
	slices.SortStableFunc(actual, func(a, b string) int { return pos[a] - pos[b] })
	if !slices.Equal(present, actual) {
		k.c.add(RuleOrder, probe, fmt.Sprintf("headers came as %s; pinned order is %s", strings.Join(actual, ", "), strings.Join(present, ", ")))
	}
}
