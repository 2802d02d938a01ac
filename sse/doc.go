// Package sse implements the Server-Sent Events wire format as the WHATWG
// HTML standard defines it (section 9.2, "Server-sent events"), and the
// net/http pieces that stand on it.
//
// It provides:
//
//   - [Event] and its encoder, which can never emit a field or an event the
//     caller did not ask for: data is split on CR, LF and CRLF into separate
//     data lines, and an ID or a type holding CR, LF or NUL is refused.
//   - [Parser], the standard's parsing algorithm, byte for byte: a leading
//     BOM, all three line endings, comments, unknown fields, the last event ID
//     buffer and the reconnection time.
//   - [Stream], a writer for an http.ResponseWriter that completes the
//     hardened headers of package policy before the first byte, writes
//     retry at start, flushes every event and sets a deadline on every
//     write so that a stuck client cannot hold a goroutine; and its one
//     loop ([Stream.Run] from a channel, [Stream.Serve] from a [Feed] of
//     events encoded once for many streams), which sends a heartbeat after
//     the heartbeat interval without a write and ends the stream with the
//     right retry hint when the feed is cut off ([CutRetry]), the server
//     shuts down ([ShutdownRetry]) or the credentials expire (retry: 0).
//   - [Client], an EventSource for Go: it reconnects with the server's retry
//     and backoff, sends Last-Event-ID, and gives up where browsers do (a 204,
//     a status other than 200, or a wrong content type).
//
// Package sse does not route, authenticate, store or fan out events; the
// hub (package hub) and the HTTP API (package server) do.
package sse
