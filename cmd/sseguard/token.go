package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
)

// tokenCommand mints a development token from the hub's signing secret,
// which it reads and never creates.
type tokenCommand struct{}

func (*tokenCommand) name() string { return "token" }
func (*tokenCommand) synopsis() string {
	return "mint a development token signed with the local secret"
}

func (c *tokenCommand) run(_ context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "[flags]")
	data := fs.String("data", "", "data folder holding secret.key (env SSEGUARD_DATA; default ./sseguard-data)")
	file := fs.String("config", "", "YAML configuration file (env SSEGUARD_CONFIG)")
	sub := fs.String("sub", "dev", "subject (sub claim)")
	subscribe := fs.String("subscribe", "", "comma-separated topic patterns the token may subscribe to (\"*\" for all, \"chat/*\" for a prefix)")
	publish := fs.String("publish", "", "comma-separated topic patterns the token may publish to")
	origins := fs.String("origins", "", "comma-separated browser origins the token may be used from (https://app.example); also needs cors.allowed_origins")
	presence := fs.Bool("presence", false, "let the holder see who is subscribed (the subjects in /api/presence and in join and leave events) on the topics it may subscribe to")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0)), hint: "run 'sseguard token --help'"}
	}
	if *subscribe == "" && *publish == "" {
		return &usageError{msg: "the token would grant nothing", hint: "add --subscribe TOPICS and/or --publish TOPICS"}
	}
	if *ttl <= 0 {
		return &usageError{msg: "--ttl must be positive", hint: "for example --ttl 24h"}
	}
	perms := auth.Permissions{Subscribe: splitList(*subscribe), Publish: splitList(*publish), Origins: splitList(*origins), Presence: *presence}
	if *presence && len(perms.Subscribe) == 0 {
		return &usageError{msg: "--presence needs --subscribe", hint: "presence shows the subjects of topics the token may subscribe to"}
	}
	for _, f := range []struct {
		flag string
		list []string
	}{{"--subscribe", perms.Subscribe}, {"--publish", perms.Publish}} {
		if err := checkPatterns(f.flag, f.list); err != nil {
			return err
		}
	}
	for _, o := range perms.Origins {
		canon, err := config.CanonicalOrigin(o)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("--origins: %v", err), hint: "for example --origins https://app.example,http://localhost:3000"}
		}
		if canon != o {
			// The hub compares origins exactly as browsers send them.
			return &usageError{msg: fmt.Sprintf("--origins: %q never matches what a browser sends", o), hint: fmt.Sprintf("write %q", canon)}
		}
	}
	cfg, err := loadConfig(env, *file, "", *data)
	if err != nil {
		return err
	}
	// Never create the secret here: a new one would sign tokens that the
	// hub, which has its own, refuses as "signature is not valid".
	path := cfg.SecretPath()
	secret, err := auth.LoadSecret(path)
	if errors.Is(err, iofs.ErrNotExist) {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return &usageError{
			msg: fmt.Sprintf("no signing secret at %s; 'sseguard token' signs with the hub's secret and never creates one", path),
			hint: "point it at the hub's: --data DIR (the hub's data folder), --config FILE (the hub's configuration, for auth.secret_file), " +
				"or SSEGUARD_DATA; the hub creates the secret at its first start",
		}
	}
	if err != nil {
		return err
	}
	tok, err := auth.Mint(secret, *sub, perms, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, tok)
	return nil
}

// checkPatterns refuses topic patterns that the hub would never match as
// meant: '*' is only a whole pattern ("*") or a prefix's end ("chat/*"),
// so "a*b" matches nothing but the topic "a*b", which is not a valid name.
func checkPatterns(flag string, patterns []string) error {
	for _, p := range patterns {
		if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
			return &usageError{msg: fmt.Sprintf("%s: %q has a '*' before its end", flag, p),
				hint: "'*' matches any topic, and a '*' at the end a prefix: \"chat/*\""}
		}
		if strings.ContainsFunc(p, unicode.IsSpace) {
			return &usageError{msg: fmt.Sprintf("%s: %q contains a space, which no topic does", flag, p), hint: "separate patterns with commas"}
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
