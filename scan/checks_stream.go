package scan

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// The rules on the head of a stream response: the main stream, the
// reconnect and every stream of a load run.

// isEventStream reports whether res opened a stream: 200 and a
// Content-Type that a browser reads as text/event-stream.
func isEventStream(res *rawhttp.Response) bool {
	mt, ok := policy.ExtractMIMEType(res.Values("Content-Type"))
	return res.StatusCode == http.StatusOK && ok && mt.Essence == "text/event-stream"
}

// judgeStatus: a stream answers 200 (SSE-STATUS).
func judgeStatus(p *pass, r *response) {
	if !r.stream {
		return
	}
	p.evaluated()
	if code := r.res.StatusCode; code != http.StatusOK {
		p.report(r.probe, fmt.Sprintf("status %d %s: EventSource gives up%s", code, http.StatusText(code), statusCause(p, r)))
	}
}

// judgeCType: the stream's Content-Type is text/event-stream to a browser
// (SSE-CTYPE).
func judgeCType(p *pass, r *response) {
	if !r.stream {
		return
	}
	p.evaluated()
	cts := r.res.Values("Content-Type")
	mt, parsed := policy.ExtractMIMEType(cts)
	switch {
	case len(cts) == 0:
		p.report(r.probe, "no Content-Type")
	case !parsed || mt.Essence != "text/event-stream":
		p.report(r.probe, fmt.Sprintf("Content-Type %s is %q to a browser, not text/event-stream", quoteValues(cts), mt.Essence))
	}
}

// judgeCTypeDup: the stream has one Content-Type line (SSE-CTYPE-DUP).
func judgeCTypeDup(p *pass, r *response) {
	if !r.stream {
		return
	}
	p.evaluated()
	if cts := r.res.Values("Content-Type"); len(cts) > 1 {
		p.report(r.probe, fmt.Sprintf("%d Content-Type lines: %s", len(cts), quoteValues(cts)))
	}
}

// judgeCharset: no charset other than UTF-8 on the stream (SSE-CHARSET).
func judgeCharset(p *pass, r *response) {
	if !r.stream {
		return
	}
	p.evaluated()
	mt, parsed := policy.ExtractMIMEType(r.res.Values("Content-Type"))
	if cs := mt.Charset(); parsed && cs != "" && cs != "utf-8" {
		p.report(r.probe, fmt.Sprintf("charset=%s; the stream is decoded as UTF-8 whatever the label says", cs))
	}
}

// judgeFraming: no Content-Length on a stream, no chunking on HTTP/1.0
// (SSE-H1-FRAMING).
func judgeFraming(p *pass, r *response) {
	if !r.streamHeaders() {
		return
	}
	p.evaluated()
	res := r.res
	if cl := res.Values("Content-Length"); len(cl) > 0 && res.StatusCode == http.StatusOK {
		p.report(r.probe, fmt.Sprintf("Content-Length: %s on a stream: the body ends after that many bytes", cl[0]))
	}
	if p.obs.cfg.Proto == rawhttp.HTTP10 && (res.Framing == rawhttp.FramingChunked || isChunkedField(res.Header)) {
		p.report(r.probe, "Transfer-Encoding: chunked in answer to an HTTP/1.0 request")
	}
}

// judgeH2ConnHdr: no connection-specific header on HTTP/2
// (SSE-H2-CONNHDR).
func judgeH2ConnHdr(p *pass, r *response) {
	if !r.streamHeaders() {
		return
	}
	if proto := p.obs.cfg.Proto; proto != rawhttp.HTTP2 {
		p.skip("the scan spoke " + proto.String() + " (use --http2)")
		return
	}
	p.evaluated()
	for _, name := range policy.ConnectionSpecific {
		if vs := r.res.Values(name); len(vs) > 0 {
			p.report(r.probe, fmt.Sprintf("%s: %s on HTTP/2 makes the response malformed", name, strings.Join(vs, ", ")))
		}
	}
}

// judgeKeepAlive: an HTTP/1.1 stream is not Connection: close
// (SSE-KEEPALIVE).
func judgeKeepAlive(p *pass, r *response) {
	if !r.streamHeaders() {
		return
	}
	switch p.obs.cfg.Proto {
	case rawhttp.HTTP2:
		p.skip("HTTP/2 has no Connection header")
		return
	case rawhttp.HTTP10:
		p.skip("an HTTP/1.0 stream is close-delimited")
		return
	}
	p.evaluated()
	for _, v := range r.res.Values("Connection") {
		if hasToken(v, "close") {
			p.report(r.probe, fmt.Sprintf("Connection: %s on an HTTP/1.1 stream (the body is %s-delimited)", v, r.res.Framing))
			return
		}
	}
}

// judgeNoCompress: the stream is not compressed and says no-transform when
// the profile does (SSE-NO-COMPRESS).
func judgeNoCompress(p *pass, r *response) {
	if !r.streamHeaders() {
		return
	}
	p.evaluated()
	for _, v := range r.res.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(v), "identity") {
			p.report(r.probe, fmt.Sprintf("Content-Encoding: %s on the stream", v))
		}
	}
	want, has := p.obs.cfg.Profile.Header(policy.KindStream, "Cache-Control")
	if !has {
		return
	}
	if !hasDirective([]string{want.Value}, "no-transform") {
		return
	}
	cc := r.res.Values("Cache-Control")
	if !hasDirective(cc, "no-transform") {
		p.report(r.probe, fmt.Sprintf("Cache-Control %s lacks no-transform: intermediaries may compress the stream", quoteOrNone(cc)))
	}
}

// judgeCache: the stream is not cacheable, and no cache answered it
// (SSE-CACHE).
func judgeCache(p *pass, r *response) {
	if !r.streamHeaders() {
		return
	}
	p.evaluated()
	res := r.res
	cc := res.Values("Cache-Control")
	if !hasDirective(cc, "no-cache") && !hasDirective(cc, "no-store") {
		p.report(r.probe, fmt.Sprintf("Cache-Control %s has neither no-cache nor no-store", quoteOrNone(cc)))
	}
	if hasDirective(cc, "public") {
		p.report(r.probe, fmt.Sprintf("Cache-Control %s says public", quoteValues(cc)))
	}
	for _, name := range []string{"max-age", "s-maxage"} {
		if d, has := policy.LookupCacheDirective(cc, name); has && d.Value != "0" {
			p.report(r.probe, fmt.Sprintf("Cache-Control %s allows caching (%s=%s)", quoteValues(cc), name, d.Value))
		}
	}
	// Age: 0 is what a cache sends on a response it just fetched (Varnish
	// on every pass or miss): only an older one shows it was served from
	// storage.
	if age := res.Values("Age"); len(age) > 0 {
		if n, err := strconv.ParseInt(strings.TrimSpace(age[0]), 10, 64); err == nil && n > 0 {
			p.report(r.probe, fmt.Sprintf("Age: %s: a cache answered the stream from storage", age[0]))
		}
	}
	for _, name := range []string{"X-Cache", "CF-Cache-Status", "X-Cache-Status"} {
		for _, v := range res.Values(name) {
			if strings.Contains(strings.ToUpper(v), "HIT") {
				p.report(r.probe, fmt.Sprintf("%s: %s: a cache answered the stream", name, v))
			}
		}
	}
}
