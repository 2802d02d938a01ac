package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes. Commands with their own codes (scan) document them.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// version is set at link time with -ldflags "-X main.version=v1.2.3".
var version = ""

// command is one subcommand. Each builds its own flag.FlagSet in run.
type command interface {
	name() string
	synopsis() string
	run(ctx context.Context, env *environ, args []string) error
}

// environ is what a command may touch of the process.
type environ struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func commands() []command {
	return []command{
		&serveCommand{},
		&proxyCommand{},
		&tokenCommand{},
		&scanCommand{},
		&benchCommand{},
		&refhubCommand{},
		&configCommand{},
		&healthCommand{},
		&versionCommand{},
	}
}

// usageError is a mistake on the command line; it carries a hint on what to
// type instead, and exits 2.
type usageError struct {
	msg, hint string
}

func (e *usageError) Error() string { return e.msg }

// exitCodeError makes Run print err without a hint and exit with code:
// for commands whose exit codes say more than "failed" (scan's findings,
// bench's unclean run). Other errors exit with exitError.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// Run runs the command line args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &environ{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			errOut := stderr // an unknown command is an error, on stderr
			for _, c := range commands() {
				if c.name() == args[1] {
					errOut = stdout // "help serve" is "serve --help", on stdout as asked for
				}
			}
			return Run(ctx, []string{args[1], "--help"}, stdin, stdout, errOut)
		}
		printUsage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name() != name {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var ue *usageError
		var ce *exitCodeError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "sseguard %s: %s\n", name, ue.msg)
			if ue.hint != "" {
				fmt.Fprintf(stderr, "hint: %s\n", ue.hint)
			}
			return exitUsage
		case errors.As(err, &ce):
			fmt.Fprintf(stderr, "sseguard %s: %v\n", name, ce.err)
			return ce.code
		default:
			fmt.Fprintf(stderr, "sseguard %s: %v\n", name, err)
			return exitError
		}
	}
	fmt.Fprintf(stderr, "sseguard: unknown command %q\n", name)
	if s := suggest(name); s != "" {
		fmt.Fprintf(stderr, "hint: did you mean %q? Run 'sseguard help' for the list.\n", s)
	} else {
		fmt.Fprintln(stderr, "hint: run 'sseguard help' for the list of commands.")
	}
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "sseguard serves Server-Sent Events safely and checks that it does.")
	fmt.Fprintln(w, "\nUsage:\n  sseguard <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name(), c.synopsis())
	}
	fmt.Fprintln(w, "\nRun 'sseguard <command> --help' for the flags of a command.")
}

// suggest returns the command whose name shares a prefix with s, if any.
func suggest(s string) string {
	for _, c := range commands() {
		n := c.name()
		if len(s) >= 2 && (strings.HasPrefix(n, s) || strings.HasPrefix(s, n)) {
			return n
		}
	}
	return ""
}

// newFlagSet returns a flag set whose errors are returned, not printed and
// exited on, and whose usage text names the command.
func newFlagSet(env *environ, c command, argsUsage string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name(), flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: sseguard %s %s\n\n%s\n\nFlags:\n", c.name(), argsUsage, c.synopsis())
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors and --help
// into flag.ErrHelp with the usage printed on stdout.
func parseFlags(env *environ, fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(env.stderr)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(env.stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if err != nil {
		return &usageError{msg: err.Error(), hint: fmt.Sprintf("run 'sseguard %s --help' for the flags", fs.Name())}
	}
	return nil
}

// versionCommand prints the version.
type versionCommand struct{}

func (*versionCommand) name() string { return "version" }
func (*versionCommand) synopsis() string {
	return "print the version and the Go version it was built with"
}

func (c *versionCommand) run(_ context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "version takes no arguments", hint: "run 'sseguard version'"}
	}
	fmt.Fprintf(env.stdout, "sseguard %s %s\n", buildVersion(), goVersion())
	return nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return ""
}

// parseInterspersed parses args allowing flags before and after the
// positional arguments, which it returns in order.
func parseInterspersed(env *environ, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(env, fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
