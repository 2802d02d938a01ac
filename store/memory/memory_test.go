package memory_test

import (
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
	"github.com/sseguard/sseguard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return memory.New(r)
	})
}

// TestSharedConformance runs the suite on per-topic numbering and vector
// cursors, the shape of store/redis.
func TestSharedConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return memory.NewShared(r)
	})
}
