package bench_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/bench"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// TestRunAcrossNodes runs the generator against two hub nodes that share
// a store (memory.Shared, whose IDs are topic.offset): streams on node b,
// publishes on node a, then both spread over both. Every event arrives
// once, and none counts as out of order although its offset passes from
// 9 to 10 (string order would say it went back).
func TestRunAcrossNodes(t *testing.T) {
	st := memory.NewShared(store.Retention{})
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := config.Default()
	zero := 0
	cfg.Limits.StreamsPerPrincipal = &zero // one token drives every stream
	cfg.Limits.StreamsPerIP = &zero
	a := servertest.Start(t, cfg, servertest.WithStore(st), servertest.WithSecret(secret))
	b := servertest.Start(t, cfg, servertest.WithStore(st), servertest.WithSecret(secret))
	// A stream opened before its node follows the store is cut loose
	// when the feed starts.
	deadline := time.Now().Add(10 * time.Second)
	for !a.Hub.StoreState().Following || !b.Hub.StoreState().Following {
		if time.Now().After(deadline) {
			t.Fatal("the nodes do not follow the shared store")
		}
		time.Sleep(time.Millisecond) // polls the nodes' state, with a deadline
	}
	tok := a.Token(t, "bench", auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}})
	for _, tt := range []struct {
		name             string
		streams, publish []string
	}{
		{"streams on b, publishes on a", []string{b.URL}, []string{a.URL}},
		{"both on both", []string{a.URL, b.URL}, []string{a.URL, b.URL}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := bench.Run(context.Background(), bench.Config{
				URL:         a.URL,
				StreamURLs:  tt.streams,
				PublishURLs: tt.publish,
				Token:       tok,
				Topic:       "bench-" + tt.name[:4],
				Streams:     20,
				Events:      40,
				Publishers:  4,
				Settle:      -1,
				Duration:    time.Minute,
			}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if p := rep.Problems(); len(p) > 0 {
				t.Errorf("problems: %v", p)
			}
			if rep.Delivery.Delivered != 20*40 || rep.Delivery.Duplicates != 0 || rep.Delivery.OutOfOrder != 0 || rep.Publish.Accepted != 40 {
				t.Errorf("delivered %d (want %d), duplicates %d, out of order %d, accepted %d",
					rep.Delivery.Delivered, 20*40, rep.Delivery.Duplicates, rep.Delivery.OutOfOrder, rep.Publish.Accepted)
			}
		})
	}
}
