package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/httpserve"
	"github.com/sseguard/sseguard/internal/lograte"
	"github.com/sseguard/sseguard/internal/park"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/telemetry"
	"github.com/sseguard/sseguard/web"
)

// Server is the HTTP API of the hub. Create it with New, which only
// allocates; Run serves it, and starts and stops everything it owns.
type Server struct {
	cfg     *config.Config
	profile *policy.Profile
	hub     *hub.Hub
	auth    *auth.Verifier
	log     *slog.Logger
	handler http.Handler
	reg     *prometheus.Registry
	// poller parks idle HTTP/1.x streams while Run runs; nil before, and
	// where parking is unsupported. pollerMu guards it for the metrics
	// gauge: handlers only run once Run has set it.
	poller *park.Poller
	// beatPoller parks the streams that asked for heartbeat events
	// (heartbeat=event): a poller has one heartbeat block for all its
	// streams. Nil like poller.
	beatPoller *park.Poller
	pollerMu   sync.Mutex
	started    atomic.Bool // Run was called
	running    handlerCount
	metrics    *telemetry.Metrics
	guard      *guard
	history    *historyBudget // bounds the history pages held in memory (replay.go)
	presence   *presenceHub   // nil while presence.topics is empty (presence.go)
	// logs keeps per-request warnings (refused origins, failed store
	// reads) to one line a minute per kind, with a count.
	logs lograte.Limiter
	// replayPaged, when set (by tests), is called between two pages of a
	// replay with the last ID written.
	replayPaged func(last string)
	// TLS, when set, makes Run speak HTTPS (and HTTP/2) with it.
	TLS *tls.Config
}

// New returns a server for the hub h, authenticating with v. It starts no
// goroutine and opens nothing: Run does. Fields of cfg left at their zero
// value (nil pointers included) mean their defaults, as in a file that
// omits them, so a zero config.Config is a working one; cfg should be
// validated, and New keeps a copy of it. v nil means a verifier that
// accepts no credentials; log nil means slog.Default().
func New(cfg *config.Config, h *hub.Hub, v *auth.Verifier, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	if v == nil {
		v = &auth.Verifier{}
	}
	cfg = withDefaults(cfg)
	s := &Server{cfg: cfg, hub: h, auth: v, log: log, profile: cfg.Policy.ProfileFor(cfg.TLS, cfg.CORS)}
	s.profile.Fallback = "/api/poll"
	s.guard = newGuard(cfg)
	s.history = newHistoryBudget(cfg.Stream.ReplayBytes, cfg.Stream.QueueBytes, cfg.Publish.MaxDataBytes, cfg.Stream.WriteTimeout.D())
	s.metrics = telemetry.New(telemetry.SpikeOptions{
		Factor:   cfg.Telemetry.SpikeFactor,
		Floor:    cfg.Telemetry.SpikeFloor,
		HalfLife: cfg.Telemetry.SpikeHalfLife.D(),
		Learn:    cfg.Telemetry.SpikeLearn.D(),
	}, log, func() telemetry.Counters {
		st, ss := h.Stats(), h.StoreState()
		return telemetry.Counters{Published: st.Published, Duplicates: st.Duplicates,
			Delivered: st.Delivered, DeliveredBytes: st.DeliveredBytes, CutOff: st.CutOff,
			Store: telemetry.StoreState{Driver: cfg.Store.Driver, Reachable: ss.Reachable, Shared: ss.Shared, Following: ss.Following}}
	})
	s.reg = s.metrics.Registry
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sseguard_replays_queued",
		Help: "Replays and polls waiting for room in stream.replay_bytes, served in arrival order."},
		func() float64 { return float64(s.history.Queued()) }))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sseguard_parked_streams",
		Help: "Streams parked on the epoll set (no goroutine of their own)."},
		func() float64 {
			s.pollerMu.Lock()
			defer s.pollerMu.Unlock()
			n := 0
			for _, p := range []*park.Poller{s.poller, s.beatPoller} {
				if p != nil {
					n += p.Len()
				}
			}
			return float64(n)
		}))
	s.profile.Observe = s.metrics.ObserveResponse
	s.presence = newPresenceHub(cfg, h.Store(), telemetry.NewPresence(s.reg), log)
	h.SetObserver(s.metrics)
	// A networked store (Redis) reports its round trips by command.
	if o, ok := h.Store().(interface {
		ObserveRoundTrips(func(op string, d time.Duration))
	}); ok {
		o.ObserveRoundTrips(s.metrics.StoreRoundTrip)
	}

	// Every route but the two streams reads its body under a deadline
	// (limits.read_body_timeout): even a handler that never reads the body
	// has net/http read up to 256 KB of it before the answer goes out.
	hardenOnly := policy.Harden(s.profile, policy.WithLogger(log))
	harden := func(next http.Handler) http.Handler { return hardenOnly(s.bodyDeadline(next)) }
	stream := policy.Middleware(s.profile, policy.WithLogger(log))
	notFound := http.HandlerFunc(s.handleNotFound)
	mux := http.NewServeMux()
	mux.Handle("OPTIONS /events", harden(s.handlePreflight("GET")))
	mux.Handle("OPTIONS /api/poll", harden(s.handlePreflight("GET")))
	mux.Handle("OPTIONS /api/publish", harden(s.handlePreflight("POST")))
	mux.Handle("/events", only(stream(http.HandlerFunc(s.handleEvents)), "GET", "HEAD"))
	// /ws hijacks its connection: no body deadline, which would stay on it.
	mux.Handle("/ws", hardenOnly(only(http.HandlerFunc(s.handleWS), "GET")))
	mux.Handle("/sseguard.js", harden(only(http.HandlerFunc(s.handleClientJS), "GET", "HEAD")))
	mux.Handle("/api/poll", harden(only(http.HandlerFunc(s.handlePoll), "GET", "HEAD")))
	mux.Handle("/api/publish", harden(only(http.HandlerFunc(s.handlePublish), "POST")))
	mux.Handle("OPTIONS /api/presence", harden(s.handlePreflight("GET")))
	mux.Handle("/api/presence", harden(only(http.HandlerFunc(s.handlePresence), "GET")))
	mux.Handle("/healthz", harden(only(http.HandlerFunc(s.handleHealth), "GET", "HEAD")))
	mux.Handle("/readyz", harden(only(http.HandlerFunc(s.handleReady), "GET", "HEAD")))
	if cfg.Telemetry.MetricsListen == "" {
		mux.Handle("/metrics", harden(s.metricsGate(only(s.MetricsHandler(), "GET"))))
	}
	s.routeDashboard(mux, harden, stream)
	// The pages' scripts, styles and icon get the page's headers (CSP,
	// X-Frame-Options, ...) under their own Content-Type: an SVG or a
	// script opened on its own is a document too.
	assetHeaders := func(w http.ResponseWriter, r *http.Request) { s.profile.ApplyTo(w, r, policy.KindPage) }
	mux.Handle("/", harden(only(web.Handler(notFound, assetHeaders), "GET", "HEAD")))
	// An unclean path (/a/../b, //events, %2e%2e) is refused, as the proxy
	// refuses it: a hop in front may resolve it to another path than the
	// one routed here (and http.ServeMux would answer it with an HTML
	// redirect outside the header policy).
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := policy.UncleanPath(r.URL); why != "" && r.Method != http.MethodConnect {
			harden(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				policy.WriteProblem(w, r, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, why))
			})).ServeHTTP(w, r)
			return
		}
		if len(r.Header["X-Forwarded-For"]) > 0 {
			s.checkForwarded(r)
		}
		if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" && s.guard.isTrusted(peerAddr(r)) {
			// Behind a trusted proxy that ends TLS, the page's origin is
			// https although this connection is not (the /ws Origin check).
			r = r.WithContext(policy.WithClientScheme(r.Context(), strings.ToLower(proto)))
		}
		mux.ServeHTTP(w, r)
	})
	return s
}

// checkForwarded warns, once a minute at most, that r carries
// X-Forwarded-For from a peer outside limits.trusted_proxies: a proxy in
// front that the hub does not trust makes every client behind it one
// address, which streams_per_ip then counts as one client.
func (s *Server) checkForwarded(r *http.Request) {
	peer := peerAddr(r)
	if s.guard.isTrusted(peer) {
		return
	}
	if n, ok := s.logs.Allow("untrusted X-Forwarded-For", time.Now()); ok {
		s.log.Warn("X-Forwarded-For from a peer not in limits.trusted_proxies: ignored, every client behind this peer counts as its address",
			"peer", peer.String(), "suppressed", n,
			"hint", "if this peer is your proxy, add it to limits.trusted_proxies (for nginx on the same machine: 127.0.0.1/32)")
	}
}

// handleNotFound is the answer for a path no route serves, and for
// /metrics to those who may not see it: the same 404, so that the route's
// existence is not revealed.
func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	policy.WriteProblem(w, r, policy.Errorf(http.StatusNotFound, policy.CodeNotFound, "no route for %s", r.URL.Path))
}

// metricsGate lets only loopback peers reach next, unless
// telemetry.metrics_public is set. The TCP peer decides, never
// X-Forwarded-For: a proxy on the same machine is itself a loopback peer,
// which is why the nginx files in deploy/ refuse /metrics themselves.
func (s *Server) metricsGate(next http.Handler) http.Handler {
	if s.cfg.Telemetry.MetricsPublic {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackPeer(r) {
			s.handleNotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackPeer reports whether r came over a connection from a loopback
// address.
func loopbackPeer(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// bodyDeadline bounds the time to read the request body to
// limits.read_body_timeout from when the handler starts. When the deadline
// fires during a read the client gets a 408 request_timeout problem and the
// connection is closed; the handler's own answer to the failed read is
// dropped, as http.TimeoutHandler drops a late one. Requests without a body
// pass untouched. Streams must not use it: the deadline stays on the
// connection after the body is read unless the handler reads it to EOF.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	d := s.cfg.Limits.ReadBodyTimeout.D()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d <= 0 || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		tw := &bodyTimeoutWriter{ResponseWriter: w}
		body, ok := httpserve.BodyDeadline(w, r.Body, d, func() { tw.timedOut(r) })
		if !ok {
			next.ServeHTTP(w, r) // a writer without deadlines, such as a test recorder
			return
		}
		r.Body = body
		next.ServeHTTP(tw, r)
	})
}

// bodyTimeoutWriter writes the 408 when the body read times out, and from
// then on drops what the handler writes.
type bodyTimeoutWriter struct {
	http.ResponseWriter
	mu          sync.Mutex
	wroteHeader bool
	timeout     bool
	dropped     http.Header // what the handler sets after the timeout
}

func (w *bodyTimeoutWriter) timedOut(r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timeout || w.wroteHeader {
		return // the answer is already on its way
	}
	w.timeout, w.wroteHeader = true, true
	prob := policy.NewProblem(http.StatusRequestTimeout, policy.CodeRequestTimeout, "the request body did not arrive in time")
	if r.ProtoMajor == 1 {
		// What is left of the body on the wire must not be read as the
		// next request.
		prob.Header = http.Header{"Connection": {"close"}}
	}
	policy.WriteProblem(w.ResponseWriter, r, prob)
}

func (w *bodyTimeoutWriter) Header() http.Header {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timeout {
		if w.dropped == nil {
			w.dropped = http.Header{}
		}
		return w.dropped
	}
	return w.ResponseWriter.Header()
}

func (w *bodyTimeoutWriter) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timeout {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bodyTimeoutWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timeout {
		return 0, errBodyTimeout
	}
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *bodyTimeoutWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timeout {
		return
	}
	w.wroteHeader = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController and the policy reach the writer below.
func (w *bodyTimeoutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errBodyTimeout is what a handler's writes return after a 408 was sent.
var errBodyTimeout = errors.New("server: the request body timed out; a 408 was sent")

// only refuses other methods with a 405 problem listing the allowed ones.
func only(next http.Handler, methods ...string) http.Handler {
	return policy.AllowMethods(methods...)(next)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.running.add(1)
	defer s.running.add(-1)
	s.handler.ServeHTTP(w, r)
}

// handlerCount counts the handlers running. http.Server.Shutdown does not
// wait for a handler that hijacked its connection, and a stream handler
// hijacks to park: Run waits for the count to reach zero before it closes
// the poller, so that no stream is handed to a closed poller (which would
// drop it without a retry hint).
type handlerCount struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n reaches zero; nil when no one waits
}

func (c *handlerCount) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	if c.n == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// wait returns once no handler runs, or false after d.
func (c *handlerCount) wait(d time.Duration) bool {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return true
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("server: a %T cannot be encoded: %v", v, err)) // a bug: answers are plain structs
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	select {
	case <-s.hub.Closing():
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, "the server is shutting down"))
		return
	default:
	}
	// The hub's view first (its periodic ping and the last commit: Ping
	// only reads, and a store that reads but cannot write, a full disk,
	// would pass it), then a ping of this request's own.
	if err := s.hub.Healthy(); err != nil {
		s.notReady(w, r, err, "the event store failed to store the last publish")
		return
	}
	if err := s.hub.Store().Ping(ctx); err != nil {
		s.notReady(w, r, err, "the event store is not reachable")
		return
	}
	trusted := make([]string, 0, len(s.guard.trusted))
	for _, p := range s.guard.trusted {
		trusted = append(trusted, p.String())
	}
	writeJSON(w, http.StatusOK, readyAnswer{Status: "ready", ClientAddress: s.guard.clientAddressMode(), TrustedProxies: trusted, Store: s.storeState()})
}

// notReady answers /readyz with 503: store_unavailable when the store
// cannot be reached, unavailable for any other failure.
func (s *Server) notReady(w http.ResponseWriter, r *http.Request, err error, detail string) {
	prob := policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, detail)
	if errors.Is(err, store.ErrUnavailable) {
		prob = policy.NewProblem(http.StatusServiceUnavailable, policy.CodeStoreUnavailable, "the event store cannot be reached")
		prob.RetryAfter = storeRetryAfter
	}
	prob.Err = err
	if n, ok := s.logs.Allow("readiness failed", time.Now()); ok {
		s.log.Warn("readiness failed", "err", err, "suppressed", n)
	}
	policy.WriteProblem(w, r, prob)
}

// storeState is the store part of /readyz's answer.
func (s *Server) storeState() telemetry.StoreState {
	ss := s.hub.StoreState()
	return telemetry.StoreState{Driver: s.cfg.Store.Driver, Reachable: ss.Reachable, Shared: ss.Shared, Following: ss.Following}
}

// readyAnswer is /readyz's 200 body. ClientAddress tells an operator
// behind a proxy whether per-address limits see each client ("x-forwarded-for")
// or only the TCP peer ("peer"), which behind a proxy is the proxy.
type readyAnswer struct {
	Status         string   `json:"status"`
	ClientAddress  string   `json:"client_address"`
	TrustedProxies []string `json:"trusted_proxies"`
	// Store says which store the node uses, whether its last periodic
	// ping succeeded, and, for a shared store, whether the node follows
	// every node's events.
	Store telemetry.StoreState `json:"store"`
}

// MetricsHandler serves the Prometheus exposition of the server's
// registry, for the main listener or a separate one (telemetry.metrics_listen).
func (s *Server) MetricsHandler() http.Handler {
	return telemetry.Handler(s.reg)
}

// Run serves on ln until ctx ends, and runs what the server owns for as
// long: the hub (h.Run), the poller that parks idle streams, and the
// metrics' per-second loop. When ctx ends it shuts down: it stops
// accepting, stops the hub so that open streams get a retry hint and end,
// waits up to the configured shutdown timeout for handlers to finish and
// then closes the connections left. It returns once all of that has
// stopped: nil after a stop by ctx. Run may be called once; it does not
// close the hub's store.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if !s.started.CompareAndSwap(false, true) {
		ln.Close()
		return errors.New("server: Run called twice")
	}
	if p, err := park.New(park.Options{
		Heartbeat:    s.cfg.Stream.Heartbeat.D(),
		WriteTimeout: s.cfg.Stream.WriteTimeout.D(),
	}); err == nil {
		s.pollerMu.Lock()
		s.poller = p
		s.pollerMu.Unlock()
	} else {
		s.log.Info("streams will not be parked", "err", err)
	}
	if p, err := park.New(park.Options{
		Heartbeat:    s.cfg.Stream.Heartbeat.D(),
		WriteTimeout: s.cfg.Stream.WriteTimeout.D(),
		Comment:      s.heartbeatEvent(),
	}); err == nil {
		s.pollerMu.Lock()
		s.beatPoller = p
		s.pollerMu.Unlock()
	}
	metricsCtx, stopMetrics := context.WithCancel(context.Background())
	metricsDone := make(chan struct{})
	go func() { defer close(metricsDone); s.metrics.Run(metricsCtx) }()
	defer func() { stopMetrics(); <-metricsDone }()
	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- s.hub.Run(hubCtx) }()
	// Presence stops last, once every stream has left: a graceful stop
	// removes this node's counts from the other nodes at once.
	presenceCtx, stopPresence := context.WithCancel(context.Background())
	presenceDone := make(chan struct{})
	go func() {
		defer close(presenceDone)
		if s.presence != nil {
			_ = s.presence.tracker.Run(presenceCtx)
		}
	}()
	defer func() { stopPresence(); <-presenceDone }()

	hs := httpserve.New(s, httpserve.Options{
		ReadHeaderTimeout: s.cfg.Limits.ReadHeaderTimeout.D(),
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
		TLS:               s.TLS,
		ShutdownTimeout:   s.cfg.ShutdownTimeout.D(),
		Logger:            s.log,
	})
	// Stopping the hub tells every stream to end with a retry hint.
	hs.OnShutdown(stopHub)
	err := hs.Serve(ctx, ln)
	// The parked streams last: only once no handler can park one more.
	if !s.running.wait(s.cfg.ShutdownTimeout.D()) {
		s.log.Warn("handlers still running after the shutdown; closing the parked streams")
	}
	for _, p := range []*park.Poller{s.poller, s.beatPoller} {
		if p != nil {
			p.Close(func() []byte { return sse.AppendRetry(nil, sse.ShutdownRetry()) })
		}
	}
	stopHub() // when serving failed, no shutdown hook ran
	t := time.NewTimer(s.cfg.ShutdownTimeout.D())
	defer t.Stop()
	select {
	case herr := <-hubDone:
		err = errors.Join(err, herr)
	case <-t.C:
		err = errors.Join(err, errors.New("server: the hub did not stop in time"))
	}
	return err
}

// withDefaults returns a copy of cfg with every field left at its zero
// value, a nil pointer included, set to its default (config.Config.Fill),
// as a file that omits the key would: the handlers then read every setting
// without a nil check. nil means the defaults.
func withDefaults(cfg *config.Config) *config.Config {
	if cfg == nil {
		return config.Default()
	}
	c := *cfg
	c.Fill()
	return &c
}
