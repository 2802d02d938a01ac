// Package server is the HTTP API of sseguard serve.
//
// It routes requests to the stream, poll and publish handlers, wraps every
// route in the header policy of package policy, and owns the http.Server
// lifecycle: bounded header size and read time, and a shutdown that tells
// open streams to reconnect before closing them.
//
// It does not encode events (package sse) or store them (package store).
package server
