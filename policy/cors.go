package policy

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CORS request headers that preflight answers allow, and response headers
// that cross-origin scripts may read.
const (
	CORSAllowHeaders  = "Authorization, Last-Event-ID, Idempotency-Key, Content-Type"
	CORSExposeHeaders = "Retry-After"
)

// OriginDecision is the outcome of a CORS check.
type OriginDecision int

const (
	// NoOrigin means the request sent no Origin: same-origin GETs and
	// non-browser clients. Nothing to decide.
	NoOrigin OriginDecision = iota
	// SameOrigin means the Origin is the request's own origin.
	SameOrigin
	// CrossOriginAllowed means the Origin is allowed: answer with
	// AllowOrigin.
	CrossOriginAllowed
	// CrossOriginRefused means the Origin is not allowed, or is "null":
	// answer 403 origin_forbidden.
	CrossOriginRefused
)

// DecideOrigin decides whether r's Origin may read the response. A
// cross-origin request is allowed only when its origin is in global (the
// server's allowlist) and in principal (what the caller's credentials
// grant). The "null" origin — sandboxed frames, file: pages, some
// redirects — is never allowed, and neither is "*" in either list.
func DecideOrigin(r *http.Request, global, principal []string) OriginDecision {
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		return NoOrigin
	case origin == "null" || origin == "*":
		return CrossOriginRefused
	case IsSameOrigin(r, origin):
		return SameOrigin
	case slices.Contains(global, origin) && slices.Contains(principal, origin):
		return CrossOriginAllowed
	}
	return CrossOriginRefused
}

// CheckOrigin applies DecideOrigin to r and acts on it: an allowed cross
// origin is allowed on w (AllowOrigin), and a refused one gets the 403
// origin_forbidden problem, returned for the caller to log and write. A
// nil result means the handler may go on. principal is what the caller's
// credentials grant: a token's origins, or the anonymous origins for an
// anonymous caller.
func CheckOrigin(w http.ResponseWriter, r *http.Request, global, principal []string) *Problem {
	switch DecideOrigin(r, global, principal) {
	case CrossOriginAllowed:
		AllowOrigin(w, r.Header.Get("Origin"))
	case CrossOriginRefused:
		return NewProblem(http.StatusForbidden, CodeOriginForbidden,
			"this origin may not use this endpoint with these credentials")
	}
	return nil
}

// IsSameOrigin reports whether origin is the origin r was sent to:
// scheme, host and port equal (the scheme from the connection, or the one
// a trusted proxy reported, see WithClientScheme; the host from the Host
// header).
func IsSameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Path != "" || u.User != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if s, ok := r.Context().Value(schemeKey{}).(string); ok {
		scheme = s
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(hostPort(u.Host, scheme), hostPort(r.Host, scheme))
}

// hostPort adds the scheme's default port when host has none.
func hostPort(host, scheme string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

// AllowOrigin makes the response readable by origin: when the header is
// written, Access-Control-Allow-Origin is set to origin (never "*"),
// credentials are allowed, Cross-Origin-Resource-Policy widens to
// cross-origin, and Retry-After is exposed. A problem written afterwards
// cancels it. Outside Harden or Middleware it sets the headers at once.
func AllowOrigin(w http.ResponseWriter, origin string) {
	if e := findEnforcer(w); e != nil {
		e.corsOrigin = origin
		return
	}
	applyCORS(w.Header(), origin)
}

// applyCORS sets the CORS response headers; every response varies by
// Origin, allowed or not, so caches never mix them up.
func applyCORS(h http.Header, origin string) {
	if vary, ok := h["Vary"]; !ok {
		h["Vary"] = varyOrigin // the usual case, without a slice of its own
	} else if !slices.Contains(vary, "Origin") {
		h.Add("Vary", "Origin")
	}
	if origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", CORSExposeHeaders)
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
}

type schemeKey struct{}

// WithClientScheme records the scheme the client used, "http" or "https",
// as a proxy that ends TLS in front reports it (X-Forwarded-Proto), for
// IsSameOrigin: behind such a proxy the connection the server sees is
// plain HTTP while the page's origin is https. Only a server that trusts
// the peer that sent the report may call it; other values are ignored.
func WithClientScheme(ctx context.Context, scheme string) context.Context {
	if scheme != "http" && scheme != "https" {
		return ctx
	}
	return context.WithValue(ctx, schemeKey{}, scheme)
}
