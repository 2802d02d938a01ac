//go:build !unix

package bench

// fdLimit is unknown here; Run then leaves the check to the dialer's errors.
func fdLimit() (uint64, bool) { return 0, false }
