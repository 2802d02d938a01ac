package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/sseguard/sseguard/store"
)

// History is read in pages bounded by bytes, not counts: a reconnect with
// an old Last-Event-ID (or a poll with an old cursor) must not be able to
// load a thousand large events into memory at once. Each page holds at
// most stream.queue_bytes of stored events, and all pages in flight on
// the server together hold at most stream.replay_bytes: a reader waits for
// room, and gives up after stream.write_timeout.

// eventOverhead bounds what a stored event holds besides its data: ID,
// topic, type and their headers.
const eventOverhead = 1024

// errReplayBusy means the replay budget stayed full for the whole wait.
var errReplayBusy = errors.New("server: the replay budget is exhausted")

// historyBudget hands out the bytes that pages of history may hold.
type historyBudget struct {
	sem      *semaphore.Weighted
	page     int64         // bytes one page may hold
	perPage  int           // events one page may take
	maxWait  time.Duration // how long a reader waits for room
	capacity int64
	queued   atomic.Int64 // readers waiting for room, in arrival order
}

// Queued returns the number of replays and polls waiting for room in the
// budget (the sseguard_replays_queued gauge). The semaphore serves them in
// the order they came, so a reconnect storm is replayed a budget's worth
// at a time rather than all at once.
func (b *historyBudget) Queued() int64 { return b.queued.Load() }

func newHistoryBudget(total, page, maxData int, maxWait time.Duration) *historyBudget {
	page = min(page, total)
	return &historyBudget{
		sem:      semaphore.NewWeighted(int64(total)),
		page:     int64(page),
		perPage:  max(1, page/(maxData+eventOverhead)),
		maxWait:  maxWait,
		capacity: int64(total),
	}
}

// pageSize returns the stored size of events, as a page accounts it.
func pageSize(events []store.Event) int64 {
	var n int64
	for _, e := range events {
		n += int64(len(e.ID) + len(e.Topic) + len(e.Type) + len(e.Data))
	}
	return n
}

// read reads one page of at most limit events (capped by the per-page
// bound) after cursor, holding room for it in the budget. The caller must
// call release once it no longer holds the page's events. closing aborts
// the wait for room.
func (b *historyBudget) read(ctx context.Context, closing <-chan struct{}, st store.Store, topics []string, after string, limit int) (store.Page, func(), error) {
	if !b.sem.TryAcquire(b.page) {
		if err := b.wait(ctx, closing); err != nil {
			return store.Page{}, nil, err
		}
	}
	held := b.page
	release := func() {
		if held > 0 {
			b.sem.Release(held)
			held = 0
		}
	}
	if limit <= 0 || limit > b.perPage {
		limit = b.perPage
	}
	page, err := st.Read(ctx, topics, after, limit)
	if err != nil {
		release()
		return page, nil, err
	}
	// Give back what the page did not need, so small events cost little.
	if used := min(pageSize(page.Events), held); used < held {
		b.sem.Release(held - used)
		held = used
	}
	return page, release, nil
}

// wait acquires a page's room, waiting at most maxWait, and less if ctx
// ends or the server starts closing.
func (b *historyBudget) wait(ctx context.Context, closing <-chan struct{}) error {
	b.queued.Add(1)
	defer b.queued.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, b.maxWait)
	defer cancel()
	go func() {
		select {
		case <-closing:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := b.sem.Acquire(wctx, b.page); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errReplayBusy
	}
	return nil
}
