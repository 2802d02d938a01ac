package sse_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// TestStreamWriteDeadlineFreesStuckClient leaves its feeding
		// goroutine blocked for up to 30 s after the handler gave up; a
		// leak of the test, not of the package, to remove once the test
		// stops that goroutine itself.
		goleak.IgnoreTopFunction("github.com/sseguard/sseguard/sse_test.TestStreamWriteDeadlineFreesStuckClient.func1"))
}
