package policy

import (
	"net/url"
	"strings"
)

// UncleanPath reports why u's path may not be served, or "" when it is
// clean. A path is unclean when a server or proxy along the way may
// resolve it to another path than the one a route was chosen for: dot
// segments (also "..;", which Tomcat reads as ".."), empty segments (//),
// backslashes, control characters, and percent-encoded dots, slashes,
// backslashes or percent signs (a hop that decodes once more sees another
// path). Both sseguard serve and sseguard proxy refuse such paths with 400
// rather than normalise them, so that the path whose checks ran is the
// path every hop serves.
func UncleanPath(u *url.URL) string {
	p := u.Path
	if !strings.HasPrefix(p, "/") {
		return "the path must start with /"
	}
	raw := u.RawPath
	if raw == "" {
		raw = p
	}
	lower := strings.ToLower(raw)
	for _, enc := range []string{"%2e", "%2f", "%5c", "%25"} {
		if strings.Contains(lower, enc) {
			return "the path has a percent-encoded dot, slash, backslash or percent sign"
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f || c == '\\':
			return "the path has a control character or a backslash"
		case c == '%': // only %25 decodes to it
			return "the path has a percent-encoded dot, slash, backslash or percent sign"
		}
	}
	if strings.Contains(p, "//") {
		return "the path has an empty segment (//)"
	}
	for _, seg := range strings.Split(p[1:], "/") {
		seg, _, _ = strings.Cut(seg, ";") // "..;" is ".." to Tomcat
		if seg == "." || seg == ".." {
			return "the path has a dot segment (. or ..)"
		}
	}
	return ""
}
