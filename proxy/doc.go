// Package proxy is sseguard's hardening gateway: a reverse proxy, built on
// net/http/httputil.ReverseProxy, that sits in front of an existing
// Server-Sent Events backend and makes every response it forwards conform
// to the header policy of package policy. It is what the nginx snippet
// "add_header ... always" tries to do, done right: policy headers replace
// what the upstream sent instead of being appended to it.
//
// For each request the proxy:
//
//  1. refuses with 400 a path an upstream could read as another path (dot
//     or empty segments, backslashes, control characters, percent-encoded
//     dots, slashes, backslashes or percent signs) or one that reaches a
//     route only when letter case, ";" parameters or trailing dots are
//     ignored; picks the route with the longest matching path prefix (a
//     404 problem when none matches) and, at the edge, before any upstream
//     request and before reading any of the body: answers CORS preflights,
//     checks Accept (a stream route needs text/event-stream; strict mode
//     refuses */* alone), verifies the token on routes with auth jwt,
//     checks topics and the Origin; then bounds the request body in size
//     (413) and in time (408);
//  2. sends upstream the path it routed (decoded, escaped anew), only
//     allowlisted request headers (Last-Event-ID among them),
//     Accept-Encoding: identity, X-Forwarded-For/-Host/-Proto set by the
//     proxy alone, and the verified subject;
//  3. refuses, with the project's problem+json (Retry-After, fallback), an
//     upstream that cannot be reached (502), does not send its header in
//     time (504), answers 4xx or 5xx (the client error keeps its meaning;
//     a server error becomes 502, 503 and 504 stay), redirects, or answers
//     a stream route with another type. The upstream's error body never
//     reaches the client;
//  4. otherwise keeps only allowlisted upstream headers, sets the policy's
//     headers for the kind of response (each replacing any upstream value,
//     Connection only on HTTP/1.1; the page policy on every type that can
//     run script: HTML, XHTML, SVG, XML, or none), decodes a gzip or
//     deflate body the upstream compressed anyway, and logs every
//     difference as drift:
//     one line per route and header per DriftLogInterval, counted in
//     sseguard_proxy_header_drift_total{header,kind};
//  5. streams the body, flushed chunk by chunk; an idle stream gets a
//     ": keep-alive" comment, only at an event boundary; a stream the
//     upstream drops ends cleanly, and an event it left unfinished stays
//     unfinished, which the client's parser discards. A stream opened with
//     a token ends at the token's exp plus the leeway, at an event
//     boundary, with "retry: 0".
//
// An HTTP/1.x stream over plain TCP is parked once its head is written, as
// the hub parks its own (package internal/park): the client's connection is
// hijacked onto the hub's epoll set, the upstream's (opened for this stream
// alone) onto one of the proxy's, and a writer goroutine per CPU relays
// bytes between them, so that an idle stream holds no goroutine and no
// buffer. Every rule above holds for parked streams unchanged.
//
// Package proxy does not serve events itself (package server does) and
// does not cache, retry, load-balance or tunnel WebSocket upgrades.
package proxy
