package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sseguard/sseguard/bench"
)

// benchCommand is the load generator: streams, fan-out latency and server
// memory per stream, against a hub on loopback; or, with --replay-*, the
// server's memory while clients ask for its history and never read it.
type benchCommand struct{}

func (*benchCommand) name() string { return "bench" }
func (*benchCommand) synopsis() string {
	return "load a hub on loopback: streams, fan-out latency, loss, memory per stream"
}

func (c *benchCommand) run(ctx context.Context, env *environ, args []string) error {
	fs := newFlagSet(env, c, "URL [flags]")
	streams := fs.Int("streams", 100, "subscribers to open; 0 for a publish-only run (a replay run opens none)")
	topic := fs.String("topic", "bench", "topic to subscribe and publish to")
	token := fs.String("token", env.getenv("SSEGUARD_TOKEN"), "bearer token for streams and publishes (env SSEGUARD_TOKEN)")
	events := fs.Int("events", 20, "events to publish; 0 for a connect-and-hold run")
	rate := fs.Float64("rate", 5, "publishes per second; 0 for as fast as possible (throughput mode, and a replay run's default)")
	publishers := fs.Int("publishers", 0, "concurrent publish requests (default 1 with --rate, 64 with --rate 0)")
	eventType := fs.String("type", "", "event type of every publish (default none: message)")
	pad := fs.Int("pad", 0, "extra bytes of data per event")
	dataBytes := fs.Int("data-bytes", 0, "make each event's data exactly this many bytes (at least 64; overrides --pad)")
	replayStall := fs.Int("replay-stall", 0, "replay run: clients that reconnect with Last-Event-ID (--replay-from) and never read")
	replayPolls := fs.Int("replay-polls", 0, "replay run: clients that poll from --replay-from and never read the answer")
	replayRead := fs.Int("replay-read", 0, "replay run: clients that replay the whole history and read it (throughput)")
	storm := fs.Int("storm", 0, "replay run: a reconnect storm of this many clients, all reconnecting at once from --replay-from, reading the history, then one live event")
	replayFrom := fs.String("replay-from", "0", "replay run: the cursor the replays and polls send")
	replayWindow := fs.Duration("replay-window", 30*time.Second, "replay run: hold the stalled clients at most this long (set it above the hub's stream.write_timeout); also bounds the readers")
	anonymous := fs.Bool("anonymous", false, "replay run: the replay clients send no token (the topic must allow anonymous subscribers); --token still publishes")
	ramp := fs.String("ramp", "", "pace the connects: a duration to spread them over (30s) or a rate (2000/s); default as fast as --connect-concurrency allows")
	concurrency := fs.Int("connect-concurrency", 64, "connects in flight at most")
	hold := fs.Duration("hold", 0, "hold the streams idle this long before publishing, counting heartbeats and disconnects")
	settle := fs.Duration("settle", 2*time.Second, "idle time after connecting before the server's memory is sampled")
	drain := fs.Duration("drain", 5*time.Second, "wait this long after the last publish for every delivery")
	sources := fs.String("sources", "", "loopback source addresses for the streams: 127.0.0.1,127.0.0.2, 127.0.0.1-8 or 127.1.0.1-127.1.23.112 (at most 65536)")
	streamURLs := fs.String("stream-urls", "", "nodes of a cluster to open the streams on, round robin, instead of URL: http://127.0.0.1:8081,http://127.0.0.1:8082")
	publishURLs := fs.String("publish-urls", "", "nodes of a cluster to publish to (publisher i to node i mod n) instead of URL")
	pid := fs.Int("pid", 0, "server process to read memory and CPU from (/proc)")
	metrics := fs.String("metrics", "", "server's Prometheus URL to read process memory and CPU from, such as http://127.0.0.1:8080/metrics")
	duration := fs.Duration("duration", 5*time.Minute, "cap on the whole run")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	useTLS := fs.Bool("tls", false, "streams and publishes over TLS (the URL's http:// read as https://; an https:// URL implies it); needs --ca-file or --insecure")
	caFile := fs.String("ca-file", "", "with --tls: PEM file of the CAs that issued the hub's certificate")
	insecure := fs.Bool("insecure", false, "with --tls: do not verify the hub's certificate (the target is loopback only)")
	h2 := fs.Int("h2", 0, "with --tls: multiplex the streams over this many HTTP/2 connections (0: one HTTP/1.1 connection per stream)")

	pos, err := parseInterspersed(env, fs, args) // flags before and after the URL
	if err != nil {
		return err
	}
	// A replay run publishes its history as fast as it can and opens no
	// live streams, unless told otherwise.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	replay := *replayStall > 0 || *replayPolls > 0 || *replayRead > 0 || *storm > 0
	if replay && !set["rate"] {
		*rate = 0
	}
	switch {
	case len(pos) == 0:
		return &usageError{msg: "missing the hub's URL", hint: "sseguard bench http://127.0.0.1:8080 --streams 1000"}
	case len(pos) > 1:
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", pos[1]), hint: "run 'sseguard bench --help'"}
	}

	target := pos[0]
	if rest, ok := strings.CutPrefix(target, "http://"); ok && *useTLS {
		target = "https://" + rest
	}
	if (*caFile != "" || *insecure || *h2 > 0) && !strings.HasPrefix(target, "https://") {
		return &usageError{msg: "--ca-file, --insecure and --h2 need --tls (or an https:// URL)"}
	}
	cfg := bench.Config{
		URL:                target,
		CAFile:             *caFile,
		Insecure:           *insecure,
		H2Conns:            *h2,
		Streams:            noneIfZero(*streams),
		Topic:              *topic,
		Token:              *token,
		Events:             noneIfZero(*events),
		Rate:               *rate,
		Publishers:         *publishers,
		EventType:          *eventType,
		PadBytes:           *pad,
		DataBytes:          *dataBytes,
		ConnectConcurrency: *concurrency,
		Hold:               *hold,
		Settle:             noneIfZeroDuration(*settle),
		Drain:              *drain,
		PID:                *pid,
		MetricsURL:         *metrics,
		Duration:           *duration,
		Replay: bench.Replay{
			Stalled:   *replayStall,
			Polls:     *replayPolls,
			Readers:   *replayRead,
			Storm:     *storm,
			Cursor:    *replayFrom,
			Window:    *replayWindow,
			Anonymous: *anonymous,
		},
	}
	if replay && !set["streams"] {
		cfg.Streams = 0 // a replay run's none
	}
	if *ramp != "" {
		if r, ok := strings.CutSuffix(*ramp, "/s"); ok {
			n, err := strconv.ParseFloat(r, 64)
			if err != nil || n <= 0 {
				return &usageError{msg: fmt.Sprintf("--ramp %q: want a positive rate such as 2000/s", *ramp), hint: "or a duration such as 30s"}
			}
			cfg.ConnectRate = n
		} else {
			d, err := time.ParseDuration(*ramp)
			if err != nil || d < 0 {
				return &usageError{msg: fmt.Sprintf("--ramp %q: want a duration such as 30s or a rate such as 2000/s", *ramp)}
			}
			cfg.Ramp = d
		}
	}
	srcs, err := bench.ParseSources(*sources)
	if err != nil {
		return &usageError{msg: "--" + err.Error(), hint: "loopback only, such as 127.0.0.1-8"}
	}
	cfg.Sources = srcs
	cfg.StreamURLs = splitList(*streamURLs)
	cfg.PublishURLs = splitList(*publishURLs)

	rep, err := bench.Run(ctx, cfg, env.stderr)
	if rep == nil {
		if errors.Is(err, bench.ErrConfig) {
			return &usageError{msg: err.Error(), hint: "run 'sseguard bench --help'"}
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return fmt.Errorf("write report: %w", jerr)
		}
	} else if werr := rep.WriteText(env.stdout); werr != nil {
		return fmt.Errorf("write report: %w", werr)
	}
	if err != nil {
		return err
	}
	if probs := rep.Problems(); len(probs) > 0 {
		return &exitCodeError{code: exitError, err: fmt.Errorf("run not clean: %s", strings.Join(probs, "; "))}
	}
	return nil
}

// noneIfZero maps a flag's 0 ("none") to bench.Config's negative "none",
// whose zero means a default.
func noneIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func noneIfZeroDuration(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
