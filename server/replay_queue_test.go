package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// TestHistoryBudgetQueuesInOrder: readers that find the budget full are
// counted as queued (the sseguard_replays_queued gauge) and get room in
// the order they came, one page at a time, not all at once.
func TestHistoryBudgetQueuesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New(store.Retention{})
		ctx := context.Background()
		if _, err := st.Append(ctx, []store.Record{{Topic: "t", Data: strings.Repeat("d", 3000)}}); err != nil {
			t.Fatal(err)
		}
		// Room for one page; a 3 KB page keeps it full.
		b := newHistoryBudget(4096, 4096, 1024, time.Minute)
		never := make(chan struct{})
		_, rel, err := b.read(ctx, never, st, []string{"t"}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		const waiting = 3
		served := make(chan int, waiting)
		releases := make([]chan struct{}, waiting)
		for i := range waiting {
			releases[i] = make(chan struct{})
			go func() {
				_, rel, err := b.read(ctx, never, st, []string{"t"}, "", 0)
				if err != nil {
					t.Errorf("reader %d: %v", i, err)
					served <- -1
					return
				}
				served <- i
				<-releases[i]
				rel()
			}()
			synctest.Wait() // reader i is queued before reader i+1 comes
			if got := b.Queued(); got != int64(i+1) {
				t.Fatalf("after %d readers found no room: %d queued", i+1, got)
			}
		}
		rel()
		for i := range waiting {
			synctest.Wait()
			if got := b.Queued(); got != int64(waiting-1-i) {
				t.Errorf("with reader %d served: %d queued, want %d", i, got, waiting-1-i)
			}
			select {
			case got := <-served:
				if got != i {
					t.Fatalf("served reader %d, want %d (arrival order)", got, i)
				}
			default:
				t.Fatalf("reader %d not served after the room was released", i)
			}
			select {
			case got := <-served:
				t.Fatalf("reader %d served while reader %d holds the only page", got, i)
			default:
			}
			close(releases[i])
		}
	})
}

// TestReplaysQueuedMetric: /metrics exposes the gauge.
func TestReplaysQueuedMetric(t *testing.T) {
	ts := start(t, nil, nil)
	resp, err := http.Get(ts.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "\nsseguard_replays_queued 0\n") {
		t.Errorf("/metrics lacks sseguard_replays_queued 0:\n%.2000s", body)
	}
}
