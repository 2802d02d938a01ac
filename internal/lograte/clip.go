package lograte

import "unicode/utf8"

// MaxValue is how many bytes of a client-controlled value (an Origin, a
// path, an upstream's error text) a log line keeps by default.
const MaxValue = 200

// Clip bounds s, a value a client or an upstream controls, to at most max
// bytes (MaxValue when max <= 0) for a log line, cut at a character
// boundary and marked with "…" when cut, so one request cannot write
// kilobytes into the log.
func Clip(s string, max int) string {
	if max <= 0 {
		max = MaxValue
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
