package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// unreachableStore is a memory store that can be made unreachable, as a
// stopped Redis is: Append and Ping fail with store.ErrUnavailable.
type unreachableStore struct {
	store.Store
	down atomic.Bool
}

var errDown = fmt.Errorf("redis store: %w: dial tcp 127.0.0.1:6379: connect: connection refused", store.ErrUnavailable)

func (u *unreachableStore) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	if u.down.Load() {
		return nil, errDown
	}
	return u.Store.Append(ctx, recs)
}

func (u *unreachableStore) Ping(ctx context.Context) error {
	if u.down.Load() {
		return errDown
	}
	return u.Store.Ping(ctx)
}

// TestHealthyFollowsPing checks that the periodic ping makes the hub
// unhealthy within one interval of the store going away, with no publish,
// and healthy again within one interval of its return, although the last
// commit failed: a node out of rotation must come back without a publish.
func TestHealthyFollowsPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &unreachableStore{Store: memory.New(store.Retention{})}
		h := startHub(t, Options{Store: st, PingInterval: 2 * time.Second, UnhealthyFor: time.Hour, Logger: quiet})
		synctest.Wait()
		if err := h.Healthy(); err != nil {
			t.Fatalf("Healthy with the store up: %v", err)
		}
		if s := h.StoreState(); !s.Reachable || s.Checked.IsZero() || s.Shared {
			t.Errorf("StoreState with the store up = %+v", s)
		}

		st.down.Store(true)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := h.Healthy(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Healthy one interval after the store went away, no publish: %v, want ErrUnavailable", err)
		}
		if s := h.StoreState(); s.Reachable || !errors.Is(s.Err, store.ErrUnavailable) {
			t.Errorf("StoreState with the store down = %+v", s)
		}
		if _, err := h.Publish(context.Background(), store.Record{Topic: "a", Data: "x"}); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Publish with the store down: %v", err)
		}

		st.down.Store(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if err := h.Healthy(); err != nil {
			t.Errorf("Healthy one interval after the store came back, no publish since the failed one: %v, want nil", err)
		}
		if s := h.StoreState(); !s.Reachable || s.Err != nil {
			t.Errorf("StoreState with the store back = %+v", s)
		}
	})
}

// TestHealthyKeepsWriteFailureDespitePing checks that a commit failure
// that is not the store being unreachable (a full disk) still counts
// while Ping succeeds: Ping need not write.
func TestHealthyKeepsWriteFailureDespitePing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &faultyStore{Store: memory.New(store.Retention{})}
		h := startHub(t, Options{Store: fs, PingInterval: time.Second, UnhealthyFor: time.Minute, Logger: quiet})
		fs.set(errors.New("write: no space left on device"), nil)
		if _, err := h.Publish(context.Background(), store.Record{Topic: "a", Data: "x"}); err == nil {
			t.Fatal("Publish on a full disk succeeded")
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if err := h.Healthy(); err == nil {
			t.Error("Healthy = nil after pings succeeded, want the write failure until UnhealthyFor")
		}
	})
}

// hangingTrim is a memory store whose Trim hangs until its context ends,
// as a Trim on a Redis that stopped answering would without timeouts.
type hangingTrim struct {
	store.Store
	trims atomic.Int32
}

func (s *hangingTrim) Trim(ctx context.Context, now time.Time) (int, error) {
	s.trims.Add(1)
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestTrimDoesNotHoldPublishes checks that publishes commit while a
// retention run hangs, that the run ends at TrimTimeout, and that no
// second run starts beside a hung one.
func TestTrimDoesNotHoldPublishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &hangingTrim{Store: memory.New(store.Retention{})}
		h := startHub(t, Options{Store: st, TrimInterval: time.Second, TrimTimeout: 10 * time.Second, Logger: quiet})
		time.Sleep(time.Second)
		synctest.Wait()
		if !h.StoreState().Trimming {
			t.Fatal("no retention run in progress after TrimInterval")
		}
		start := time.Now()
		publish(t, h, "a", "while trimming")
		if d := time.Since(start); d > 0 {
			t.Errorf("a publish during a hung Trim took %v", d)
		}
		time.Sleep(5 * time.Second) // four more ticks, while the first run hangs
		synctest.Wait()
		if n := st.trims.Load(); n != 1 {
			t.Errorf("%d retention runs started while the first hung, want 1", n)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if h.StoreState().Trimming && st.trims.Load() == 1 {
			t.Error("the hung retention run did not end at TrimTimeout")
		}
	})
}

// shardedStore is a memory store whose topic "down" is on a failed shard:
// its records get Appended.Err, the others are stored. The first Append
// waits for gate, so that the test can queue publishes behind it.
type shardedStore struct {
	store.Store
	gate    chan struct{}
	entered chan struct{} // closed when the first Append waits for gate
	gated   sync.Once
	batches chan int // the size of each Append after the first
}

func (s *shardedStore) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	first := false
	s.gated.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.gate
	} else {
		s.batches <- len(recs)
	}
	out := make([]store.Appended, len(recs))
	var up []store.Record
	var at []int
	for i, r := range recs {
		if r.Topic == "down" {
			out[i].Err = fmt.Errorf("127.0.0.1:7001: %w", store.ErrUnavailable)
			continue
		}
		up = append(up, r)
		at = append(at, i)
	}
	stored, err := s.Store.Append(ctx, up)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = stored[j]
	}
	return out, nil
}

// TestPartialBatchAnswersEachPublisher checks that when a sharded store
// fails one record of a batch, only that record's publisher gets the
// error: the other is answered with its event and its subscribers get it.
func TestPartialBatchAnswersEachPublisher(t *testing.T) {
	st := &shardedStore{Store: memory.New(store.Retention{}), gate: make(chan struct{}), entered: make(chan struct{}), batches: make(chan int, 4)}
	h := startHub(t, Options{Store: st, Logger: quiet})
	sub, _ := h.Subscribe([]string{"up"})
	defer sub.Close()
	sub.GoLive("")
	ctx := context.Background()
	gateDone := make(chan error, 1)
	go func() {
		_, err := h.Publish(ctx, store.Record{Topic: "gate"})
		gateDone <- err
	}()
	type result struct {
		res []store.Appended
		err error
	}
	down, up := make(chan result, 1), make(chan result, 1)
	// Queue both behind the held commit, so that they share the next one.
	<-st.entered
	deadline := time.Now().Add(10 * time.Second)
	go func() {
		res, err := h.Publish(ctx, store.Record{Topic: "down", Data: "x"})
		down <- result{res, err}
	}()
	go func() {
		res, err := h.Publish(ctx, store.Record{Topic: "up", Data: "y"})
		up <- result{res, err}
	}()
	for len(h.pub) != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polls the queue's length, with a deadline
	}
	if len(h.pub) != 2 {
		t.Fatalf("%d publishes queued, want 2", len(h.pub))
	}
	close(st.gate)
	if err := <-gateDone; err != nil {
		t.Fatal(err)
	}
	if n := <-st.batches; n != 2 {
		t.Fatalf("the next commit took %d records, want both", n)
	}
	if r := <-down; !errors.Is(r.err, store.ErrUnavailable) {
		t.Errorf("publisher of the failed shard: %+v, %v; want ErrUnavailable", r.res, r.err)
	}
	r := <-up
	if r.err != nil || len(r.res) != 1 || r.res[0].Event.Data != "y" {
		t.Fatalf("publisher of the live shard: %+v, %v; want its event", r.res, r.err)
	}
	if got := waitFrames(t, sub, 1); got[0].Event.ID != r.res[0].Event.ID {
		t.Errorf("subscriber got %q, want %q", got[0].Event.ID, r.res[0].Event.ID)
	}
	if s := h.Stats(); s.Published != 2 { // gate and up
		t.Errorf("Published = %d, want 2", s.Published)
	}
}
