package rawhttp

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// TestHeadErrors/timeout leaves its fake server's goroutine asleep
		// for 2 s after the test returns; a leak of the test, not of the
		// package, to remove once the test closes its connection itself.
		goleak.IgnoreAnyFunction("github.com/sseguard/sseguard/scan/rawhttp.TestHeadErrors.func1.1"))
}
