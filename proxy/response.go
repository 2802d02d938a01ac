package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sseguard/sseguard/policy"
)

// upstreamError is a refusal of the upstream's response: the client gets
// the problem, the operator gets the reason (a metric label) and the log.
type upstreamError struct {
	prob   *policy.Problem
	reason string // connect, timeout, status, content_type, encoding, redirect, upgrade
	status int    // the upstream's status, 0 when there was no response
}

func (e *upstreamError) Error() string { return e.prob.Error() }

// modifyResponse makes an upstream response conform before its header is
// written. A returned error sends the client a problem instead (through
// proxyError); the upstream body is then closed unread.
func (p *Proxy) modifyResponse(res *http.Response) error {
	ex := exchangeFrom(res.Request.Context())
	rt, in := ex.route, ex.in
	res.Trailer = nil // trailers would bypass the allowlist
	switch st := res.StatusCode; {
	case st == http.StatusSwitchingProtocols:
		return p.upstreamFailed(ex, "upgrade", st, "the upstream switched protocols; the proxy does not tunnel upgrades")
	case st == http.StatusNotModified || st == http.StatusNoContent:
		p.filter(ex, res, 0, false)
		return nil
	case st >= 300 && st < 400:
		return p.upstreamFailed(ex, "redirect", st, fmt.Sprintf("the upstream redirected (%d); the proxy does not forward redirects", st))
	case st >= 400:
		return p.upstreamStatus(ex, res)
	}

	kind, known, err := p.kindOf(ex, res)
	if err != nil {
		return err
	}
	if kind == policy.KindStream && known && rt.Kind == KindAuto {
		// An auto route learns only now that this is a stream.
		if prob := p.profile.CheckStreamAccept(in); prob != nil {
			prob.Fallback = rt.Fallback
			return &upstreamError{prob: prob, reason: "", status: res.StatusCode}
		}
	}
	decoded, err := decode(res)
	if err != nil {
		return p.upstreamFailed(ex, "encoding", res.StatusCode, err.Error())
	}
	p.filter(ex, res, kind, known)
	if decoded {
		res.Header.Del("Content-Length")
		res.ContentLength = -1
	}
	if known && kind == policy.KindStream {
		res.ContentLength = -1
		var expires time.Time
		if pr := ex.principal; pr != nil && !pr.Expires.IsZero() {
			// The hub ends a stream at exp; the proxy, which accepts a token
			// until exp plus the leeway, ends it there.
			expires = pr.Expires.Add(p.leeway)
		}
		if !decoded && p.parkStream(ex, res, expires) {
			return errParked
		}
		sb := newStreamBody(res.Body, ex.cancel, p.cfg.Heartbeat.D())
		sb.stop = p.stopStreams
		if !expires.IsZero() {
			sb.expires = expires
			sb.onExpire = func() { p.expired(in.Context(), rt) }
		}
		sb.onBeat = func(sent bool) { p.beat(in.Context(), rt, sent) }
		sb.onEnd = func(mid bool, err error) { p.streamEnded(in, rt, mid, err) }
		res.Body = sb
	}
	return nil
}

// kindOf decides what kind of response res is on its route. On a stream
// route anything but text/event-stream (or no Content-Type at all, which
// the policy then supplies) is refused; on a json route anything but JSON.
func (p *Proxy) kindOf(ex *exchange, res *http.Response) (policy.Kind, bool, error) {
	values := res.Header.Values("Content-Type")
	mt, parsed := policy.ExtractMIMEType(values)
	essence := ""
	if parsed {
		essence = mt.Essence
	}
	k, known := policy.KindOf(essence)
	switch ex.route.Kind {
	case KindStream:
		if len(values) == 0 || k == policy.KindStream && known {
			return policy.KindStream, true, nil
		}
		want, _ := p.profile.Header(policy.KindStream, "Content-Type")
		p.drift.report(ex.in.Context(), ex.route.Prefix, res.StatusCode, ex.in.Proto,
			[]drift{{header: "Content-Type", kind: DriftWrongValue, upstream: values, policy: want.Value}})
		return 0, false, p.upstreamFailed(ex, "content_type", res.StatusCode,
			fmt.Sprintf("the upstream answered this stream route with %s, not text/event-stream", describeType(essence)))
	case KindJSON:
		if len(values) == 0 {
			return policy.KindJSON, true, nil
		}
		if known && (k == policy.KindJSON || k == policy.KindProblem) {
			return k, true, nil
		}
		want, _ := p.profile.Header(policy.KindJSON, "Content-Type")
		p.drift.report(ex.in.Context(), ex.route.Prefix, res.StatusCode, ex.in.Proto,
			[]drift{{header: "Content-Type", kind: DriftWrongValue, upstream: values, policy: want.Value}})
		return 0, false, p.upstreamFailed(ex, "content_type", res.StatusCode,
			fmt.Sprintf("the upstream answered this JSON route with %s", describeType(essence)))
	}
	if known && len(values) > 0 {
		return k, true, nil
	}
	if scriptCapable(essence) {
		return policy.KindPage, true, nil
	}
	return k, false, nil
}

// scriptCapableTypes are the types, besides text/html, that a browser
// renders as a document able to run script: XHTML, SVG and any XML (an
// element in the XHTML namespace runs), XSLT, and multipart/x-mixed-replace,
// whose parts may be HTML.
var scriptCapableTypes = map[string]bool{
	"text/html": true, "application/xhtml+xml": true, "image/svg+xml": true,
	"text/xml": true, "application/xml": true, "text/xsl": true, "multipart/x-mixed-replace": true,
}

// scriptCapable reports whether a response of this MIME essence may run
// script when opened as a document, and so needs the page policy (CSP,
// X-Frame-Options). An empty essence (no Content-Type, or one that does
// not parse) counts: a browser may sniff the body as HTML.
func scriptCapable(essence string) bool {
	return essence == "" || scriptCapableTypes[essence] || strings.HasSuffix(essence, "+xml")
}

func describeType(essence string) string {
	if essence == "" {
		return "an unreadable Content-Type"
	}
	return essence
}

// filter replaces res.Header with what the client may see: the allowlisted
// upstream headers, then the policy's headers for kind (when known), which
// replace any value and remove what the kind forbids. It reports every
// difference as drift.
func (p *Proxy) filter(ex *exchange, res *http.Response, kind policy.Kind, known bool) {
	in := ex.in
	var drifts []drift
	managed := map[string]bool{}
	// A script-capable type other than HTML gets the page policy but keeps
	// its own Content-Type (or none): SVG stays SVG.
	keepType := false
	if known && kind == policy.KindPage {
		mt, ok := policy.ExtractMIMEType(res.Header.Values("Content-Type"))
		keepType = !ok || mt.Essence != "text/html"
	}
	if known {
		for _, h := range p.profile.Headers(kind, 1, 1) {
			name := http.CanonicalHeaderKey(h.Name)
			if keepType && name == "Content-Type" {
				continue
			}
			managed[name] = true
			if h.HTTP11Only || h.SetByEdge() {
				continue // hop-by-hop, or the proxy's own (HSTS): the upstream's value is not the client's
			}
			got := res.Header[name]
			switch {
			case len(got) == 0:
				drifts = append(drifts, drift{header: name, kind: DriftMissing, policy: h.Value})
			case len(got) > 1:
				drifts = append(drifts, drift{header: name, kind: DriftDuplicate, upstream: got, policy: h.Value})
			case !policy.Satisfies(name, got, h.Value):
				drifts = append(drifts, drift{header: name, kind: DriftWrongValue, upstream: got, policy: h.Value})
			}
		}
	}
	if in.ProtoMajor >= 2 {
		for _, n := range hopHeaders {
			if vs := ex.hop[n]; len(vs) > 0 {
				drifts = append(drifts, drift{header: n, kind: DriftForbiddenH2, upstream: vs})
			}
		}
	}
	nh := http.Header{}
	for k, vs := range res.Header {
		switch {
		case managed[k]:
		case k == "Content-Encoding":
			drifts = append(drifts, drift{header: k, kind: DriftContentEncoding, upstream: vs})
		case k == "Date":
			// The proxy's server dates the response itself.
		case !ex.route.respAllow[k]:
			drifts = append(drifts, drift{header: k, kind: DriftDropped, upstream: vs})
		default:
			nh[k] = vs
		}
	}
	if known {
		kept := make([]string, 0, len(nh))
		for k := range nh {
			kept = append(kept, k)
		}
		ct, hasType := nh["Content-Type"]
		p.profile.Apply(nh, kind, in.ProtoMajor, in.ProtoMinor)
		switch {
		case keepType && hasType:
			nh["Content-Type"] = ct
		case keepType:
			delete(nh, "Content-Type")
		}
		for _, k := range kept {
			if _, ok := nh[k]; !ok {
				drifts = append(drifts, drift{header: k, kind: DriftDropped, upstream: res.Header[k]})
			}
		}
	}
	if !known {
		p.profile.ApplyEdge(nh)
	}
	res.Header = nh
	if len(drifts) > 0 {
		p.drift.report(in.Context(), ex.route.Prefix, res.StatusCode, in.Proto, drifts)
	}
}

// decode undoes a Content-Encoding the upstream applied although the
// proxy asked for identity, with the decoder the scanner uses: gzip, and
// deflate as zlib or raw, decoded as the body is read; identity is
// dropped; anything else is an error.
func decode(res *http.Response) (bool, error) {
	dec, coding, err := policy.DecodeContent(res.Header.Values("Content-Encoding"), res.Body)
	switch {
	case err != nil && strings.Contains(coding, ","):
		return false, fmt.Errorf("the upstream applied several content codings (%s); the proxy asks for identity", coding)
	case err != nil:
		return false, fmt.Errorf("the upstream compressed the response with %q, which the proxy cannot decode; it asks for identity", coding)
	case coding == "":
		return false, nil
	}
	res.Body = &decodedBody{dec: dec, src: res.Body}
	return true, nil
}

// decodedBody reads an upstream body through its decoder and closes the
// upstream body.
type decodedBody struct {
	dec io.Reader
	src io.Closer
}

func (d *decodedBody) Read(p []byte) (int, error) {
	n, err := d.dec.Read(p)
	if policy.IsCorruptContent(err) {
		err = fmt.Errorf("decoding the upstream body: %w", err)
	}
	return n, err
}

func (d *decodedBody) Close() error { return d.src.Close() }

// upstreamFailed returns the 502 problem for an upstream response the
// policy refuses.
func (p *Proxy) upstreamFailed(ex *exchange, reason string, status int, detail string) error {
	prob := policy.NewProblem(http.StatusBadGateway, policy.CodeUpstreamFailed, detail)
	prob.RetryAfter = p.cfg.RetryAfter.D()
	prob.Fallback = ex.route.Fallback
	return &upstreamError{prob: prob, reason: reason, status: status}
}

// upstreamStatus maps an upstream 4xx or 5xx to the project's problem: the
// upstream's body (an HTML page, a stack trace) is never read or sent.
// Client errors keep their meaning; server errors become 502, except 503
// and 504, which keep theirs.
func (p *Proxy) upstreamStatus(ex *exchange, res *http.Response) error {
	st := res.StatusCode
	var prob *policy.Problem
	switch st {
	case http.StatusBadRequest:
		prob = policy.NewProblem(st, policy.CodeBadRequest, "the upstream refused the request as malformed")
	case http.StatusUnauthorized:
		code := policy.CodeTokenMissing
		if ex.in.Header.Get("Authorization") != "" || ex.in.Header.Get("Cookie") != "" {
			code = policy.CodeTokenInvalid
		}
		prob = policy.NewProblem(st, code, "the upstream refused the credentials")
		prob.Header = http.Header{"Www-Authenticate": {`Bearer realm="sseguard"`}}
	case http.StatusForbidden:
		prob = policy.NewProblem(st, policy.CodeTopicForbidden, "the upstream refused access")
	case http.StatusNotFound, http.StatusGone:
		prob = policy.NewProblem(http.StatusNotFound, policy.CodeNotFound, "the upstream has no such resource")
	case http.StatusMethodNotAllowed:
		prob = policy.NewProblem(st, policy.CodeMethodNotAllowed, "the upstream does not allow this method")
		if allow := res.Header.Get("Allow"); allow != "" && isTokenList(allow) {
			prob.Header = http.Header{"Allow": {allow}}
		}
	case http.StatusNotAcceptable:
		prob = policy.NewProblem(st, policy.CodeAcceptNotAcceptable, "the upstream cannot answer with what Accept allows")
	case http.StatusRequestEntityTooLarge:
		prob = policy.NewProblem(st, policy.CodeBodyTooLarge, "the upstream refused the request body as too large")
	case http.StatusUnsupportedMediaType:
		prob = policy.NewProblem(st, policy.CodeUnsupportedMedia, "the upstream does not read this request body's type")
	case http.StatusTooManyRequests:
		prob = policy.NewProblem(st, policy.CodeRateLimited, "the upstream is rate limiting this client")
		prob.RetryAfter = retryAfter(res.Header.Get("Retry-After"))
	case http.StatusServiceUnavailable:
		prob = policy.NewProblem(st, policy.CodeUnavailable, "the upstream is unavailable")
		prob.RetryAfter = retryAfter(res.Header.Get("Retry-After"))
	case http.StatusGatewayTimeout:
		prob = policy.NewProblem(st, policy.CodeUpstreamTimeout, "the upstream timed out")
		prob.RetryAfter = p.cfg.RetryAfter.D()
	default:
		if st < 500 {
			prob = policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "the upstream refused the request (%d)", st)
		} else {
			prob = policy.Errorf(http.StatusBadGateway, policy.CodeUpstreamFailed, "the upstream failed (%d)", st)
			prob.RetryAfter = p.cfg.RetryAfter.D()
		}
	}
	prob.Fallback = ex.route.Fallback
	return &upstreamError{prob: prob, reason: "status", status: st}
}

// retryAfter reads a Retry-After in seconds, bounded to an hour; 0 means
// the default.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

func isTokenList(s string) bool {
	for _, t := range strings.Split(s, ",") {
		if !policy.IsToken(strings.TrimSpace(t)) {
			return false
		}
	}
	return true
}

// proxyError answers every failure of a proxied request with a problem:
// a refusal from modifyResponse, a body too large, a timeout (504) or any
// other transport failure (502), and logs it, rate-limited per route.
func (p *Proxy) proxyError(w http.ResponseWriter, out *http.Request, err error) {
	if errors.Is(err, errParked) {
		return
	}
	ex := exchangeFrom(out.Context())
	in := ex.in
	var ue *upstreamError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ue):
	case ex.body != nil && ex.body.timedOut.Load():
		ue = &upstreamError{prob: policy.Errorf(http.StatusRequestTimeout, policy.CodeRequestTimeout,
			"the request body did not arrive within %s", p.cfg.ReadBodyTimeout.D())}
	case errors.As(err, &mbe):
		ue = &upstreamError{prob: policy.Errorf(http.StatusRequestEntityTooLarge, policy.CodeBodyTooLarge,
			"the request body exceeds %d bytes", mbe.Limit)}
	case in.Context().Err() != nil && errors.Is(err, context.Canceled):
		return // the client left: nobody to answer
	case isTimeout(err):
		prob := policy.NewProblem(http.StatusGatewayTimeout, policy.CodeUpstreamTimeout, "the upstream did not answer in time")
		prob.RetryAfter = p.cfg.RetryAfter.D()
		prob.Fallback = ex.route.Fallback
		ue = &upstreamError{prob: prob, reason: "timeout"}
	default:
		prob := policy.NewProblem(http.StatusBadGateway, policy.CodeUpstreamFailed, "the upstream could not be reached or failed")
		prob.RetryAfter = p.cfg.RetryAfter.D()
		prob.Fallback = ex.route.Fallback
		ue = &upstreamError{prob: prob, reason: "connect"}
	}
	prob := ue.prob
	if ue.reason != "" {
		p.m.upstreamErrors.WithLabelValues(ex.route.Prefix, ue.reason).Inc()
		prob.Err = err
		logLine := func(n int) {
			attrs := []slog.Attr{
				slog.String("route", ex.route.Prefix), slog.String("reason", ue.reason),
				slog.Int("status", prob.Status), slog.String("code", prob.Code), slog.Int("count", n),
			}
			if ue.status != 0 {
				attrs = append(attrs, slog.Int("upstream_status", ue.status))
			} else {
				attrs = append(attrs, slog.String("err", clip(err.Error()))) // it may quote the URL
			}
			p.log.LogAttrs(in.Context(), slog.LevelWarn, "upstream failed", attrs...)
		}
		if n, ok := p.lim.allow("upstream\x00"+ex.route.Prefix+"\x00"+ue.reason, logLine); ok {
			logLine(n)
		}
	} else if n, ok := p.lim.allow("refuse\x00"+ex.route.Prefix+"\x00"+prob.Code, nil); ok {
		p.log.LogAttrs(in.Context(), slog.LevelInfo, "refused", slog.String("route", ex.route.Prefix),
			slog.String("path", clip(in.URL.Path)), slog.Int("status", prob.Status), slog.String("code", prob.Code), slog.Int("count", n))
	}
	policy.WriteProblem(w, in, prob)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// streamEnded records how the upstream ended a stream served from its
// handler.
func (p *Proxy) streamEnded(in *http.Request, rt *route, mid bool, err error) {
	if in.Context().Err() != nil {
		return // the client left or the proxy is stopping: not the upstream's doing
	}
	p.upstreamEnded(rt, mid, err)
}

// upstreamEnded records how the upstream ended a stream.
func (p *Proxy) upstreamEnded(rt *route, mid bool, err error) {
	how := "clean"
	switch {
	case mid:
		how = "mid_event"
	case err != nil:
		how = "error"
	}
	p.m.streamEnds.WithLabelValues(rt.Prefix, how).Inc()
	if how == "clean" {
		return
	}
	logLine := func(n int) {
		attrs := []slog.Attr{slog.String("route", rt.Prefix), slog.String("how", how), slog.Int("count", n)}
		if err != nil {
			attrs = append(attrs, slog.String("err", clip(err.Error())))
		}
		msg := "upstream ended the stream with an error"
		if mid {
			msg = "upstream ended the stream mid-event; the client discards the unfinished event"
		}
		p.log.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
	}
	if n, ok := p.lim.allow("end\x00"+rt.Prefix+"\x00"+how, logLine); ok {
		logLine(n)
	}
}
