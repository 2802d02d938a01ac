package policy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Shortfall is one way a header's lines fall short of the policy's value
// for it: a part of the value they lack (Got empty), a part they change
// (both set), or a part of their own that loosens it (Want empty).
type Shortfall struct {
	Want string // the part of the policy's value, as the policy writes it
	Got  string // what the lines have instead, as they write it
}

func (s Shortfall) String() string {
	switch {
	case s.Got == "":
		return "lacks " + s.Want
	case s.Want == "":
		return "adds " + s.Got + ", which loosens it"
	}
	return "has " + s.Got + " where the policy wants " + s.Want
}

// Satisfies reports whether a response's lines of header name (got, one
// element per line, as sent) meet the policy's value for it (want), by
// meaning rather than by spelling. The proxy's drift log and the
// scanner's rules both ask it, so that they never disagree.
//
//   - Cache-Control: a set of directives, in any order and case, over all
//     lines. Every directive of want must be there (max-age and s-maxage
//     with a value no larger; no-cache and private unqualified, or naming
//     at least want's fields). Directives want does not name are allowed
//     only when they can only make the response less cacheable or less
//     transformable: no-cache, no-store, no-transform, must-revalidate,
//     proxy-revalidate, private, max-age=0, s-maxage=0. Any other (public,
//     max-age=60, stale-while-revalidate, immutable, must-understand,
//     which lets caches ignore no-store, or an unknown extension) loosens
//     the value, and so does a directive repeated with another value.
//   - Content-Type: the type a browser reads from all lines (see
//     ExtractMIMEType) has want's essence and, when want names one, its
//     charset (in any case) and other parameters. A charset want does not
//     name is allowed.
//   - Content-Security-Policy: one of the policies the lines carry (a
//     browser enforces all) is at least as strict as want: every fetch
//     directive, following CSP3's fallbacks to default-src, allows no
//     source want does not; base-uri, form-action, frame-ancestors and
//     sandbox allow nothing more than want's; every other directive of
//     want (upgrade-insecure-requests, report-to, ...) is there with the
//     same values. Sources compare in any order and case (nonces and
//     hashes exactly); an 'unsafe-inline' that want's nonces or hashes
//     disable must stay disabled, and without want's 'strict-dynamic' no
//     host, scheme or 'self' source may be left. Directives want does not
//     restrict are allowed.
//   - Vary and Connection: token lists over all lines, in any case; every
//     token of want must be there, more are allowed (Vary: * satisfies
//     any Vary). Connection: close is not allowed unless wanted.
//   - X-Content-Type-Options, X-Accel-Buffering: one line, equal to want
//     ignoring case and surrounding white space.
//   - X-Frame-Options: likewise, and DENY satisfies SAMEORIGIN.
//   - Anything else (Referrer-Policy, Cross-Origin-Resource-Policy, whose
//     values browsers match case-sensitively): exactly one line, equal to
//     want but for surrounding white space.
//
// No lines never satisfy a value.
func Satisfies(name string, got []string, want string) bool {
	return len(Shortfalls(name, got, want)) == 0
}

// Shortfalls returns why got does not satisfy want (see Satisfies), one
// Shortfall a part, or nothing when it does.
func Shortfalls(name string, got []string, want string) []Shortfall {
	want = strings.TrimSpace(want)
	if len(got) == 0 {
		return []Shortfall{{Want: want}}
	}
	switch http.CanonicalHeaderKey(name) {
	case "Cache-Control":
		return cacheShortfalls(got, want)
	case "Content-Type":
		return typeShortfalls(got, want)
	case "Content-Security-Policy":
		return cspShortfalls(got, want)
	case "Vary":
		return tokenShortfalls(got, want, "")
	case "Connection":
		return tokenShortfalls(got, want, "close")
	case "X-Content-Type-Options", "X-Accel-Buffering":
		return exactShortfalls(got, want, strings.EqualFold)
	case "X-Frame-Options":
		return exactShortfalls(got, want, func(g, w string) bool {
			return strings.EqualFold(g, w) || strings.EqualFold(w, "SAMEORIGIN") && strings.EqualFold(g, "DENY")
		})
	}
	return exactShortfalls(got, want, func(g, w string) bool { return g == w })
}

// Equivalent reports whether two lines of header name mean the same:
// each satisfies the other. BASELINE-DRIFT compares pinned lines with it,
// so that a reordered Cache-Control is no drift and a lost directive is.
func Equivalent(name, a, b string) bool {
	return Satisfies(name, []string{a}, b) && Satisfies(name, []string{b}, a)
}

// exactShortfalls compares a single line with equal.
func exactShortfalls(got []string, want string, equal func(got, want string) bool) []Shortfall {
	if len(got) == 1 && equal(strings.TrimSpace(got[0]), want) {
		return nil
	}
	return []Shortfall{{Want: want, Got: strings.Join(got, ", ")}}
}

// tokenShortfalls compares comma-separated token lists: got must hold
// every token of want and not forbidden (unless want holds it).
func tokenShortfalls(got []string, want, forbidden string) []Shortfall {
	have := map[string]bool{}
	for _, t := range splitList(got) {
		have[strings.ToLower(t)] = true
	}
	var out []Shortfall
	wanted := map[string]bool{}
	for _, t := range splitList([]string{want}) {
		wanted[strings.ToLower(t)] = true
		if !have[strings.ToLower(t)] && !have["*"] {
			out = append(out, Shortfall{Want: t})
		}
	}
	if forbidden != "" && have[forbidden] && !wanted[forbidden] {
		out = append(out, Shortfall{Got: forbidden})
	}
	return out
}

// splitList splits list-valued lines at commas, trimming and dropping
// empty elements.
func splitList(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, e := range strings.Split(l, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// typeShortfalls compares media types as a browser reads them.
func typeShortfalls(got []string, want string) []Shortfall {
	w, ok := ParseMIMEType(want)
	if !ok {
		return exactShortfalls(got, want, strings.EqualFold)
	}
	g, ok := ExtractMIMEType(got)
	switch {
	case !ok:
		return []Shortfall{{Want: want, Got: strings.Join(got, ", ")}}
	case g.Essence != w.Essence:
		return []Shortfall{{Want: w.Essence, Got: g.Essence}}
	}
	var out []Shortfall
	names := make([]string, 0, len(w.Params))
	for n := range w.Params {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		wv, gv := w.Params[n], g.Params[n]
		if strings.EqualFold(wv, gv) {
			continue
		}
		s := Shortfall{Want: n + "=" + wv}
		if _, has := g.Params[n]; has {
			s.Got = n + "=" + gv
		}
		out = append(out, s)
	}
	return out
}

// CacheDirective is one Cache-Control directive.
type CacheDirective struct {
	Name     string // lower case
	Value    string // unquoted; "" when it has none
	HasValue bool
}

func (d CacheDirective) String() string {
	if !d.HasValue {
		return d.Name
	}
	if strings.ContainsAny(d.Value, ", ") || d.Value == "" {
		return d.Name + "=" + strconv.Quote(d.Value)
	}
	return d.Name + "=" + d.Value
}

// ParseCacheControl parses Cache-Control lines into their directives, in
// order, names in lower case. Quoted values may hold commas (no-cache="a,
// b"). A repeated directive is kept each time.
func ParseCacheControl(lines []string) []CacheDirective {
	var out []CacheDirective
	for _, line := range lines {
		for _, part := range splitQuoted(line, ',') {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, val, has := strings.Cut(part, "=")
			val = strings.TrimSpace(val)
			if strings.HasPrefix(val, `"`) {
				val = unquote(strings.TrimSuffix(val[1:], `"`))
			}
			out = append(out, CacheDirective{Name: strings.ToLower(strings.TrimSpace(name)), Value: val, HasValue: has})
		}
	}
	return out
}

// LookupCacheDirective returns the first directive called name (lower
// case) in Cache-Control lines, and whether there is one.
func LookupCacheDirective(lines []string, name string) (CacheDirective, bool) {
	for _, d := range ParseCacheControl(lines) {
		if d.Name == name {
			return d, true
		}
	}
	return CacheDirective{}, false
}

// stricterCache are the directives that, added to a policy's
// Cache-Control, can only make a response less cacheable or less
// transformable.
var stricterCache = map[string]bool{
	"no-cache": true, "no-store": true, "no-transform": true, "must-revalidate": true,
	"proxy-revalidate": true, "private": true,
}

func cacheShortfalls(got []string, want string) []Shortfall {
	have := map[string]CacheDirective{}
	var out []Shortfall
	for _, d := range ParseCacheControl(got) {
		prev, seen := have[d.Name]
		switch {
		case !seen:
			have[d.Name] = d
		case prev != d:
			out = append(out, Shortfall{Got: prev.String() + ", " + d.String() + " (conflicting)"})
		}
	}
	wanted := map[string]bool{}
	for _, w := range ParseCacheControl([]string{want}) {
		wanted[w.Name] = true
		g, ok := have[w.Name]
		switch {
		case !ok:
			out = append(out, Shortfall{Want: w.String()})
		case !cacheMeets(g, w):
			out = append(out, Shortfall{Want: w.String(), Got: g.String()})
		}
	}
	extra := map[string]bool{}
	for _, d := range ParseCacheControl(got) {
		if wanted[d.Name] || extra[d.Name] {
			continue // compared above, or a repeat
		}
		extra[d.Name] = true
		zero := (d.Name == "max-age" || d.Name == "s-maxage") && d.Value == "0"
		if !stricterCache[d.Name] && !zero {
			out = append(out, Shortfall{Got: d.String()})
		}
	}
	return out
}

// cacheMeets reports whether directive g is at least as strict as w (of
// the same name).
func cacheMeets(g, w CacheDirective) bool {
	switch w.Name {
	case "max-age", "s-maxage":
		gv, err1 := strconv.ParseUint(g.Value, 10, 63)
		wv, err2 := strconv.ParseUint(w.Value, 10, 63)
		return err1 == nil && err2 == nil && gv <= wv
	case "no-cache", "private":
		if !g.HasValue || g.Value == "" {
			return true // unqualified: applies to the whole response
		}
		if !w.HasValue || w.Value == "" {
			return false
		}
		fields := map[string]bool{}
		for _, f := range strings.Split(g.Value, ",") {
			fields[strings.ToLower(strings.TrimSpace(f))] = true
		}
		for _, f := range strings.Split(w.Value, ",") {
			if !fields[strings.ToLower(strings.TrimSpace(f))] {
				return false
			}
		}
		return true
	}
	return g.HasValue == w.HasValue && strings.EqualFold(g.Value, w.Value)
}

// cspFetch are CSP3's fetch directives with the directive each falls back
// to when absent (section 6.8.3, "get the effective directive"); the chain
// ends at default-src.
var cspFetch = map[string]string{
	"default-src": "", "child-src": "default-src", "connect-src": "default-src", "font-src": "default-src",
	"frame-src": "child-src", "img-src": "default-src", "manifest-src": "default-src", "media-src": "default-src",
	"object-src": "default-src", "script-src": "default-src", "script-src-elem": "script-src",
	"script-src-attr": "script-src", "style-src": "default-src", "style-src-elem": "style-src",
	"style-src-attr": "style-src", "worker-src": "child-src",
}

// cspFetchOrder lists cspFetch in a stable order for reports.
var cspFetchOrder = []string{
	"default-src", "script-src", "script-src-elem", "script-src-attr", "style-src", "style-src-elem",
	"style-src-attr", "connect-src", "img-src", "font-src", "media-src", "object-src", "child-src",
	"frame-src", "worker-src", "manifest-src",
}

// cspAllowlists are the other directives whose values allow things, so
// that fewer values are stricter. sandbox lists allow- tokens.
var cspAllowlists = map[string]bool{"base-uri": true, "form-action": true, "frame-ancestors": true, "sandbox": true}

// effective returns the sources governing fetch directive name in c, with
// the directive they came from, following the fallbacks; ok is false when
// nothing restricts it. worker-src falls back to child-src, then
// script-src, then default-src.
func effective(c CSP, name string) (srcs []string, from string, ok bool) {
	for n := name; n != ""; {
		if s, has := c.Get(n); has {
			return s, n, true
		}
		next := cspFetch[n]
		if n == "child-src" && name == "worker-src" {
			next = "script-src"
		}
		n = next
	}
	return nil, "", false
}

func cspShortfalls(got []string, want string) []Shortfall {
	w := ParseCSP(want)
	var best []Shortfall
	for i, p := range ParseCSPList(got) {
		s := cspMeets(p, w)
		if len(s) == 0 {
			return nil
		}
		if i == 0 || len(s) < len(best) {
			best = s
		}
	}
	if best == nil {
		return []Shortfall{{Want: want, Got: strings.Join(got, ", ")}}
	}
	return best
}

// cspMeets returns how policy p falls short of w.
func cspMeets(p, w CSP) []Shortfall {
	var out []Shortfall
	missingDefault := false
	for _, name := range cspFetchOrder {
		ws, _, wok := effective(w, name)
		if !wok {
			continue
		}
		ps, from, pok := effective(p, name)
		_, wNames := w.Get(name)
		_, pNames := p.Get(name)
		switch {
		case !pok && name == "default-src":
			missingDefault = true
			out = append(out, Shortfall{Want: directiveText(name, ws)})
		case !pok:
			if !missingDefault || wNames {
				out = append(out, Shortfall{Want: directiveText(name, ws)})
			}
		case !sourcesWithin(ps, ws):
			if from == name || wNames || pNames {
				out = append(out, Shortfall{Want: directiveText(name, ws), Got: directiveText(from, ps)})
			}
		}
	}
	for _, d := range w.Directives {
		if _, fetch := cspFetch[d.Name]; fetch {
			continue
		}
		ps, ok := p.Get(d.Name)
		switch {
		case !ok:
			out = append(out, Shortfall{Want: directiveText(d.Name, d.Sources)})
		case cspAllowlists[d.Name] && !sourcesWithin(ps, d.Sources),
			!cspAllowlists[d.Name] && !(sourcesWithin(ps, d.Sources) && sourcesWithin(d.Sources, ps)):
			out = append(out, Shortfall{Want: directiveText(d.Name, d.Sources), Got: directiveText(d.Name, ps)})
		}
	}
	return out
}

func directiveText(name string, srcs []string) string {
	if len(srcs) == 0 {
		return name
	}
	return name + " " + strings.Join(srcs, " ")
}

// sourceKey is how a source expression compares: nonces and hashes
// exactly, everything else without regard to case.
func sourceKey(s string) string {
	l := strings.ToLower(s)
	for _, prefix := range []string{"'nonce-", "'sha256-", "'sha384-", "'sha512-"} {
		if strings.HasPrefix(l, prefix) {
			return prefix + s[len(prefix):]
		}
	}
	return l
}

// sourcesWithin reports whether source list p allows nothing that w does
// not.
func sourcesWithin(p, w []string) bool {
	wset := map[string]bool{}
	for _, s := range w {
		wset[sourceKey(s)] = true
	}
	var pInline, pKeyed, pStrict, pHosts bool
	for _, s := range p {
		k := sourceKey(s)
		switch {
		case k == "'none'":
			continue // alone it allows nothing; beside others it is ignored
		case !wset[k]:
			return false
		case k == "'unsafe-inline'":
			pInline = true
		case k == "'strict-dynamic'":
			pStrict = true
		case strings.HasPrefix(k, "'nonce-") || strings.HasPrefix(k, "'sha"):
			pKeyed = true
		case k == "'self'" || !strings.HasPrefix(k, "'"):
			pHosts = true
		}
	}
	wKeyed := false
	for k := range wset {
		wKeyed = wKeyed || strings.HasPrefix(k, "'nonce-") || strings.HasPrefix(k, "'sha")
	}
	if pInline && !pKeyed && wKeyed {
		return false // want's nonces or hashes disabled 'unsafe-inline'
	}
	if wset["'strict-dynamic'"] && !pStrict && pHosts {
		return false // want's 'strict-dynamic' disabled host and 'self' sources
	}
	return true
}
