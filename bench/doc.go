// Package bench is the load generator behind "sseguard bench": it opens many
// Server-Sent Events streams against a hub on this machine, publishes events
// through the hub's HTTP API, and measures what a hub's users and operators
// care about:
//
//   - connect time per stream, from dial to response head;
//   - delivery latency of every (stream, event) pair: each event's data
//     carries its send time, and each stream subtracts it from its receive
//     time (one machine, one clock);
//   - events delivered, lost, duplicated and out of order, and streams
//     disconnected unexpectedly;
//   - publish throughput and latency;
//   - heartbeats received while the streams are held idle;
//   - the server's memory and CPU per stream, from /proc (Config.PID) or
//     its Prometheus /metrics (Config.MetricsURL), with what they
//     extrapolate to for a million streams, stated as an extrapolation;
//   - in a replay run (Config.Replay), the server's peak memory while
//     clients reconnect with an old Last-Event-ID, or poll from an old
//     cursor, and never read the answer, whether the server ends them, and
//     how fast clients that do read get the whole history;
//   - in a reconnect storm (Replay.Storm), how long many clients that
//     reconnect at once with their Last-Event-ID take to catch up and go
//     live, refusals, duplicates, and the server's peak memory.
//
// Publishes go over kept-alive HTTP/1.1 connections with a client of the
// bench's own (pubConn), as wrk does: net/http's client costs about three
// times the CPU per publish, which on shared cores the hub under test
// loses.
//
// Run does one bounded run and returns a [Report]:
//
//	rep, err := bench.Run(ctx, bench.Config{
//		URL:     "http://127.0.0.1:8080",
//		Streams: 10000,
//		Events:  20,
//		Rate:    5,
//		PID:     hubPID,
//	}, os.Stderr)
//	if err != nil { ... }
//	rep.WriteText(os.Stdout)
//
// The hub must answer GET /events?topic=T with text/event-stream and
// POST /api/publish with a JSON body {"topic","data","type"} and a 2xx, as
// sseguard serve and the naive reference hub (package bench/naive) do.
//
// Safety: the generator only ever sends traffic to loopback addresses. The
// target, every source address and the metrics URL must be in 127.0.0.0/8
// or be ::1, and a host name must resolve to loopback only; anything else
// is refused with [ErrNotLoopback] before a byte is sent. Every run is
// bounded in streams, events, memory and time (Config.Duration), and when
// Run returns every goroutine and connection it made is gone.
//
// Cost: each stream is one TCP connection with two 512-byte buffers and a
// goroutine that reads it with a small line reader, about 10 KB in the
// generator, so one process holds as many streams as its open file limit
// allows. Streams can be spread over several source addresses
// (Config.Sources, such as 127.0.0.1 to 127.0.0.8) to pass one address's
// ephemeral port range.
//
// Package bench is not a general HTTP load tester, and its figures are only
// comparable with figures measured in the same run on the same machine:
// measure a reference (bench/naive) side by side.
package bench
