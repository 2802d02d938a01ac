package main

import (
	"context"
	"fmt"
	"net"

	"github.com/sseguard/sseguard/server"
)

// serveCommand runs the hub.
type serveCommand struct{}

func (*serveCommand) name() string { return "serve" }
func (*serveCommand) synopsis() string {
	return "run the SSE hub: streams with the hardened header policy"
}

func (c *serveCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "[flags]")
	listen := fs.String("listen", envOr(env, "SSEGUARD_LISTEN", "127.0.0.1:8080"), "address to listen on (env SSEGUARD_LISTEN)")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0)), hint: "flags go before arguments; run 'sseguard serve --help'"}
	}
	srv := server.New(server.Options{})
	return srv.ListenAndServe(ctx, *listen, func(a net.Addr) {
		fmt.Fprintf(env.stdout, "sseguard listening on http://%s\n", a)
		fmt.Fprintf(env.stdout, "subscribe: curl -N -H 'Accept: text/event-stream' http://%s/events\n", a)
	})
}

func envOr(env *environ, key, def string) string {
	if v := env.getenv(key); v != "" {
		return v
	}
	return def
}
