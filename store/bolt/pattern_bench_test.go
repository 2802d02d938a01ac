package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/storetest"
)

// BenchmarkPatternReplay: see storetest.BenchPatternReplay.
func BenchmarkPatternReplay(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "events.db"), store.Retention{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchPatternReplay(b, s)
}
