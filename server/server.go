package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
)

// Options configure a Server. The zero value serves the strict profile.
type Options struct {
	// Profile is the header policy. Nil means policy.Strict.
	Profile *policy.Profile
	// Heartbeat is the idle time before a stream gets a comment. Zero means
	// sse.DefaultHeartbeat.
	Heartbeat time.Duration
	// TickInterval is how often the demo topic emits an event. Zero means
	// one second.
	TickInterval time.Duration
	// ShutdownTimeout bounds a graceful shutdown. Zero means 10 s.
	ShutdownTimeout time.Duration
	// Logger receives one line per decision an operator needs. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Server is sseguard's HTTP server.
type Server struct {
	opts    Options
	profile *policy.Profile
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns a Server for opts.
func New(opts Options) *Server {
	s := &Server{opts: opts, profile: opts.Profile, log: opts.Logger}
	if s.profile == nil {
		s.profile = policy.Strict
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.opts.TickInterval <= 0 {
		s.opts.TickInterval = time.Second
	}
	if s.opts.ShutdownTimeout <= 0 {
		s.opts.ShutdownTimeout = 10 * time.Second
	}
	harden := policy.Harden(s.profile)
	s.mux = http.NewServeMux()
	s.mux.Handle("GET /events", policy.Middleware(s.profile)(http.HandlerFunc(s.handleEvents)))
	s.mux.Handle("GET /healthz", harden(http.HandlerFunc(s.handleHealth)))
	s.mux.Handle("/", harden(http.HandlerFunc(s.handleNotFound)))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	policy.WriteProblem(w, r, policy.Errorf(http.StatusNotFound, policy.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
}

// handleEvents streams the demo topic: a "tick" event per interval, with
// increasing IDs; Last-Event-ID resumes the count.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	var n uint64
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if v, err := strconv.ParseUint(id, 10, 64); err == nil {
			n = v
		}
	}
	st, err := sse.NewStream(w, r, &sse.StreamOptions{Heartbeat: s.opts.Heartbeat})
	if err != nil {
		s.log.Warn("stream refused", "err", err)
		return
	}
	events := make(chan sse.Event)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		defer close(events)
		t := time.NewTicker(s.opts.TickInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				n++
				e := sse.Event{ID: strconv.FormatUint(n, 10), Type: "tick",
					Data: fmt.Sprintf(`{"n":%d,"time":%q}`, n, now.UTC().Format(time.RFC3339Nano))}
				select {
				case events <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	_ = st.Run(ctx, events)
	cancel()
	for range events { // wait for the ticker goroutine to end
	}
}

// ListenAndServe serves on addr until ctx ends, then shuts down gracefully:
// it stops accepting, ends open streams and waits up to ShutdownTimeout.
// ready, when not nil, is called with the bound address once listening.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.Serve(ctx, ln, ready)
}

// Serve is ListenAndServe on an existing listener, which it closes.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(net.Addr)) error {
	streamsCtx, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return streamsCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	endStreams()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = hs.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
