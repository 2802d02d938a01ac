// Package policy is sseguard's one source of truth for response headers,
// content negotiation and error responses.
//
// The server, the proxy and the scanner all read the same [Profile]: the
// server and the proxy apply it, the scanner checks responses against it, so
// the three can never disagree about what a hardened response looks like.
//
// A Profile lists, for each kind of response ([KindStream], [KindJSON],
// [KindProblem], [KindPage]), the headers it must carry, each with the reason
// it is there. Two profiles are built in: [Baseline], the minimal set most
// guides recommend, and [Strict], the default, which adds what intermediaries
// and browsers need to be told (no-transform, X-Accel-Buffering, a deny-all
// CSP on streams, Referrer-Policy, Cross-Origin-Resource-Policy).
//
// Also here:
//
//   - Accept negotiation ([ParseAccept], [Profile.CheckStreamAccept]): a
//     stream request must name text/event-stream itself in strict mode.
//   - [CSP], which builds Content-Security-Policy values and lints them.
//   - [Problem] and [WriteProblem], the only way sseguard writes an error: RFC
//     9457 application/problem+json with a stable machine code, a fallback URL,
//     Retry-After, no-store and nosniff.
//   - [Middleware] and [Recover] for net/http: headers enforced on every
//     response before its first byte, and panics turned into a 500 problem
//     (or an aborted stream once bytes were sent), never a stack trace.
//
// Package policy does not write event streams (package sse does) and does
// not authenticate (package auth does).
package policy
