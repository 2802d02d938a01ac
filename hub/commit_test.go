package hub

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/memory"
)

// faultyStore is a real store whose Append fails or panics on demand:
// failure injection for the commit path, which a healthy disk does not
// offer.
type faultyStore struct {
	store.Store
	mu    sync.Mutex
	err   error // Append returns it when set
	panic any   // Append panics with it when set
}

func (f *faultyStore) set(err error, panicValue any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.panic = err, panicValue
}

func (f *faultyStore) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	f.mu.Lock()
	err, p := f.err, f.panic
	f.mu.Unlock()
	if p != nil {
		panic(p)
	}
	if err != nil {
		return nil, err
	}
	return f.Store.Append(ctx, recs)
}

// quiet discards the log of tests that do not read it.
var quiet = slog.New(slog.DiscardHandler)

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), store.Retention{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStorePanicFailsOnlyItsBatch checks that a store that panics in
// Append fails that batch's publishers with an error, and that the
// committer, and so the process, goes on.
func TestStorePanicFailsOnlyItsBatch(t *testing.T) {
	fs := &faultyStore{Store: openBolt(t)}
	h := startHub(t, Options{Store: fs, Logger: quiet})
	sub, _ := h.Subscribe([]string{"a"})
	defer sub.Close()
	sub.GoLive("")

	fs.set(nil, "page 7: invalid type")
	_, err := h.Publish(context.Background(), store.Record{Topic: "a", Data: "lost"})
	if err == nil || !strings.Contains(err.Error(), "page 7: invalid type") {
		t.Fatalf("Publish while the store panics: %v, want the panic as an error", err)
	}
	if err := h.Healthy(); err == nil {
		t.Error("Healthy = nil after a panicking commit")
	}

	fs.set(nil, nil)
	e := publish(t, h, "a", "kept")
	if got := waitFrames(t, sub, 1); got[0].Event.ID != e.ID {
		t.Errorf("subscriber got %v, want %v", got[0].Event, e)
	}
	if err := h.Healthy(); err != nil {
		t.Errorf("Healthy after a successful commit: %v", err)
	}
}

// TestHealthyReflectsLastCommit checks that Healthy reports a failed
// commit (a full disk, which Store.Ping does not see), clears after a
// successful one, and clears by itself after Options.UnhealthyFor.
func TestHealthyReflectsLastCommit(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now.Store(&t0)
	clock := func() time.Time { return *now.Load() }
	fs := &faultyStore{Store: openBolt(t)}
	h := startHub(t, Options{Store: fs, Now: clock, UnhealthyFor: 30 * time.Second, Logger: quiet})
	ctx := context.Background()

	if err := h.Healthy(); err != nil {
		t.Fatalf("Healthy before any commit: %v", err)
	}
	full := fmt.Errorf("bolt store: append: write /data/events.db: %w", syscall.ENOSPC)
	fs.set(full, nil)
	if _, err := h.Publish(ctx, store.Record{Topic: "a", Data: "x"}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Publish on a full disk: %v", err)
	}
	if err := fs.Ping(ctx); err != nil {
		t.Fatalf("Ping (reads only) = %v; the test needs a store that reads fine", err)
	}
	if err := h.Healthy(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Healthy after a failed commit = %v, want the commit's error", err)
	}

	fs.set(nil, nil)
	publish(t, h, "a", "y")
	if err := h.Healthy(); err != nil {
		t.Errorf("Healthy after a successful commit = %v, want nil", err)
	}

	fs.set(full, nil)
	_, _ = h.Publish(ctx, store.Record{Topic: "a", Data: "z"})
	later := t0.Add(29 * time.Second)
	now.Store(&later)
	if err := h.Healthy(); err == nil {
		t.Error("Healthy = nil 29s after a failed commit, want the error for 30s")
	}
	later = t0.Add(30 * time.Second)
	now.Store(&later)
	if err := h.Healthy(); err != nil {
		t.Errorf("Healthy 30s after a failed commit = %v, want nil (back into rotation)", err)
	}
}

// TestDamagedBoltFileFailsPublish damages the pages of one topic in a real
// bolt file under a running hub: publishing to it fails with
// store.ErrCorrupt (the server answers 503), the process lives on,
// publishes to other topics still commit, and the store's Ping reports the
// damage for readiness.
func TestDamagedBoltFileFailsPublish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	st, err := bolt.Open(path, store.Retention{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := startHub(t, Options{Store: st, Logger: quiet})
	ctx := context.Background()
	const marker = "VICTIM-hub-51c2"
	recs := make([]store.Record, 200)
	for i := range recs {
		recs[i] = store.Record{Topic: "victim", Data: marker + strings.Repeat("v", 200)}
	}
	if _, err := h.Publish(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	publish(t, h, "other", "before")

	// Give every page that holds the victim's events another page number,
	// as failing storage would: bbolt panics when it reads one.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	damaged := 0
	for p := 0; (p+1)*ps <= len(b); p++ {
		if bytes.Contains(b[p*ps:(p+1)*ps], []byte(marker)) {
			if _, err := f.WriteAt(binary.NativeEndian.AppendUint64(nil, uint64(p+7)), int64(p*ps)); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
	}
	f.Close()
	if damaged == 0 {
		t.Fatal("found no page with the victim's events")
	}

	_, err = h.Publish(ctx, store.Record{Topic: "victim", Data: "after"})
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Publish to the damaged topic: %v, want store.ErrCorrupt", err)
	}
	if err := h.Healthy(); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Healthy after the failed commit = %v, want store.ErrCorrupt", err)
	}
	publish(t, h, "other", "after")
	if err := st.Ping(ctx); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Ping after the damage was found = %v, want store.ErrCorrupt", err)
	}
}

// logRecord is one line a test logger received.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

// recorder is a slog.Handler that keeps what it receives.
type recorder struct {
	mu      sync.Mutex
	records []logRecord
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]any{}
	rec.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.Any()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, logRecord{level: rec.Level, msg: rec.Message, attrs: attrs})
	return nil
}

func (r *recorder) lines() []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logRecord(nil), r.records...)
}

// TestStoreFailuresLogAtMostOnceAMinute fails 200 publishes in a burst and
// checks the log: the first failure at once, then one line a minute that
// counts the rest, and one line when commits succeed again.
func TestStoreFailuresLogAtMostOnceAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		fs := &faultyStore{Store: memory.New(store.Retention{})}
		h := New(Options{Store: fs, Logger: slog.New(rec)})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			_ = h.Run(ctx)
			close(done)
		}()
		defer func() {
			cancel()
			<-done
		}()

		full := fmt.Errorf("write events.db: %w", syscall.ENOSPC)
		fs.set(full, nil)
		const burst = 200
		for range burst {
			if _, err := h.Publish(ctx, store.Record{Topic: "a", Data: "x"}); err == nil {
				t.Fatal("Publish succeeded on a failing store")
			}
		}
		assertLines(t, rec.lines(), []wantLine{{slog.LevelError, "store commits failed", 1}})

		time.Sleep(time.Minute) // in the bubble: the clock jumps
		synctest.Wait()
		assertLines(t, rec.lines(), []wantLine{
			{slog.LevelError, "store commits failed", 1},
			{slog.LevelError, "store commits failed", burst - 1},
		})

		fs.set(nil, nil)
		if _, err := h.Publish(ctx, store.Record{Topic: "a", Data: "y"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		lines := rec.lines()
		assertLines(t, lines, []wantLine{
			{slog.LevelError, "store commits failed", 1},
			{slog.LevelError, "store commits failed", burst - 1},
			{slog.LevelWarn, "store commits succeed again", burst},
		})
		if got := lines[1].attrs["err"]; got == nil || !strings.Contains(fmt.Sprint(got), "no space left") {
			t.Errorf("summary line's err = %v, want the last error", got)
		}
	})
}

// wantLine is a log line a test expects: its level, message and count.
type wantLine struct {
	level slog.Level
	msg   string
	count int // the "count" or "failed_commits" attribute
}

func assertLines(t *testing.T, got []logRecord, want []wantLine) {
	t.Helper()
	var brief []string
	for _, l := range got {
		brief = append(brief, fmt.Sprintf("%v %q %v", l.level, l.msg, l.attrs))
	}
	if len(got) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(want), strings.Join(brief, "\n"))
	}
	for i, w := range want {
		n, ok := got[i].attrs["count"]
		if !ok {
			n = got[i].attrs["failed_commits"]
		}
		if got[i].level != w.level || got[i].msg != w.msg || fmt.Sprint(n) != fmt.Sprint(w.count) {
			t.Errorf("line %d: %s; want %v %q with count %d", i, brief[i], w.level, w.msg, w.count)
		}
	}
}
