// Package sseguardjs embeds the browser client, sseguard.js, so that the
// hub can serve the same bytes that npm ships at /sseguard.js. It holds no
// logic: the client itself is the ES module next to this file, tested with
// node's built-in runner (see node_test.go) and in Chromium from the server's
// browser tests.
package sseguardjs

import _ "embed"

// Source is sseguard.js, the ES module served at /sseguard.js with the page
// policy. It is the file published to npm, byte for byte.
//
//go:embed sseguard.js
var Source []byte
