package policy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// HSTS constants. Strict-Transport-Security (RFC 6797) is the one header
// the server that ends TLS owns: a browser honours it only over HTTPS, and
// an upstream behind a proxy that ends TLS has no say in it.
const (
	HSTSHeader = "Strict-Transport-Security"
	// DefaultHSTS is what serve and proxy send over HTTPS unless tls.hsts
	// says otherwise: one year, this host only (includeSubDomains and
	// preload commit other hosts and the browsers' list, which only the
	// domain's owner may decide).
	DefaultHSTS = "max-age=31536000"
	// MinHSTSMaxAge is 180 days, the shortest max-age the scanner accepts
	// (HDR-HSTS).
	MinHSTSMaxAge = 15552000
)

// ParseHSTS checks a Strict-Transport-Security value as RFC 6797 section
// 6.1 defines it and returns its max-age: directives separated by ";",
// each a token with an optional value (a token or a quoted string), none
// twice, max-age required and a number of seconds. Unknown directives are
// allowed, as browsers ignore them.
func ParseHSTS(v string) (int64, error) {
	seen := map[string]bool{}
	maxAge := int64(-1)
	for d := range strings.SplitSeq(v, ";") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		name, val, hasVal := strings.Cut(d, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		if !IsToken(name) {
			return 0, fmt.Errorf("%q is not a directive name", name)
		}
		if seen[name] {
			return 0, fmt.Errorf("directive %s appears twice", name)
		}
		seen[name] = true
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		} else if hasVal && !IsToken(val) {
			return 0, fmt.Errorf("directive %s has the value %q, neither a token nor a quoted string", name, val)
		}
		switch name {
		case "max-age":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 || val[0] == '+' {
				return 0, fmt.Errorf("max-age %q is not a number of seconds", val)
			}
			maxAge = n
		case "includesubdomains", "preload":
			if hasVal {
				return 0, fmt.Errorf("directive %s takes no value", name)
			}
		}
	}
	if maxAge < 0 {
		return 0, fmt.Errorf("no max-age directive")
	}
	return maxAge, nil
}

// SetHSTS makes every kind of response p describes carry
// Strict-Transport-Security with value, replacing any earlier value; an
// empty value removes it. Serve and proxy call it, through the TLS section
// of their configuration, only when they end TLS themselves.
func (p *Profile) SetHSTS(value string) {
	for _, hs := range []*[]Header{&p.Stream, &p.JSON, &p.Problem, &p.Page} {
		kept := (*hs)[:0:0]
		for _, h := range *hs {
			if !h.SetByEdge() {
				kept = append(kept, h)
			}
		}
		if value != "" {
			kept = append(kept, Header{Name: HSTSHeader, Value: value,
				Reason: "tells browsers to reach this host over HTTPS only, so no stream, token or cookie goes over plain HTTP"})
		}
		*hs = kept
	}
}

// SetByEdge reports whether h is set by the server that ends TLS rather
// than by the application behind it: a proxy sets it itself and does not
// count an upstream that lacks it as drift.
func (h Header) SetByEdge() bool {
	return http.CanonicalHeaderKey(h.Name) == HSTSHeader
}

// ApplyEdge sets on h the headers that p's server owns as the end of TLS
// (HSTS), for a response of no kind p describes (an image a proxy
// forwards, a 304): every HTTPS response carries them.
func (p *Profile) ApplyEdge(h http.Header) {
	for _, hd := range p.Page {
		if hd.SetByEdge() {
			h[http.CanonicalHeaderKey(hd.Name)] = []string{hd.Value}
		}
	}
}
