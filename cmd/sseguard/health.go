package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// healthCommand asks a running hub or proxy whether it is alive, for
// container health checks in images that have no curl: exit 0 on a 200,
// 1 otherwise.
type healthCommand struct{}

func (*healthCommand) name() string { return "health" }
func (*healthCommand) synopsis() string {
	return "check a running hub's /healthz (or /readyz): exit 0 when it answers 200"
}

func (c *healthCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "[URL]")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	target := "http://127.0.0.1:8080/healthz"
	switch fs.NArg() {
	case 0:
	case 1:
		target = fs.Arg(0)
	default:
		return &usageError{msg: "give at most one URL", hint: "sseguard health http://127.0.0.1:8080/readyz"}
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &usageError{msg: fmt.Sprintf("%q is not an http or https URL", target), hint: "sseguard health http://127.0.0.1:8080/healthz"}
	}
	if *timeout <= 0 {
		return &usageError{msg: "--timeout must be positive", hint: "for example --timeout 3s"}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s", u.Redacted(), res.Status)
	}
	fmt.Fprintf(env.stdout, "%s: %s\n", u.Redacted(), res.Status)
	return nil
}
