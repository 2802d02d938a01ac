package main

import (
	"context"
	"fmt"

	"github.com/sseguard/sseguard/config"
)

// configCommand validates a configuration file.
type configCommand struct{}

func (*configCommand) name() string     { return "config" }
func (*configCommand) synopsis() string { return "config check FILE: validate a configuration file" }

func (c *configCommand) run(_ context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "check FILE")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "check" {
		return &usageError{msg: "want: config check FILE", hint: "for example: sseguard config check sseguard.yaml"}
	}
	path := fs.Arg(1)
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s is not valid:\n%w", path, err)
	}
	fmt.Fprintf(env.stdout, "%s: ok\n", path)
	return nil
}
