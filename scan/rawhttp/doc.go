// Package rawhttp sends one HTTP request over a connection of its own and
// returns the response head exactly as it arrived: every header line kept,
// in order, with its name spelled as the server sent it, repeated lines
// never merged. It speaks HTTP/1.0 and HTTP/1.1 by reading the head itself
// from the connection, and HTTP/2 (over TLS with ALPN, or cleartext with
// prior knowledge) with golang.org/x/net/http2's Framer and HPACK decoder.
//
// net/http's client folds repeated header lines into one list and hides the
// framing of the body; a scanner that must see a duplicated Content-Type,
// or tell a chunked stream from a close-delimited one, cannot use it. This
// package is that scanner's transport: package scan builds its probes on it.
//
// Package rawhttp is not a general HTTP client: one request per connection,
// no redirects, no cookies, no proxies, no content decoding (the body is
// de-framed but not decompressed), and no connection reuse.
package rawhttp
