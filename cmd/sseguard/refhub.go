package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/sseguard/sseguard/bench/naive"
	"github.com/sseguard/sseguard/internal/httpserve"
)

// refhubCommand serves the naive reference hub, the measuring stick that
// "sseguard bench" compares sseguard against in the same run.
type refhubCommand struct{}

func (*refhubCommand) name() string { return "refhub" }
func (*refhubCommand) synopsis() string {
	return "serve the naive net/http reference hub on loopback, for bench comparisons"
}

func (c *refhubCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "[flags]")
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on; port 0 picks a free one")
	certFile := fs.String("tls-cert", "", "serve HTTPS (and HTTP/2) with this PEM certificate chain; needs --tls-key")
	keyFile := fs.String("tls-key", "", "the PEM key of --tls-cert")
	pprofAddr := fs.String("pprof", "", "serve Go profiles (net/http/pprof) on this loopback address, to profile the reference hub as sseguard serve --pprof does")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0)), hint: "run 'sseguard refhub --help'"}
	}
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--listen %q: want IP:PORT", *listen), hint: "for example --listen 127.0.0.1:8090"}
	}
	if !ap.Addr().IsLoopback() {
		return &usageError{msg: fmt.Sprintf("--listen %s is not loopback: the reference hub has no authentication", *listen), hint: "use 127.0.0.1:PORT or [::1]:PORT"}
	}
	if (*certFile == "") != (*keyFile == "") {
		return &usageError{msg: "--tls-cert and --tls-key go together"}
	}
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *pprofAddr != "" {
		if lb, err := loopbackAddr(*pprofAddr); err != nil || !lb {
			return &usageError{msg: fmt.Sprintf("--pprof %q: want a loopback host:port", *pprofAddr), hint: "such as 127.0.0.1:6060"}
		}
		stop, err := servePprof(*pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	tlsConfig, err := httpserve.LoadTLS(httpserve.TLSFiles{CertFile: *certFile, KeyFile: *keyFile})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := httpserve.New(naive.New(), httpserve.Options{
		ShutdownTimeout: 5 * time.Second,
		TLS:             tlsConfig,
		Logger:          log,
	})
	// Streams end with ctx, so that shutting down does not wait for them.
	srv.HTTP.BaseContext = func(net.Listener) context.Context { return ctx }
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	fmt.Fprintf(env.stdout, "listening on %s://%s\n", scheme, ln.Addr())
	return srv.Serve(ctx, ln)
}
