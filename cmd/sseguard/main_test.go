package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds the binary that the end-to-end tests build once and share
// (e2e_test.go); TestMain removes it.
var binDir string

// TestMain checks that no test leaves a goroutine behind, and removes the
// shared binary.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binDir != "" {
			_ = os.RemoveAll(binDir)
		}
		os.Exit(code)
	}))
}
