package proxy

import (
	"github.com/sseguard/sseguard/policy"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The proxy routes on the decoded request path and forwards that same
// path, so that the route whose checks ran is the resource the upstream
// serves. Two things can break that promise, and both are refused at the
// edge:
//
//   - a path the upstream may resolve to another path (policy.UncleanPath,
//     which sseguard serve applies too);
//   - a path that reaches a configured prefix only when letter case, ";"
//     parameters or trailing dots and spaces are ignored: upstreams that
//     route case-insensitively (Express, ASP.NET), strip path parameters
//     (Tomcat, Jetty) or trailing dots (IIS) would serve that route's
//     resource without its checks.

// loosePath returns p as the most lenient upstream might read it: path
// parameters (";...") cut from each segment, trailing dots and spaces
// trimmed, and letters case-folded. It is used only to refuse.
func loosePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		segs[i] = strings.TrimRight(s, ". ")
	}
	return fold(strings.Join(segs, "/"))
}

// fold maps s to one case the way the loosest comparisons do: through
// upper case first, so that, for example, "ſ" (long s) meets "s" as
// Java's equalsIgnoreCase has it.
func fold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// prefixMatches reports whether path is under the route prefix pre.
func prefixMatches(pre, path string) bool {
	return pre == "/" || path == pre || strings.HasPrefix(path, strings.TrimSuffix(pre, "/")+"/")
}

// route returns the route of r's path, or a problem: 400 for an unclean
// path or one that reaches a route only when read loosely, 404 when no
// route matches.
func (p *Proxy) route(r *http.Request) (*route, string) {
	if why := policy.UncleanPath(r.URL); why != "" {
		return nil, why
	}
	path := r.URL.Path
	var exact *route
	for _, rt := range p.routes { // longest prefix first
		if prefixMatches(rt.Prefix, path) {
			exact = rt
			break
		}
	}
	loose := loosePath(path)
	for _, rt := range p.routes {
		if prefixMatches(rt.fold, loose) && !prefixMatches(rt.Prefix, path) {
			// The upstream may well serve rt here, and rt's checks did
			// not run: the client must use the route's exact path.
			return nil, "the path differs from a route's prefix only in letter case, path parameters or trailing dots; use the exact path"
		}
	}
	return exact, ""
}

// clip bounds a client-controlled string written to the log.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
