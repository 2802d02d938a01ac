// Package apispec holds the conformance tests of docs/openapi.yaml, the
// OpenAPI 3.1 description of the HTTP API of sseguard serve. It has no
// code of its own and is not for import.
//
// The tests load the description with kin-openapi and check that it is a
// valid OpenAPI document; that its problem codes are exactly policy.Codes,
// each under the status policy gives it; that the header values it
// promises are those of the strict profile; and, against a hub served on
// loopback, that every response it lists is one the hub really gives (and
// the other way round), validating status, headers and body of each with
// openapi3filter. Responses that no request can provoke (a panic's 500)
// are named in the operation's x-untested extension with the reason.
package apispec
