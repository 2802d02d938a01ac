// Command sseguard serves Server-Sent Events with hardened headers, and
// checks that streams stay hardened end to end.
//
// Usage:
//
//	sseguard <command> [flags]
//
// Run "sseguard help" for the list of commands and "sseguard <command>
// --help" for the flags of one.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
