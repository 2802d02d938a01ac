// Package httpserve runs an http.Server the way every sseguard listener
// runs: built once with the timeouts and limits that bound a slow client,
// serving until a context ends, then stopping gracefully within a bound.
//
//	srv := httpserve.New(handler, httpserve.Options{ShutdownTimeout: 10 * time.Second})
//	srv.OnShutdown(func() { /* tell long-lived handlers to end */ })
//	err := srv.Serve(ctx, ln) // returns once the server and its hooks have stopped
//
// The stop follows net/http: Shutdown closes the listener, runs the
// shutdown hooks (where streams are told to end, since Shutdown does not
// wait for hijacked or long-lived connections on its own) and waits for
// handlers to return; past ShutdownTimeout, Close ends the connections
// left. LoadTLS reads the tls section that the hub's and the proxy's
// configuration files share, client certificates included.
//
// Package httpserve serves; it does not route, authenticate or set
// headers (see packages server, proxy and policy).
package httpserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultShutdownTimeout   = 10 * time.Second
)

// Options configure New. The zero value is useful: each field names its
// default.
type Options struct {
	// ReadHeaderTimeout bounds reading a request's header (slowloris).
	// Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle this long. Default
	// 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header. Default 16384.
	MaxHeaderBytes int
	// TLS, when not nil, makes Serve speak HTTPS (and HTTP/2, when its
	// NextProtos offer h2). Default nil: plain HTTP.
	TLS *tls.Config
	// ShutdownTimeout bounds the graceful part of a stop; past it the
	// remaining connections are closed. Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives net/http's own errors (at warn level) and the stop's
	// lines. Default slog.Default().
	Logger *slog.Logger
}

// Server is an http.Server with a bounded graceful stop. Create it with
// New; set more fields of HTTP, if needed, before Serve.
type Server struct {
	// HTTP is the server that Serve runs.
	HTTP *http.Server

	shutdownTimeout time.Duration
	log             *slog.Logger
	hooks           sync.WaitGroup
}

// New returns a Server for h with the limits of o. It starts nothing.
func New(h http.Handler, o Options) *Server {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{
		HTTP: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
			TLSConfig:         o.TLS,
			ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		},
		shutdownTimeout: o.ShutdownTimeout,
		log:             o.Logger,
	}
}

// OnShutdown registers f to run once when the server starts to stop (see
// http.Server.RegisterOnShutdown): the place to tell streams and other
// long-lived handlers to end, so that the graceful stop can finish. Serve
// returns only after every f has returned. Call it before Serve.
func (s *Server) OnShutdown(f func()) {
	s.hooks.Add(1)
	var once sync.Once
	s.HTTP.RegisterOnShutdown(func() { once.Do(func() { defer s.hooks.Done(); f() }) })
}

// Serve serves on ln until ctx ends or serving fails, then stops: it
// calls Shutdown, which closes ln, starts the OnShutdown hooks and waits
// for handlers to return, for up to the shutdown timeout, and then Close,
// which ends the connections left. It returns once the server has stopped
// and the hooks have returned: nil after a stop by ctx, else the error
// that ended serving or stopping. ln is closed on return.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// ServeTLS can fail before it takes ln over.
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		if s.HTTP.TLSConfig != nil {
			errc <- s.HTTP.ServeTLS(ln, "", "")
			return
		}
		errc <- s.HTTP.Serve(ln)
	}()
	var serveErr error
	select {
	case serveErr = <-errc:
		// Serving failed: what is still open stops as it would at the
		// end, hooks included.
	case <-ctx.Done():
		s.log.Info("shutting down", "timeout", s.shutdownTimeout.String())
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	err := s.HTTP.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown timed out; closing remaining connections")
		err = s.HTTP.Close()
	}
	s.hooks.Wait()
	if serveErr != nil {
		return errors.Join(fmt.Errorf("serve: %w", serveErr), err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
