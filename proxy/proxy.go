package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/internal/httpserve"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/telemetry"
)

// Proxy is the hardening reverse proxy: an http.Handler that checks each
// request at the edge, forwards it to the upstream of its route with
// httputil.ReverseProxy, and makes the response conform to the header
// policy. Create it with New; call Close when done.
type Proxy struct {
	cfg       *Config
	profile   *policy.Profile
	routes    []*route // longest prefix first
	reqAllow  map[string]bool
	verifier  *auth.Verifier // nil when no route needs auth
	stopJWKS  func()
	leeway    time.Duration // tolerated past a token's exp, as the verifier does
	transport *http.Transport
	parker    *parker // nil where streams cannot be parked
	rp        *httputil.ReverseProxy
	handler   http.Handler
	log       *slog.Logger
	lim       *limiter
	drift     *driftReporter
	reg       *prometheus.Registry
	m         metrics

	stopStreams chan struct{} // closed by Close: streams end at their next boundary
	closeOnce   sync.Once
}

type metrics struct {
	upstreamErrors *prometheus.CounterVec // route, reason
	heartbeats     *prometheus.CounterVec // result
	streamEnds     *prometheus.CounterVec // route, how
}

// route is a configured Route, resolved.
type route struct {
	Route
	target    *url.URL
	fold      string // the prefix as loosePath reads it
	respAllow map[string]bool
	methods   []string     // what preflights may ask for
	hooks     *streamHooks // of its parked streams
}

// exchange is one proxied request's state, shared by the edge handler,
// Rewrite, the transport, ModifyResponse and ErrorHandler through the
// request context.
type exchange struct {
	route     *route
	in        *http.Request // the client's request, with the profile in its context
	principal *auth.Principal
	cancel    context.CancelFunc // cancels the upstream request
	hop       http.Header        // connection-specific headers the upstream sent
	body      *bodyReader        // the request body, nil when there is none
	// w is the client's writer when the stream may be parked (an HTTP/1.x
	// GET, over plain TCP or TLS, with a parker): streamTransport then
	// makes the upstream request on a connection of its own.
	w *clientWriter
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// New returns a proxy for cfg, which New fills with defaults and
// validates. log may be nil for slog.Default(). When auth.jwks_url is set,
// the key set is fetched now and refreshed until Close.
func New(ctx context.Context, cfg *Config, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.Default()
	}
	c := *cfg
	c.Routes = slices.Clone(cfg.Routes)
	c.Fill()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:         &c,
		profile:     c.Policy.ProfileFor(c.TLS, c.CORS),
		log:         log,
		lim:         newLimiter(c.DriftLogInterval.D()),
		reg:         telemetry.NewRegistry(),
		reqAllow:    headerSet(c.RequestHeaders),
		stopStreams: make(chan struct{}),
	}
	p.profile.Fallback = c.Fallback
	for _, r := range c.Routes {
		target, _ := url.Parse(r.Upstream) // validated
		rt := &route{Route: r, target: target, fold: loosePath(r.Prefix), respAllow: headerSet(append(slices.Clone(c.ResponseHeaders), r.ResponseHeaders...))}
		rt.methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
		if r.Kind == KindStream {
			rt.methods = []string{"GET", "HEAD"}
		}
		p.routes = append(p.routes, rt)
	}
	slices.SortStableFunc(p.routes, func(a, b *route) int { return len(b.Prefix) - len(a.Prefix) })

	p.registerMetrics()
	for _, rt := range p.routes {
		rt.hooks = p.parkHooks(rt)
	}
	p.drift = &driftReporter{log: log, lim: p.lim, counter: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sseguard_proxy_header_drift_total",
		Help: "Upstream response headers that differed from the policy, by header (a fixed list, else other) and kind.",
	}, []string{"header", "kind"})}
	p.reg.MustRegister(p.drift.counter)

	var err error
	p.leeway = c.Auth.Leeway.D()
	if p.leeway == 0 {
		p.leeway = auth.DefaultLeeway
	}
	p.verifier, p.stopJWKS, err = newVerifier(ctx, &c.Auth, log)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: c.DialTimeout.D(), KeepAlive: 30 * time.Second}
	p.transport = &http.Transport{
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    100,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  c.HeaderTimeout.D(),
		MaxResponseHeaderBytes: 64 << 10,
		// The proxy asks for identity itself, and must see a
		// Content-Encoding the upstream sends anyway.
		DisableCompression: true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      snapshotTransport{&streamTransport{next: p.transport, dialer: dialer, headerTimeout: c.HeaderTimeout.D()}},
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	p.handler = policy.Harden(p.profile, policy.WithLogger(log))(http.HandlerFunc(p.serve))
	// Streams are parked, as the hub parks its own: no goroutine and no
	// buffer per idle stream, on either side.
	if p.parker, err = newParker(c.Heartbeat.D(), c.WriteTimeout.D()); err != nil {
		log.Debug("proxied streams will not be parked", "err", err)
		p.parker = nil
	}
	return p, nil
}

func (p *Proxy) registerMetrics() {
	responses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sseguard_proxy_responses_total",
		Help: "Responses to clients by status and, for problems, the error code.",
	}, []string{"status", "code"})
	p.m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sseguard_proxy_upstream_errors_total",
		Help: "Upstream failures answered with a problem, by route and reason (connect, timeout, status, content_type, encoding, redirect, upgrade).",
	}, []string{"route", "reason"})
	p.m.heartbeats = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sseguard_proxy_heartbeats_total",
		Help: "Heartbeats due on idle streams: sent, or skipped because the upstream stalled mid-event.",
	}, []string{"result"})
	p.m.streamEnds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sseguard_proxy_stream_ends_total",
		Help: "Proxied streams that the upstream ended, by route and how: clean (at an event boundary), mid_event, or error.",
	}, []string{"route", "how"})
	parked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sseguard_proxy_parked_streams",
		Help: "Proxied streams parked on the epoll sets (no goroutine or buffer of their own).",
	}, func() float64 {
		if p.parker == nil {
			return 0
		}
		return float64(p.parker.count())
	})
	p.reg.MustRegister(responses, p.m.upstreamErrors, p.m.heartbeats, p.m.streamEnds, parked)
	p.profile.Observe = func(_ *http.Request, status int, code string) {
		responses.WithLabelValues(strconv.Itoa(status), code).Inc()
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// Metrics returns the Prometheus exposition of the proxy's metrics:
// sseguard_proxy_header_drift_total{header,kind},
// sseguard_proxy_responses_total{status,code},
// sseguard_proxy_upstream_errors_total{route,reason},
// sseguard_proxy_heartbeats_total{result},
// sseguard_proxy_stream_ends_total{route,how},
// sseguard_proxy_parked_streams, and the Go and process
// collectors.
func (p *Proxy) Metrics() http.Handler {
	return telemetry.Handler(p.reg)
}

// Close ends every proxied stream at its next event boundary, stops the
// JWKS refresh, closes idle upstream connections and logs the drift counts
// that the rate limit held back. Call it when shutting down, before
// http.Server.Shutdown, so that streams let the server stop. Serve calls it
// itself. It is safe to call more than once.
//
// Parked streams (HTTP/1.x over plain TCP, which the server no longer
// tracks) end at their next event boundary too: Close waits for them at
// most Config.ShutdownTimeout, then ends those still inside an event
// where they are (the client discards the unfinished event).
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.stopStreams)
		p.stopJWKS()
		p.transport.CloseIdleConnections()
		if p.parker != nil {
			p.parker.close(p.cfg.ShutdownTimeout.D())
		}
		p.lim.close()
	})
	return nil
}

// Serve serves the proxy on ln until ctx ends, then shuts down: streams
// end at their next event boundary (clients reconnect), other requests
// finish, and after Config.ShutdownTimeout the remaining connections are
// closed. ready, when not nil, is called once the listener is serving.
// Serve closes the proxy (Close) when it starts to stop, and returns once
// the server has stopped.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, ready func(net.Addr)) error {
	tc, err := httpserve.LoadTLS(httpserve.TLSFiles{
		CertFile:          p.cfg.TLS.CertFile,
		KeyFile:           p.cfg.TLS.KeyFile,
		ClientCAFile:      p.cfg.TLS.ClientCAFile,
		RequireClientCert: p.cfg.TLS.ClientAuth == "require",
	})
	if err != nil {
		return err
	}
	hs := httpserve.New(p, httpserve.Options{
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout.D(),
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		TLS:               tc,
		ShutdownTimeout:   p.cfg.ShutdownTimeout.D(),
		Logger:            p.log,
	})
	hs.OnShutdown(func() { _ = p.Close() })
	if ready != nil {
		ready(ln.Addr())
	}
	err = hs.Serve(ctx, ln)
	_ = p.Close() // parked streams are not the server's: wait for them too
	return err
}

// serve runs the edge checks, then forwards. It runs inside policy.Harden,
// so every problem gets the profile's headers and every response is
// counted.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	rt, unclean := p.route(r)
	if unclean != "" {
		p.refuse(w, r, "", policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, unclean))
		return
	}
	if rt == nil {
		p.refuse(w, r, "", policy.NewProblem(http.StatusNotFound, policy.CodeNotFound, "no route for this path"))
		return
	}
	if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		policy.Preflight(w, r, p.cfg.CORS.AllowedOrigins, rt.methods, p.cfg.CORS.MaxAge.D())
		return
	}
	switch rt.Kind {
	case KindStream:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			p.refuse(w, r, rt.Prefix, policy.MethodNotAllowed(r.Method, http.MethodGet, http.MethodHead))
			return
		}
		if prob := p.profile.CheckStreamAccept(r); prob != nil {
			prob.Fallback = rt.Fallback
			p.refuse(w, r, rt.Prefix, prob)
			return
		}
	case KindJSON:
		if !policy.AcceptsJSON(r.Header.Values("Accept")) {
			p.refuse(w, r, rt.Prefix, policy.NewProblem(http.StatusNotAcceptable, policy.CodeAcceptNotAcceptable,
				"this endpoint serves JSON only: send Accept: application/json"))
			return
		}
	}
	principal, prob := p.authenticate(r, rt)
	if prob != nil {
		p.refuse(w, r, rt.Prefix, prob)
		return
	}
	if !p.checkOrigin(w, r, rt, principal) {
		return
	}
	if r.ContentLength > p.cfg.MaxBodyBytes {
		p.refuse(w, r, rt.Prefix, policy.Errorf(http.StatusRequestEntityTooLarge, policy.CodeBodyTooLarge,
			"the request body exceeds %d bytes", p.cfg.MaxBodyBytes))
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ex := &exchange{route: rt, principal: principal, cancel: cancel}
	if r.Body != nil && r.Body != http.NoBody {
		// Only now, after every edge check, is a byte of the body read.
		ex.body = newBodyReader(w, r.Body, p.cfg.ReadBodyTimeout.D())
		r.Body = http.MaxBytesReader(w, ex.body, p.cfg.MaxBodyBytes)
	}
	r = r.WithContext(context.WithValue(ctx, exchangeKey{}, ex))
	ex.in = r
	cw := &clientWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: p.cfg.WriteTimeout.D()}
	defer cw.done()
	if p.parker != nil && r.ProtoMajor == 1 && r.Method == http.MethodGet && canHijack(w) {
		ex.w = cw
	}
	p.rp.ServeHTTP(cw, r)
}

// refuse writes prob and logs the refusal, rate-limited per route and code.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, route string, prob *policy.Problem) {
	if n, ok := p.lim.allow("refuse\x00"+route+"\x00"+prob.Code, nil); ok {
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "refused",
			slog.String("route", route), slog.String("path", clip(r.URL.Path)), slog.Int("status", prob.Status),
			slog.String("code", prob.Code), slog.Int("count", n))
	}
	if r.ProtoMajor == 1 && r.Body != nil && r.Body != http.NoBody {
		// The body is refused unread. net/http reads what is left of it
		// before it writes the answer, which a client trickling the body
		// would hold up: what has arrived is read, the rest closes the
		// connection.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	policy.WriteProblem(w, r, prob)
}

var anonymous = &auth.Principal{Anonymous: true, Source: auth.SourceAnonymous}

// authenticate returns the principal of r on rt: anonymous on routes
// without auth, else the verified token's, which must allow every topic
// named by the route's topic parameter.
func (p *Proxy) authenticate(r *http.Request, rt *route) (*auth.Principal, *policy.Problem) {
	if rt.Auth != AuthJWT {
		return anonymous, nil
	}
	pr, prob := p.verifier.Authenticate(r)
	if prob != nil {
		return nil, prob
	}
	if pr.Anonymous {
		return nil, policy.TokenMissing("this endpoint needs a token")
	}
	if rt.TopicParam != "" {
		for _, t := range r.URL.Query()[rt.TopicParam] {
			if !pr.CanSubscribe(t) {
				return nil, policy.Errorf(http.StatusForbidden, policy.CodeTopicForbidden, "this token may not subscribe to topic %q", t)
			}
		}
	}
	return pr, nil
}

// checkOrigin applies the CORS decision as the hub does, and refuses a
// foreign origin with 403 before any upstream request.
func (p *Proxy) checkOrigin(w http.ResponseWriter, r *http.Request, rt *route, pr *auth.Principal) bool {
	allowed := pr.Origins
	if pr.Anonymous {
		allowed = p.cfg.CORS.AnonymousOrigins
	}
	if prob := policy.CheckOrigin(w, r, p.cfg.CORS.AllowedOrigins, allowed); prob != nil {
		p.refuse(w, r, rt.Prefix, prob)
		return false
	}
	return true
}

// rewrite builds the upstream request: the route's URL, only allowlisted
// headers, identity encoding, forwarding headers set by the proxy alone
// (it is the edge: what a client claims in them is dropped), and the
// verified subject.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	rt, out := ex.route, pr.Out
	// The path routed is the path forwarded: the decoded path, escaped
	// anew where it must be, never the client's own spelling of it (which
	// an upstream could decode into something else).
	out.URL.RawPath = ""
	if rt.StripPrefix && rt.Prefix != "/" {
		pre := strings.TrimSuffix(rt.Prefix, "/")
		out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(out.URL.Path, pre), "/")
	}
	if q := p.cfg.Auth.QueryParam; q != "" && out.URL.Query().Has(q) {
		v := out.URL.Query()
		v.Del(q)
		out.URL.RawQuery = v.Encode()
	}
	pr.SetURL(rt.target)
	for k := range out.Header {
		if !p.reqAllow[k] {
			delete(out.Header, k)
		}
	}
	out.Header.Set("Accept-Encoding", "identity")
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Host", pr.In.Host)
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	out.Header.Set("X-Forwarded-Proto", proto)
	if ex.principal != nil && !ex.principal.Anonymous {
		out.Header.Set(p.cfg.Auth.SubjectHeader, ex.principal.Subject)
	}
}

// hopHeaders are the connection-specific headers that ReverseProxy strips
// before ModifyResponse sees the response; snapshotTransport keeps them
// for the drift report.
var hopHeaders = func() []string {
	out := make([]string, len(policy.ConnectionSpecific))
	for i, n := range policy.ConnectionSpecific {
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out
}()

// snapshotTransport records the connection-specific headers of each
// upstream response in the exchange.
type snapshotTransport struct{ rt http.RoundTripper }

func (t snapshotTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if ex := exchangeFrom(req.Context()); ex != nil {
		for _, n := range hopHeaders {
			if vs := res.Header[n]; len(vs) > 0 {
				if ex.hop == nil {
					ex.hop = http.Header{}
				}
				ex.hop[n] = slices.Clone(vs)
			}
		}
	}
	return res, nil
}

// clientWriter bounds every write to the client with a deadline, and keeps
// 1xx responses of the upstream (ReverseProxy forwards them with their
// headers unfiltered) from reaching the client.
type clientWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *clientWriter) WriteHeader(code int) {
	if code >= 100 && code <= 199 {
		return // ReverseProxy clears the headers it set for it
	}
	if _, ok := w.Header()["Content-Type"]; !ok {
		// net/http would sniff the body and could label an untyped
		// upstream body text/html; the client gets no type and nosniff.
		w.Header()["Content-Type"] = nil
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *clientWriter) Write(b []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(b)
}

// FlushError flushes under the write deadline.
func (w *clientWriter) FlushError() error {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController and policy reach the writer below.
func (w *clientWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// done clears the write deadline, so it does not outlive the response on a
// kept-alive connection.
func (w *clientWriter) done() { _ = w.rc.SetWriteDeadline(time.Time{}) }

// bodyReader is a request body read under httpserve.BodyDeadline: the
// deadline is set once, when the edge checks are done, and lifted at the
// body's end, so that it cannot cut a long response to the request.
type bodyReader struct {
	io.ReadCloser
	timedOut atomic.Bool // a read failed at the deadline: the client is slow, not the upstream
}

func newBodyReader(w http.ResponseWriter, body io.ReadCloser, timeout time.Duration) *bodyReader {
	b := &bodyReader{}
	// A writer that is not a connection's leaves the body unbounded in
	// time, as before.
	b.ReadCloser, _ = httpserve.BodyDeadline(w, body, timeout, func() { b.timedOut.Store(true) })
	return b
}

// headerSet returns the canonical names of names as a set.
func headerSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[http.CanonicalHeaderKey(n)] = true
	}
	return m
}

// newVerifier builds the token verifier that a describes, or nil when it
// names no key.
func newVerifier(ctx context.Context, a *Auth, log *slog.Logger) (*auth.Verifier, func(), error) {
	if len(a.Keys) == 0 && a.JWKSURL == "" {
		return nil, func() {}, nil
	}
	return auth.NewVerifier(ctx, a.AuthConfig(), log)
}
