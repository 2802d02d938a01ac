// Package scan is sseguard's header and streaming regression scanner: it
// probes a Server-Sent Events endpoint the way a browser and an attacker
// would, and reports every way the response falls short of the header
// policy in package policy, the single source of truth that the server
// enforces and this scanner checks.
//
// A scan ([Run]) makes these requests, each on a connection of its own
// through package rawhttp, which keeps header lines exactly as sent:
//
//   - stream: a GET with Accept: text/event-stream, watched for the
//     window (Config.Duration): time to headers and first byte, each
//     event's arrival, heartbeats, bursts that show buffering, and how the
//     stream ends. With Config.Publish the scanner publishes timestamped
//     events to an sseguard hub and measures true latency; events whose
//     data is JSON with a "ts" (unix milliseconds) are timed too;
//   - accept-any and accept-json: the same GET with Accept: */* and
//     Accept: application/json, which must get a 406 in the error shape;
//   - origin-foreign, origin-null and preflight: CORS must not reflect a
//     foreign Origin, allow null, or pair * with credentials;
//   - second-client, no-credentials and other-principal: once the stream
//     has had events, a second stream with the same credentials, one
//     without the token or cookie -H gave (the headers on the error path)
//     and, with Config.OtherCredentials, one with another principal's:
//     none may get the first stream's events replayed by a cache;
//   - reconnect: Last-Event-ID, as EventSource sends after a drop;
//   - page (optional): the HTML page that opens the stream, for its CSP.
//
// Once the probes are done, every [Rule] of the catalogue ([Rules]) is
// evaluated on what they recorded, as the analyzers of go/analysis are on
// a package: each failed check is a [Finding] with what was seen, a
// remediation and a reference, and a rule that could not be judged is
// listed with the reason (Report.NotApplicable). A [Report] is written
// as text, JSON, JUnit XML or SARIF 2.1.0; a [Baseline] accepts findings
// and pins header values, so that drift is reported. With
// Config.Concurrency the scan becomes a load run: many streams, ramped,
// every one's headers asserted, drops and latency counted.
//
// Package scan reads responses; it never changes the server. It is not a
// load generator for benchmarks (package bench is) and does not follow
// redirects, use proxies or send cookies of its own.
package scan
