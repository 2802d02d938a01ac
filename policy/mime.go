package policy

import "strings"

// MIMEType is a parsed MIME type: its essence ("type/subtype", lower case)
// and its parameters (names lower case, values as sent, unquoted).
type MIMEType struct {
	Essence string
	Params  map[string]string
}

// Charset returns the charset parameter, lower case, or "" when there is
// none.
func (m MIMEType) Charset() string { return strings.ToLower(m.Params["charset"]) }

// ParseMIMEType parses one MIME type as the WHATWG MIME Sniffing standard
// does ("parse a MIME type"): a type and subtype that are HTTP tokens, then
// parameters, where a parameter that does not parse is skipped rather than
// failing the whole value, and the first of a repeated name wins.
func ParseMIMEType(s string) (MIMEType, bool) {
	s = strings.Trim(s, " \t\r\n")
	typ, rest, ok := strings.Cut(s, "/")
	if !ok || !IsToken(typ) {
		return MIMEType{}, false
	}
	sub, params, _ := strings.Cut(rest, ";")
	sub = strings.TrimRight(sub, " \t\r\n")
	if !IsToken(sub) {
		return MIMEType{}, false
	}
	m := MIMEType{Essence: strings.ToLower(typ + "/" + sub)}
	for _, p := range splitQuoted(params, ';') {
		p = strings.TrimLeft(p, " \t\r\n")
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		if !IsToken(name) {
			continue
		}
		if strings.HasPrefix(value, `"`) {
			value = strings.TrimSuffix(value[1:], `"`)
			value = unquote(value)
		} else {
			value = strings.TrimRight(value, " \t\r\n")
			if value == "" {
				continue
			}
		}
		if m.Params == nil {
			m.Params = make(map[string]string)
		}
		if _, seen := m.Params[name]; !seen {
			m.Params[name] = value
		}
	}
	return m, true
}

// ExtractMIMEType reads Content-Type header lines as the WHATWG Fetch
// standard's "extract a MIME type" does, which is how browsers decide what
// a response is: all lines form one comma-separated list, and the last
// element that parses as a MIME type other than */* wins. A charset given
// by an earlier element of the same essence is kept when the winner has
// none. ok is false when no element parses.
//
// So "text/event-stream" followed by a second line "text/plain" is
// text/plain to a browser, and a stream answered that way fails.
func ExtractMIMEType(values []string) (m MIMEType, ok bool) {
	var charset string
	for _, line := range values {
		for _, v := range splitQuoted(line, ',') {
			t, parsed := ParseMIMEType(v)
			if !parsed || t.Essence == "*/*" {
				continue
			}
			if !ok || t.Essence != m.Essence {
				charset = ""
			}
			if c, has := t.Params["charset"]; has {
				charset = c
			}
			m, ok = t, true
		}
	}
	if ok && charset != "" {
		if _, has := m.Params["charset"]; !has {
			params := make(map[string]string, len(m.Params)+1)
			for k, v := range m.Params {
				params[k] = v
			}
			params["charset"] = charset
			m.Params = params
		}
	}
	return m, ok
}
