package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/httpserve"
	"github.com/sseguard/sseguard/server"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/memory"
	redisstore "github.com/sseguard/sseguard/store/redis"
)

// serveCommand runs the hub.
type serveCommand struct{}

func (*serveCommand) name() string { return "serve" }
func (*serveCommand) synopsis() string {
	return "run the SSE hub: publish over HTTP, subscribe with EventSource, replay, poll"
}

// loadConfig reads the configuration: the defaults, the file (flag, else
// env SSEGUARD_CONFIG), then the environment (every key has a variable,
// config.EnvName), then the flags (--set KEY=VALUE in order, then --listen
// and --data), then validation, so that a later source can repair what an
// earlier one got wrong.
func loadConfig(env *environ, file, listen, data string, sets ...string) (*config.Config, error) {
	if file == "" {
		file = env.getenv("SSEGUARD_CONFIG")
	}
	cfg := config.Default()
	if file != "" {
		c, err := config.Load(file)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if err := cfg.ApplyEnv(env.getenv); err != nil {
		return nil, fmt.Errorf("invalid environment:\n%w", err)
	}
	for _, kv := range sets {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, &usageError{msg: fmt.Sprintf("--set %q: want KEY=VALUE", kv), hint: "for example: --set store.driver=redis --set store.redis.url=redis://127.0.0.1:6379"}
		}
		if err := cfg.Set(key, value); err != nil {
			return nil, &usageError{msg: "--set: " + err.Error(), hint: "keys are the file's, as docs/configuration.md lists them"}
		}
	}
	if listen != "" {
		cfg.Listen = listen
	}
	if data != "" {
		cfg.Data = data
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// setFlags collects repeated --set KEY=VALUE flags.
type setFlags []string

func (s *setFlags) String() string { return strings.Join(*s, " ") }

func (s *setFlags) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Log.Format
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	ret := cfg.Store.Retention()
	switch cfg.Store.Driver {
	case "memory":
		return memory.New(ret), nil
	case "redis":
		return openRedis(ctx, cfg, log)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	// A damaged file is refused here with an error that names it and says
	// what to do; serve prints it as it is.
	return bolt.Open(filepath.Join(cfg.Data, "events.db"), ret, &bolt.Options{SkipCheck: cfg.Store.SkipCheck})
}

// redisOpenTimeout bounds the first contact with Redis at start.
const redisOpenTimeout = 10 * time.Second

// openRedis connects to the Redis of store.redis. A Redis that cannot be
// reached at start is an error: serve exits, and its supervisor retries.
func openRedis(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	r := cfg.Store.Redis
	opts, err := r.Options()
	if err != nil {
		return nil, err
	}
	goredis.SetLogger(redisLogger{log})
	ctx, cancel := context.WithTimeout(ctx, redisOpenTimeout)
	defer cancel()
	st, err := redisstore.Open(ctx, redisstore.Config{
		Client:          goredis.NewUniversalClient(opts),
		Retention:       cfg.Store.Retention(),
		Prefix:          r.Prefix,
		MinReplicas:     r.MinReplicas,
		ReplicaTimeout:  r.ReplicaTimeout.D(),
		PatternPrefixes: r.PatternPrefixes,
	})
	if err != nil {
		return nil, fmt.Errorf("store.redis (%s): %w", redisWhere(r, opts), err)
	}
	return st, nil
}

// redisWhere names the Redis for messages, without a password.
func redisWhere(r config.StoreRedis, o *goredis.UniversalOptions) string {
	kind := "redis"
	switch {
	case r.Cluster:
		kind = "cluster"
	case r.MasterName != "":
		kind = "sentinel master " + r.MasterName
	}
	return kind + " at " + strings.Join(o.Addrs, ",")
}

// redisLogger sends go-redis's own messages (a dial that failed, a
// connection pool note) to the hub's log at debug level: the store's
// errors already say what failed, once per request.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}

func (c *serveCommand) run(ctx context.Context, env *environ, args []string) (err error) {
	fs := newFlagSet(env, c, "[flags]")
	listen := fs.String("listen", "", "address to listen on (env SSEGUARD_LISTEN; default 127.0.0.1:8080)")
	data := fs.String("data", "", "data folder for the store and the signing secret (env SSEGUARD_DATA; default ./sseguard-data)")
	file := fs.String("config", "", "YAML configuration file (env SSEGUARD_CONFIG)")
	var sets setFlags
	fs.Var(&sets, "set", "set a configuration key as the file would, over the file and the environment; repeatable: --set store.driver=redis --set store.redis.url=redis://127.0.0.1:6379")
	quiet := fs.Bool("quiet", false, "do not print the getting-started commands and tokens (they are printed only when no configuration file is given)")
	pprofAddr := fs.String("pprof", "", "serve Go profiles (net/http/pprof) on this separate loopback address, such as 127.0.0.1:6060; off by default")
	pprofUnsafe := fs.Bool("pprof-unsafe", false, "allow --pprof on an address that is not loopback (profiles reveal memory contents, tokens included)")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0)), hint: "flags go before arguments; run 'sseguard serve --help'"}
	}
	pprofExposed := false
	if *pprofAddr != "" {
		loopback, err := loopbackAddr(*pprofAddr)
		switch {
		case err != nil:
			return &usageError{msg: fmt.Sprintf("--pprof %q: %v", *pprofAddr, err), hint: "give host:port, such as 127.0.0.1:6060"}
		case !loopback && !*pprofUnsafe:
			return &usageError{msg: fmt.Sprintf("--pprof %q is not a loopback address: anyone who reaches it can read the process's memory", *pprofAddr),
				hint: "use 127.0.0.1:6060 (and an SSH tunnel), or add --pprof-unsafe if the address is firewalled"}
		}
		pprofExposed = !loopback
	}
	// The banner's development tokens are for the quick start only: with a
	// configuration file the hub is deployed, and its stdout is a journal.
	configFile := *file
	if configFile == "" {
		configFile = env.getenv("SSEGUARD_CONFIG")
	}
	banner := !*quiet && configFile == ""
	cfg, err := loadConfig(env, *file, *listen, *data, sets...)
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.stderr)
	defer setDefaultLogger(log)()
	secret, err := auth.LoadOrCreateSecret(cfg.SecretPath())
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	// The store is closed here and only here, once the server (and with it
	// the hub) has stopped or never started.
	served := false
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
		if served {
			log.Info("stopped")
		}
	}()
	h := hub.New(hub.Options{Store: st, QueueBytes: cfg.Stream.QueueBytes, Logger: log})
	verifier, stopJWKS, err := server.NewVerifier(ctx, cfg, secret, log)
	if err != nil {
		return err
	}
	defer stopJWKS()
	tlsConfig, err := server.TLSConfig(cfg)
	if err != nil {
		return err
	}
	srv := server.New(cfg, h, verifier, log)
	srv.TLS = tlsConfig

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // Run closes it too; this is for the returns before Run
	if *pprofAddr != "" {
		if pprofExposed {
			log.Warn("pprof is served on an address that is not loopback (--pprof-unsafe): whoever reaches it can read the process's memory, tokens included", "addr", *pprofAddr)
		}
		stopPprof, err := servePprof(*pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if cfg.Telemetry.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.Telemetry.MetricsListen, srv.MetricsHandler(), log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", cfg.Store.Driver, "data", cfg.Data, "profile", cfg.Profile)
	if banner {
		printGettingStarted(env.stdout, ln.Addr(), secret, tlsConfig != nil)
	}
	served = true
	return srv.Run(ctx, ln)
}

// printGettingStarted prints commands that work as printed: a subscribe and
// a publish with development tokens for the demo topic.
func printGettingStarted(w io.Writer, addr net.Addr, secret []byte, https bool) {
	now := time.Now()
	subTok, err1 := auth.Mint(secret, "dev-subscriber", auth.Permissions{Subscribe: []string{"demo"}}, 24*time.Hour, now)
	pubTok, err2 := auth.Mint(secret, "dev-publisher", auth.Permissions{Publish: []string{"demo"}}, 24*time.Hour, now)
	if err1 != nil || err2 != nil {
		return
	}
	base := "http://" + hostForURL(addr)
	if https {
		base = "https://" + hostForURL(addr)
	}
	fmt.Fprintf(w, "sseguard is listening on %s\n\n", base)
	fmt.Fprintf(w, "Subscribe (in one terminal):\n  curl -sN -H 'Accept: text/event-stream' -H 'Authorization: Bearer %s' '%s/events?topic=demo'\n\n", subTok, base)
	fmt.Fprintf(w, "Publish (in another):\n  curl -sS -X POST -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"topic\":\"demo\",\"data\":\"hello\"}' %s/api/publish\n\n", pubTok, base)
	fmt.Fprintf(w, "Demo page: %s/  (the publish token above works in its form)\n", base)
	fmt.Fprintf(w, "These development tokens expire in 24h; mint others with 'sseguard token'.\n")
}

// setDefaultLogger makes l the default logger, so that whatever logs
// through slog.Default or the log package (libraries, net/http) joins the
// configured log as records of its format, and returns what restores the
// previous state.
func setDefaultLogger(l *slog.Logger) (restore func()) {
	prev, out, flags := slog.Default(), stdlog.Writer(), stdlog.Flags()
	slog.SetDefault(l)
	return func() {
		slog.SetDefault(prev)
		stdlog.SetOutput(out)
		stdlog.SetFlags(flags)
	}
}

// loopbackAddr reports whether the host:port addr listens on loopback
// only: localhost, or an IP address in 127.0.0.0/8 or ::1. An empty host
// means every interface.
func loopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback(), nil
}

// hostForURL turns a wildcard listen address into one a client can dial.
func hostForURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// servePprof serves the Go profiler on its own listener, never on the
// public one, and returns a function that stops it.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serveSide("pprof", addr, mux, log)
}

// serveMetrics serves the Prometheus exposition on its own listener, an
// internal port, and returns a function that stops it.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return serveSide("metrics", addr, mux, log)
}

// serveSide serves an operator-only handler on a listener of its own, and
// returns a function that stops it (at once: a profile or a scrape can be
// asked again) and waits until it has.
func serveSide(name, addr string, h http.Handler, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", name, err)
	}
	hs := httpserve.New(h, httpserve.Options{Logger: log}).HTTP
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	log.Info(name+" listening", "addr", ln.Addr().String())
	return func() { hs.Close(); <-done }, nil
}
