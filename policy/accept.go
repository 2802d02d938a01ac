package policy

import (
	"net/http"
	"strings"
)

// MediaRange is one element of an Accept header (RFC 9110 section 12.5.1).
type MediaRange struct {
	Type    string // lower case; "*" for a wildcard
	Subtype string // lower case; "*" for a wildcard
	// Params holds the media type parameters before the q weight, with
	// lower-case names. Accept extensions after q are dropped.
	Params map[string]string
	// Q is the weight, 0 to 1000 in thousandths: q=0.5 is 500.
	Q int
}

// ParseAccept parses the Accept header field values. Malformed elements are
// skipped rather than failing the whole header, as RFC 9110 lets a recipient
// do; a header with no valid element yields none.
func ParseAccept(values []string) []MediaRange {
	var out []MediaRange
	for _, v := range values {
		for _, elem := range splitQuoted(v, ',') {
			if mr, ok := parseMediaRange(elem); ok {
				out = append(out, mr)
			}
		}
	}
	return out
}

func parseMediaRange(s string) (MediaRange, bool) {
	parts := splitQuoted(s, ';')
	typ := strings.ToLower(strings.TrimSpace(parts[0]))
	slash := strings.IndexByte(typ, '/')
	if slash <= 0 || slash == len(typ)-1 {
		return MediaRange{}, false
	}
	mr := MediaRange{Type: typ[:slash], Subtype: typ[slash+1:], Q: 1000}
	if !IsToken(mr.Type) || !IsToken(mr.Subtype) || (mr.Type == "*" && mr.Subtype != "*") {
		return MediaRange{}, false
	}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, val, ok := strings.Cut(p, "=")
		if !ok {
			return MediaRange{}, false
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if !IsToken(name) {
			return MediaRange{}, false
		}
		if name == "q" {
			q, ok := parseQ(val)
			if !ok {
				return MediaRange{}, false
			}
			mr.Q = q
			break // what follows q are accept extensions, not media type parameters
		}
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = unquote(val[1 : len(val)-1])
		} else if !IsToken(val) {
			return MediaRange{}, false
		}
		if mr.Params == nil {
			mr.Params = make(map[string]string)
		}
		mr.Params[name] = val
	}
	return mr, true
}

// parseQ parses a qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")].
func parseQ(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	q := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return q, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range s[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// Quality returns the weight that ranges give to the media type typ/sub with
// the given parameters, in thousandths, and whether any range matched. The
// most specific matching range decides (RFC 9110 section 12.5.1).
func Quality(ranges []MediaRange, typ, sub string, params map[string]string) (q int, matched bool) {
	best := -1
	for _, mr := range ranges {
		spec := -1
		switch {
		case mr.Type == "*" && mr.Subtype == "*":
			spec = 0
		case mr.Type == typ && mr.Subtype == "*":
			spec = 1
		case mr.Type == typ && mr.Subtype == sub:
			spec = 2
			if len(mr.Params) > 0 {
				if !paramsSubset(mr.Params, params) {
					continue
				}
				spec = 3
			}
		}
		if spec > best {
			best, q = spec, mr.Q
		}
	}
	return q, best >= 0
}

func paramsSubset(want, have map[string]string) bool {
	for k, v := range want {
		hv, ok := have[k]
		if !ok {
			return false
		}
		if k == "charset" {
			if !strings.EqualFold(hv, v) {
				return false
			}
		} else if hv != v {
			return false
		}
	}
	return true
}

var utf8Param = map[string]string{"charset": "utf-8"}

// AcceptsEventStream reports whether an Accept header allows a
// text/event-stream response under mode.
//
// In AcceptStrict mode text/event-stream must be named by its own range with
// q > 0; wildcards do not count, so legacy XHR streaming (Accept: */*) and
// JSON clients are refused. In AcceptLenient mode the usual rules apply and
// a missing Accept header accepts anything.
func AcceptsEventStream(values []string, mode AcceptMode) bool {
	ranges := ParseAccept(values)
	if mode == AcceptLenient && len(values) == 0 {
		return true
	}
	q, matched := Quality(ranges, "text", "event-stream", utf8Param)
	if !matched || q == 0 {
		return false
	}
	if mode == AcceptLenient {
		return true
	}
	for _, mr := range ranges {
		if mr.Type == "text" && mr.Subtype == "event-stream" && mr.Q > 0 && paramsSubset(mr.Params, utf8Param) {
			return true
		}
	}
	return false
}

// AcceptsJSON reports whether an Accept header allows application/json. A
// missing header accepts anything (RFC 9110 section 12.5.1).
func AcceptsJSON(values []string) bool {
	if len(values) == 0 {
		return true
	}
	q, matched := Quality(ParseAccept(values), "application", "json", nil)
	return matched && q > 0
}

// CheckStreamAccept returns nil when r may receive a stream under p, and
// otherwise the 406 problem to answer with, pointing to p.Fallback.
func (p *Profile) CheckStreamAccept(r *http.Request) *Problem {
	if AcceptsEventStream(r.Header.Values("Accept"), p.Accept) {
		return nil
	}
	prob := NewProblem(http.StatusNotAcceptable, CodeAcceptNotAcceptable,
		"this endpoint serves text/event-stream only: send Accept: text/event-stream, or use the JSON fallback")
	prob.Fallback = p.Fallback
	return prob
}

// splitQuoted splits s on sep, ignoring separators inside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == sep && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquote(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// IsToken reports whether s is a non-empty RFC 9110 token, as header field
// names and media type parts must be.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
