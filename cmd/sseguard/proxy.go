package main

import (
	"context"
	"fmt"
	"net"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/proxy"
)

// proxyCommand runs the hardening reverse proxy in front of an existing
// SSE backend.
type proxyCommand struct{}

func (*proxyCommand) name() string { return "proxy" }
func (*proxyCommand) synopsis() string {
	return "harden an existing SSE backend: policy headers, heartbeats, problem errors, drift logs"
}

// loadProxyConfig reads the proxy configuration: the file (flag, else
// env), then env overrides, then flag overrides, then defaults and
// validation.
func loadProxyConfig(env *environ, file, upstream, listen, metrics string) (*proxy.Config, error) {
	if file == "" {
		file = env.getenv("SSEGUARD_PROXY_CONFIG")
	}
	cfg := &proxy.Config{}
	if file != "" {
		c, err := proxy.LoadConfig(file)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	for _, o := range []struct {
		dst       *string
		env, flag string
	}{
		{&cfg.Upstream, "SSEGUARD_PROXY_UPSTREAM", upstream},
		{&cfg.Listen, "SSEGUARD_PROXY_LISTEN", listen},
		{&cfg.MetricsListen, "SSEGUARD_PROXY_METRICS", metrics},
	} {
		if v := env.getenv(o.env); v != "" {
			*o.dst = v
		}
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if cfg.Upstream == "" && !anyRouteUpstream(cfg) {
		return nil, &usageError{msg: "no upstream: --upstream is required",
			hint: "sseguard proxy --upstream http://127.0.0.1:3000 (or upstream: in --config)"}
	}
	cfg.Fill()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func anyRouteUpstream(cfg *proxy.Config) bool {
	for _, r := range cfg.Routes {
		if r.Upstream != "" {
			return true
		}
	}
	return false
}

func (c *proxyCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "--upstream URL [flags]")
	upstream := fs.String("upstream", "", "the SSE backend, such as http://127.0.0.1:3000 (env SSEGUARD_PROXY_UPSTREAM); routes without their own upstream go here")
	listen := fs.String("listen", "", "address to listen on (env SSEGUARD_PROXY_LISTEN; default "+proxy.DefaultListen+")")
	file := fs.String("config", "", "YAML proxy configuration file, see docs/proxy.md (env SSEGUARD_PROXY_CONFIG)")
	metrics := fs.String("metrics", "", "serve Prometheus metrics on /metrics at this separate address (env SSEGUARD_PROXY_METRICS); off by default")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0)), hint: "flags go before arguments; run 'sseguard proxy --help'"}
	}
	cfg, err := loadProxyConfig(env, *file, *upstream, *listen, *metrics)
	if err != nil {
		return err
	}
	log := newLogger(&config.Config{Log: cfg.Log}, env.stderr)
	px, err := proxy.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer px.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.MetricsListen != "" {
		stop, err := serveMetrics(cfg.MetricsListen, px.Metrics(), log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	err = px.Serve(ctx, ln, func(a net.Addr) {
		scheme := "http"
		if cfg.TLS.CertFile != "" {
			scheme = "https"
		}
		log.Info("proxy listening", "addr", a.String(), "profile", cfg.Profile, "routes", len(cfg.Routes))
		fmt.Fprintf(env.stdout, "sseguard proxy is listening on %s://%s\n", scheme, hostForURL(a))
		for _, r := range cfg.Routes {
			fmt.Fprintf(env.stdout, "  %-12s -> %s (kind %s, auth %s)\n", r.Prefix, r.Upstream, r.Kind, r.Auth)
		}
	})
	log.Info("stopped")
	return err
}
