package memory_test

import (
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
	"github.com/sseguard/sseguard/store/storetest"
)

// BenchmarkPatternReplay: see storetest.BenchPatternReplay.
func BenchmarkPatternReplay(b *testing.B) {
	storetest.BenchPatternReplay(b, memory.New(store.Retention{}))
}
