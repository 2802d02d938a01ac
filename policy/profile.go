package policy

import (
	"fmt"
	"net/http"
	"strings"
)

// Kind is the kind of response a header set applies to.
type Kind int

const (
	// KindStream is a text/event-stream response.
	KindStream Kind = iota
	// KindJSON is a JSON API response (poll, publish).
	KindJSON
	// KindProblem is an application/problem+json error.
	KindProblem
	// KindPage is an HTML page, the one place CSP does most of its work.
	KindPage
)

func (k Kind) String() string {
	switch k {
	case KindStream:
		return "stream"
	case KindJSON:
		return "json"
	case KindProblem:
		return "problem"
	case KindPage:
		return "page"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Header is one required response header with the reason it is required.
type Header struct {
	Name  string
	Value string
	// Reason says what the header defends against; docs and scanner
	// findings quote it.
	Reason string
	// HTTP11Only marks headers that are sent on HTTP/1.1 only. Connection is
	// forbidden on HTTP/2 and HTTP/3 (RFC 9113 section 8.2.2), and on HTTP/1.0
	// a stream is close-delimited, so keep-alive would be a lie.
	HTTP11Only bool
}

// AcceptMode says how strictly a stream request's Accept header is read.
type AcceptMode int

const (
	// AcceptStrict requires text/event-stream named explicitly with q > 0.
	// Accept: */* alone (legacy XHR streaming) is refused with 406.
	AcceptStrict AcceptMode = iota
	// AcceptLenient accepts any Accept that gives text/event-stream q > 0,
	// wildcards and a missing header included.
	AcceptLenient
)

// Profile is a named set of header rules and negotiation settings. The zero
// Profile sets nothing; use [Strict], [Baseline] or [Lookup].
//
// A Profile is read-only once in use: copy it (with [Profile.Clone]) to
// change it.
type Profile struct {
	// Name is "strict", "baseline" or a custom name.
	Name string

	// Stream, JSON, Problem and Page are the headers each kind of response
	// carries, in the order they are documented.
	Stream  []Header
	JSON    []Header
	Problem []Header
	Page    []Header

	// Accept is the stream Accept mode.
	Accept AcceptMode

	// Fallback is the URL of the JSON polling fallback, put in the fallback
	// member of stream refusals. Empty means none is offered.
	Fallback string

	// RefusalOrigins may read refusals cross-origin: serve and proxy set
	// their global CORS allowlist here, so that a page of an allowed
	// origin can tell a 401 or 403 from a network failure (and stop), or
	// read Retry-After and fallback. A refusal is never readable by any
	// other origin. Empty: refusals are same-origin only.
	RefusalOrigins []string

	// Observe, when set, is called once per response that Middleware or
	// Harden saw written, with its status and, for a problem, its code
	// (empty otherwise). Servers count refusals with it.
	Observe func(r *http.Request, status int, code string)
}

// Strict CSP values. Streams get a deny-all policy: a stream is data, never a
// document, so nothing in it may load or frame anything.
const (
	StreamCSP = "default-src 'none'; frame-ancestors 'none'"
	PageCSP   = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; " +
		"img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	BaselineCSP = "default-src 'self'; connect-src 'self'; script-src 'self'"
)

var (
	hdrNosniff = Header{"X-Content-Type-Options", "nosniff",
		"stops browsers from sniffing stream or error bytes as script or HTML", false}
	hdrReferrer = Header{"Referrer-Policy", "no-referrer",
		"keeps stream URLs, which may carry topics or cursors, out of Referer headers", false}
	hdrCORP = Header{"Cross-Origin-Resource-Policy", "same-origin",
		"stops other origins from embedding the response as a no-cors resource; CORS widens it when it allows an origin", false}
	hdrDenyCSP = Header{"Content-Security-Policy", StreamCSP,
		"a response that is data, not a document, may load and frame nothing", false}
	hdrNoStore = Header{"Cache-Control", "no-store",
		"errors and API answers are per request and per principal: never stored", false}
)

// Strict is the default profile: the guide's headers plus what experts add.
var Strict = &Profile{
	Name: "strict",
	Stream: []Header{
		{"Content-Type", "text/event-stream; charset=utf-8",
			"EventSource only accepts text/event-stream; the charset leaves nothing to guess", false},
		{"Cache-Control", "no-cache, no-store, no-transform",
			"no-store forbids caches to keep a stream; no-transform forbids intermediaries to compress or rewrite it (RFC 9111 section 5.2.2.6)", false},
		{"Connection", "keep-alive",
			"keeps HTTP/1.1 proxies from closing the long-lived connection; never sent on HTTP/2 or HTTP/1.0", true},
		hdrNosniff,
		hdrDenyCSP,
		{"X-Accel-Buffering", "no",
			"tells nginx and compatible proxies not to buffer the stream", false},
		hdrReferrer,
		hdrCORP,
	},
	JSON: []Header{
		{"Content-Type", "application/json", "JSON has one encoding, UTF-8 (RFC 8259)", false},
		hdrNoStore, hdrNosniff, hdrDenyCSP, hdrReferrer, hdrCORP,
	},
	Problem: []Header{
		{"Content-Type", "application/problem+json", "RFC 9457 problem details", false},
		hdrNoStore, hdrNosniff, hdrDenyCSP, hdrReferrer, hdrCORP,
	},
	Page: []Header{
		{"Content-Type", "text/html; charset=utf-8", "the page that opens the stream", false},
		{"Cache-Control", "no-cache", "pages are revalidated so a policy change takes effect at once", false},
		hdrNosniff,
		{"Content-Security-Policy", PageCSP,
			"the page is where CSP matters: scripts from this origin only, no inline script, connections to this origin only", false},
		{"X-Frame-Options", "DENY", "frame-ancestors for browsers that predate CSP level 2", false},
		hdrReferrer,
		hdrCORP,
	},
	Accept:   AcceptStrict,
	Fallback: "",
}

// Baseline is exactly the header set of the guide sseguard started from:
// the minimum a stream needs. Prefer Strict.
var Baseline = &Profile{
	Name: "baseline",
	Stream: []Header{
		{"Content-Type", "text/event-stream", "EventSource only accepts text/event-stream", false},
		{"Cache-Control", "no-cache", "caches must revalidate, so a stream is not served stale", false},
		{"Connection", "keep-alive", "keeps HTTP/1.1 proxies from closing the connection; HTTP/1.1 only", true},
		hdrNosniff,
		{"Content-Security-Policy", BaselineCSP, "restricts connections and scripts to this origin", false},
	},
	JSON: []Header{
		{"Content-Type", "application/json", "JSON has one encoding, UTF-8 (RFC 8259)", false},
		hdrNoStore, hdrNosniff,
	},
	Problem: []Header{
		{"Content-Type", "application/problem+json", "RFC 9457 problem details", false},
		hdrNoStore, hdrNosniff,
	},
	Page: []Header{
		{"Content-Type", "text/html; charset=utf-8", "the page that opens the stream", false},
		{"Cache-Control", "no-cache", "pages are revalidated", false},
		hdrNosniff,
		{"Content-Security-Policy", BaselineCSP, "restricts connections and scripts to this origin", false},
	},
	Accept: AcceptLenient,
}

// Lookup returns the built-in profile with the given name.
func Lookup(name string) (*Profile, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "strict":
		return Strict, nil
	case "baseline":
		return Baseline, nil
	}
	return nil, fmt.Errorf("policy: unknown profile %q (want strict or baseline)", name)
}

// Clone returns a deep copy of p that may be changed freely.
func (p *Profile) Clone() *Profile {
	c := *p
	c.Stream = append([]Header(nil), p.Stream...)
	c.JSON = append([]Header(nil), p.JSON...)
	c.Problem = append([]Header(nil), p.Problem...)
	c.Page = append([]Header(nil), p.Page...)
	c.RefusalOrigins = append([]string(nil), p.RefusalOrigins...)
	return &c
}

// Headers returns the headers a response of kind k carries over an HTTP
// connection of the given protocol version (r.ProtoMajor, r.ProtoMinor).
func (p *Profile) Headers(k Kind, protoMajor, protoMinor int) []Header {
	all := p.kindHeaders(k)
	out := make([]Header, 0, len(all))
	for _, h := range all {
		if h.applies(protoMajor, protoMinor) {
			out = append(out, h)
		}
	}
	return out
}

func (p *Profile) kindHeaders(k Kind) []Header {
	switch k {
	case KindStream:
		return p.Stream
	case KindJSON:
		return p.JSON
	case KindProblem:
		return p.Problem
	case KindPage:
		return p.Page
	}
	return nil
}

// applies reports whether h is sent on a connection of this version.
func (h Header) applies(protoMajor, protoMinor int) bool {
	return !h.HTTP11Only || (protoMajor == 1 && protoMinor >= 1)
}

// Header returns the rule for name in responses of kind k, if there is one.
func (p *Profile) Header(k Kind, name string) (Header, bool) {
	for _, h := range p.Headers(k, 1, 1) {
		if strings.EqualFold(h.Name, name) {
			return h, true
		}
	}
	return Header{}, false
}

// ConnectionSpecific lists the header fields that HTTP/2 and HTTP/3 forbid
// (RFC 9113 section 8.2.2).
var ConnectionSpecific = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

// Apply sets the headers of kind k on h for a request of the given protocol
// version. Each header replaces whatever was there, so a value is never
// duplicated; headers a kind forbids are removed: Content-Length and
// Content-Encoding on streams, connection-specific fields on HTTP/2 and later
// and on HTTP/1.0 streams.
func (p *Profile) Apply(h http.Header, k Kind, protoMajor, protoMinor int) {
	// The set is prebuilt once per profile, kind and protocol class: a
	// response costs a few map writes, not a slice per header.
	p.headerSetFor(k, protoMajor, protoMinor).writeTo(h)
	if k == KindStream {
		h.Del("Content-Length")
		h.Del("Content-Encoding")
		h.Del("Content-Range")
		h.Del("ETag")
		h.Del("Last-Modified")
	}
	if protoMajor >= 2 || (k == KindStream && protoMajor == 1 && protoMinor == 0) {
		for _, name := range ConnectionSpecific {
			h.Del(name)
		}
	}
}

// ApplyTo is Apply for the response to r.
func (p *Profile) ApplyTo(w http.ResponseWriter, r *http.Request, k Kind) {
	p.Apply(w.Header(), k, r.ProtoMajor, r.ProtoMinor)
}
