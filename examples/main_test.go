// The examples in the folders below are run by these tests as users run
// them: as programs of their own (python3, node, sh with curl, and Go
// binaries), against the real sseguard binary on loopback.
package examples_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		bins.Remove()
		os.Exit(code)
	}))
}
