// Package bolt is the default store.Store of sseguard serve: one bbolt
// (go.etcd.io/bbolt) file in the data folder, durable across crashes and
// restarts.
//
// Every Append is one bbolt write transaction for the whole batch, so one
// commit whose cost hardly depends on the batch size (bbolt syncs the data
// pages, then the meta page: two fdatasync calls per commit). The hub groups
// concurrent publishes into one Append, and that is the group commit. A
// returned Append is on disk. Appends are serialized (bbolt has one writer);
// reads run in read transactions beside it, and wait for it only when the
// file outgrows its memory map.
//
// IDs are the decimal global sequence ("1", "2", …), the same format as
// store/memory, and go on increasing after a restart. An ID is never
// issued twice, even when the file loses its newest transaction or is
// replaced by an older backup: a small file beside it, events.db.hwm (see
// MarkSuffix), keeps the highest ID that may have been issued, and new IDs
// start above it.
//
// # Damage
//
// Open refuses a damaged file with an error that wraps store.ErrCorrupt,
// names the file and says what to do (restore it, or move it aside and
// start empty): it checks the file's size against its meta pages before
// bbolt maps it, then reads the whole file and runs bbolt's consistency
// check (Options.SkipCheck turns that off). At run time a damaged page
// makes bbolt panic or fault; the store turns that into an error wrapping
// store.ErrCorrupt for the one call, and Ping reports it from then on, so
// the process lives on and readiness fails.
//
// # File layout
//
// Format version 1 keeps five top-level buckets:
//
//	meta      "version" → 1; "seq" → last sequence number; "time" → last
//	          commit time (Unix ns), so event times never go back
//	events    one bucket per topic: 8-byte big-endian sequence → event
//	          (8-byte Unix ns, uvarint length of type, type, data)
//	topics    topic → count of retained events and the highest sequence
//	          removed by retention (8 bytes each), so MaxEventsPerTopic costs
//	          O(1) per event and Page.Truncated is exact
//	keys      idempotency key → sequence, time, topic
//	keytimes  time and sequence (8 bytes each) → idempotency key, so Trim
//	          forgets expired keys without a scan
//
// Integers are big-endian. Topic metadata stays after its events expire,
// about 40 bytes per topic ever written, to keep Truncated exact.
//
// The ID mark is one line of text: "sseguard event ID mark v1: IDs up to
// N crc32c X". Append moves it a block of IDs ahead before the commit
// that needs it (one small write and fsync per 100,000 IDs), and Close
// lowers it to the last ID issued; after a crash IDs jump by at most a
// block.
//
// Package bolt is not for several processes or hub nodes sharing history:
// the file is locked by one process.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/internal/merge"
	"github.com/sseguard/sseguard/store/internal/seqid"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the data file when Options.LockTimeout is zero.
const DefaultLockTimeout = time.Second

// DefaultReadLimit is the page size of a Read whose limit is zero or less.
const DefaultReadLimit = 1000

// ErrLocked means another process, most likely another sseguard, holds the
// data file open.
var ErrLocked = errors.New("data file is locked by another sseguard process")

// formatVersion is the file layout this package writes and reads.
const formatVersion = 1

var (
	bucketMeta   = []byte("meta")
	bucketEvents = []byte("events")
	bucketTopics = []byte("topics")
	bucketKeys   = []byte("keys")
	// bucketKeySums holds store.Fingerprint of each idempotency key's
	// record, under the same key (files from before it have none).
	bucketKeySums  = []byte("keysums")
	bucketKeyTimes = []byte("keytimes")

	keyVersion = []byte("version")
	keySeq     = []byte("seq")
	keyTime    = []byte("time")
)

// Options tunes Open. The zero value is the production setting.
type Options struct {
	// LockTimeout is how long Open waits for the file lock that another
	// process holds before it fails with ErrLocked; zero means
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// SkipCheck skips the consistency check of the whole file at Open.
	// The check reads the file from start to end, then every page in tree
	// order (bbolt's tx.Check). Measured on the project machine (2 cores,
	// virtual disk; BenchmarkOpen): 100k events (34 MB) take 45-70 ms,
	// whether the file is in the OS cache or not; 1M events (1.4 GB) take
	// 0.6 s cached and 5 s cold. Without the check Open takes 1-10 ms.
	// Skipping it leaves damage to be found by the first Append or Read
	// that meets it, which then fails with store.ErrCorrupt.
	SkipCheck bool
	// Logger receives Open's warnings about a file it could still use (a
	// damaged meta page, a missing data file beside its ID mark); nil
	// means slog.Default().
	Logger *slog.Logger
}

// Store is a store.Store in a bbolt file. The zero value is not usable;
// call Open.
type Store struct {
	db     *bbolt.DB
	file   *os.File // bbolt's, for release
	path   string
	r      store.Retention
	window time.Duration
	closed atomic.Bool
	// corrupt holds the first error that found the file damaged; Ping
	// reports it from then on.
	corrupt atomic.Pointer[error]
	wedged  atomic.Bool // see run

	// floor is the highest ID that may have been issued before Open: new
	// IDs start above it even when the file's own sequence is lower.
	floor uint64
	// markMu guards issued and reserved, touched by Append inside bbolt's
	// write transaction and by Close.
	markMu   sync.Mutex
	issued   uint64 // highest ID handed to a transaction, committed or not
	reserved uint64 // the ID mark on disk: IDs up to it may be used
}

var _ store.Store = (*Store)(nil)

// Open opens the data file at path, creating it (mode 0600) and its folder
// (mode 0700) when missing, and applies r from then on. A MaxEventsPerTopic
// or MaxAge of zero or less means no limit; an IdempotencyWindow of zero or
// less means store.DefaultIdempotencyWindow. opts may be nil.
//
// When another process holds the file, Open fails after Options.LockTimeout
// with an error that wraps ErrLocked.
//
// Open refuses a damaged file with an error that wraps store.ErrCorrupt,
// names the file and says what to do: an empty (0-byte) file beside an ID
// mark, a truncated file, a file whose meta pages are both invalid, a file
// that fails the consistency check (see Options.SkipCheck), or one that
// makes bbolt panic. It opens, with a warning, a file whose newest meta
// page is damaged: bbolt then uses the other one and the newest
// transaction is lost, but its IDs are not issued again (see MarkSuffix).
func Open(path string, r store.Retention, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt store: %w", err)
	}
	markPath := path + MarkSuffix
	mark, hasMark, err := readMark(markPath)
	if err != nil {
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	}
	// A crash between the folder's creation and the first mark leaves no
	// mark: no ID was issued then.
	hasMark = hasMark && mark > 0
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if hasMark {
			log.Warn("data file missing: starting an empty store; history is lost, IDs go on after the mark",
				"path", path, "mark", markPath, "ids_after", mark)
		}
	case err != nil:
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	case fi.Size() == 0 && hasMark:
		return nil, fmt.Errorf("bolt store: open %s: %w: the file is empty, but IDs up to %d were issued (%s): "+
			"restore it from a backup, or delete it to start an empty store whose IDs go on after %d",
			path, store.ErrCorrupt, mark, markPath, mark)
	case fi.Size() > 0:
		// Checked before bbolt maps the file: bbolt reads a truncated file
		// past its end and crashes.
		st, err := inspect(path)
		if err != nil {
			return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
		}
		if d := st.damage(); d != "" {
			return nil, damaged(path, d, mark, hasMark)
		}
	}
	var file *os.File
	var db *bbolt.DB
	err = guard(func() error {
		var err error
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{
			Timeout:      timeout,
			FreelistType: bbolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
		return err
	})
	switch {
	case errors.Is(err, store.ErrCorrupt):
		// bbolt panicked holding the file and its lock; its mapping stays.
		if file != nil {
			_ = file.Close()
		}
		return nil, damaged(path, err.Error(), mark, hasMark)
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("bolt store: open %s: %w (waited %v)", path, ErrLocked, timeout)
	case err != nil:
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	}
	w := r.IdempotencyWindow
	if w <= 0 {
		w = store.DefaultIdempotencyWindow
	}
	s := &Store{db: db, file: file, path: path, r: r, window: w}
	if err := s.start(log, mark, hasMark, opts.SkipCheck); err != nil {
		_ = s.release()
		return nil, err
	}
	return s, nil
}

// start checks the open file, sets the ID floor from the file and the
// mark, and creates the buckets of a new file. It writes to the file only
// once the check passed.
func (s *Store) start(log *slog.Logger, mark uint64, hasMark, skipCheck bool) error {
	if st, err := inspect(s.path); err == nil && st.metas[0].valid != st.metas[1].valid {
		// A torn write of the newest meta page (a crash during a commit
		// that was never acknowledged) looks the same as later damage.
		log.Warn("data file has a damaged meta page: the newest transaction may be lost; its IDs will not be issued again",
			"path", s.path, "damaged_page", 1-st.current(), "transaction", st.metas[st.current()].txid)
	}
	var seq uint64
	err := s.run(false, func(tx *bbolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			seq = u64(meta.Get(keySeq))
		}
		return nil
	})
	if err != nil {
		return damaged(s.path, err.Error(), mark, hasMark)
	}
	if seq > mark { // a file from before the mark, or the mark was lost
		if err := writeMark(s.path+MarkSuffix, seq); err != nil {
			return fmt.Errorf("bolt store: open %s: %w", s.path, err)
		}
		mark, hasMark = seq, true
	}
	s.floor = mark
	s.issued, s.reserved = mark, mark
	if !skipCheck {
		if err := s.verify(); err != nil {
			return damaged(s.path, err.Error(), mark, hasMark)
		}
	}
	if err := s.run(true, initialize); err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			return damaged(s.path, err.Error(), mark, hasMark)
		}
		return fmt.Errorf("bolt store: open %s: %w", s.path, err)
	}
	return nil
}

// run runs fn in a write or read transaction under guard. When bbolt
// panicked before the transaction began, or again while rolling it back,
// it may still hold its locks, and the next call would wait for them
// forever: the store is then wedged, and every later call fails at once.
func (s *Store) run(write bool, fn func(*bbolt.Tx) error) error {
	if s.wedged.Load() {
		return errWedged
	}
	var tx *bbolt.Tx
	err := guard(func() error {
		f := func(t *bbolt.Tx) error {
			tx = t
			return fn(t)
		}
		if write {
			return s.db.Update(f)
		}
		return s.db.View(f)
	})
	var pe *panicError
	if errors.As(err, &pe) && (tx == nil || tx.DB() != nil) {
		s.wedged.Store(true)
	}
	return err
}

// errWedged is the error of every call after bbolt was left locked.
var errWedged = fmt.Errorf("bbolt stopped in a damaged state; restart once the file is restored or moved aside: %w", store.ErrCorrupt)

// release closes the file. A wedged bbolt would wait forever for its own
// locks: then only the file is closed, which releases its lock, and the
// memory map stays until the process ends.
func (s *Store) release() error {
	if s.wedged.Load() {
		return s.file.Close()
	}
	return s.db.Close()
}

// damaged is Open's error for a damaged file: what is wrong and what the
// operator can do.
func damaged(path, detail string, mark uint64, hasMark bool) error {
	ids := "IDs start again from 1, so clients' cursors mean other events"
	if hasMark {
		ids = fmt.Sprintf("IDs go on after %d, kept in %s", mark, path+MarkSuffix)
	}
	return fmt.Errorf("bolt store: open %s: %w: %s: restore the file from a backup, "+
		"or move it aside to start an empty store (its history is then lost; %s)",
		path, store.ErrCorrupt, detail, ids)
}

// initialize creates the buckets of a new file and checks the format of an
// existing one.
func initialize(tx *bbolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		v := meta.Get(keyVersion)
		if len(v) != 8 {
			return errors.New("data file has no format version")
		}
		if got := u64(v); got != formatVersion {
			return fmt.Errorf("data file format version %d, this build reads version %d", got, formatVersion)
		}
	} else {
		foreign := false
		_ = tx.ForEach(func([]byte, *bbolt.Bucket) error {
			foreign = true
			return nil
		})
		if foreign {
			return errors.New("not an sseguard data file")
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyVersion, be64(formatVersion)); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketEvents, bucketTopics, bucketKeys, bucketKeyTimes, bucketKeySums} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string {
	return s.db.Path()
}

// Append stores recs in one write transaction: one commit for the batch.
// Count retention is applied in the same transaction, O(1) per event over
// the limit; age retention and the idempotency window wait for Trim, except
// that a key older than the window at the time of Append is treated as new.
// A duplicate whose first event was since removed by retention returns that
// event's ID, topic and time only.
//
// ctx is checked before the transaction and again before its commit; once
// the commit starts it runs to its end, and Append reports its outcome.
func (s *Store) Append(ctx context.Context, recs []store.Record) ([]store.Appended, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	for i, rec := range recs {
		if err := validate(rec); err != nil {
			return nil, fmt.Errorf("bolt store: append: record %d: %w", i, err)
		}
	}
	if len(recs) == 0 {
		return []store.Appended{}, nil
	}
	out := make([]store.Appended, len(recs))
	err := s.run(true, func(tx *bbolt.Tx) error {
		w := newWriter(tx, s.floor)
		now := w.clock(time.Now())
		for i, rec := range recs {
			if rec.IdempotencyKey != "" {
				ev, ok, err := w.remembered(rec.IdempotencyKey, now, s.window)
				if err != nil {
					return err
				}
				if ok {
					out[i] = store.Appended{Event: ev, Duplicate: true, Conflict: w.conflicts(rec)}
					continue
				}
			}
			ev, err := w.append(rec, now, s.r.MaxEventsPerTopic)
			if err != nil {
				return err
			}
			out[i] = store.Appended{Event: ev}
		}
		if err := s.reserve(w.seq); err != nil {
			return err
		}
		if err := w.finish(now); err != nil {
			return err
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, s.fail("append", err)
	}
	return out, nil
}

// Read returns the events of topics after the cursor in ID order, from one
// consistent snapshot. It costs one B-tree seek per topic and O(k) per
// event returned for k topics.
func (s *Store) Read(ctx context.Context, topics []string, after string, limit int) (store.Page, error) {
	if err := ctx.Err(); err != nil {
		return store.Page{}, err
	}
	if s.closed.Load() {
		return store.Page{}, store.ErrClosed
	}
	cursor, err := seqid.Cursor("bolt store", after)
	if err != nil {
		return store.Page{}, err
	}
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	page := store.Page{Events: make([]store.Event, 0, min(limit, 64))}
	err = s.run(false, func(tx *bbolt.Tx) error {
		seq := u64(tx.Bucket(bucketMeta).Get(keySeq))
		if cursor > seq {
			return fmt.Errorf("cursor newer than head: %w", store.ErrUnknownCursor)
		}
		if cursor == seq && after != "" {
			return nil
		}
		type head struct {
			topic string
			c     *bbolt.Cursor
			seq   uint64
			v     []byte
		}
		heads := make([]head, 0, len(topics))
		seen := make(map[string]bool, len(topics))
		events, meta := tx.Bucket(bucketEvents), tx.Bucket(bucketTopics)
		for _, name := range expand(meta, topics) {
			if seen[name] || name == "" {
				continue
			}
			seen[name] = true
			tm := meta.Get([]byte(name))
			if tm == nil {
				continue
			}
			if after != "" && decodeTopicMeta(tm).trimmed > cursor {
				page.Truncated = true
			}
			b := events.Bucket([]byte(name))
			if b == nil {
				continue
			}
			c := b.Cursor()
			if k, v := c.Seek(be64(cursor + 1)); k != nil {
				heads = append(heads, head{topic: name, c: c, seq: u64(k), v: v})
			}
		}
		// Many topics (a pattern's) are merged with a heap, a few by a
		// scan per event.
		hp := merge.Heap[head]{Items: heads, Seq: func(h *head) uint64 { return h.seq }}
		many := len(heads) > heapFrom
		if many {
			hp.Init()
		}
		for len(hp.Items) > 0 {
			if len(page.Events) == limit {
				page.More = true
				break
			}
			if len(page.Events)%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			lo := 0
			for j := 1; !many && j < len(hp.Items); j++ {
				if hp.Items[j].seq < hp.Items[lo].seq {
					lo = j
				}
			}
			h := &hp.Items[lo]
			ev, err := decodeEvent(h.seq, h.topic, h.v)
			if err != nil {
				return err
			}
			page.Events = append(page.Events, ev)
			switch k, v := h.c.Next(); {
			case k != nil:
				h.seq, h.v = u64(k), v
				if many {
					hp.Fix()
				}
			case many:
				hp.Pop()
			default:
				hp.Items = append(hp.Items[:lo], hp.Items[lo+1:]...)
			}
		}
		return nil
	})
	if err != nil {
		return store.Page{}, s.fail("read", err)
	}
	return page, nil
}

// Head returns the ID of the newest event of any topic, or "" when none
// was appended: one sequence positions every topic set.
func (s *Store) Head(ctx context.Context, _ []string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if s.closed.Load() {
		return "", store.ErrClosed
	}
	var seq uint64
	err := s.run(false, func(tx *bbolt.Tx) error {
		seq = u64(tx.Bucket(bucketMeta).Get(keySeq))
		return nil
	})
	if err != nil {
		return "", s.fail("head", err)
	}
	if seq == 0 {
		return "", nil
	}
	return seqid.Format(seq), nil
}

// Compare orders two IDs numerically.
func (s *Store) Compare(a, b string) int {
	return seqid.Compare(a, b)
}

// Next returns e.ID: one sequence orders every topic, so an event's ID is
// the cursor of any topic set.
func (s *Store) Next(_ string, _ []string, e store.Event) string { return e.ID }

// heapFrom is the number of topics above which Read merges them with a
// heap (a pattern's topics) rather than by scanning them for each event.
const heapFrom = 16

// Patterns reports true: Read takes topic patterns (store.Patterns), and
// one sequence positions every topic a pattern matches.
func (s *Store) Patterns() bool { return true }

// expand replaces the patterns among topics by the topics they match in
// meta (the topics bucket), in the Read's snapshot: one seek per pattern,
// then one step per matching topic.
func expand(meta *bbolt.Bucket, topics []string) []string {
	if !store.HasPattern(topics) {
		return topics
	}
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		prefix, ok := strings.CutSuffix(t, "*")
		if !ok {
			out = append(out, t)
			continue
		}
		c := meta.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			if store.Match(t, string(k)) {
				out = append(out, string(k))
			}
		}
	}
	return out
}

// Seen reports whether e's ID is at or before cursor.
func (s *Store) Seen(cursor string, _ []string, e store.Event) bool {
	return seqid.Seen(cursor, e.ID)
}

// Trim drops events older than MaxAge at now and events over
// MaxEventsPerTopic (after a restart with a lower limit), and forgets
// idempotency keys older than the window at now, in one write transaction.
// Its cost is one seek per topic ever written plus O(log n) per removal.
func (s *Store) Trim(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	var removed int
	err := s.run(true, func(tx *bbolt.Tx) error {
		removed = 0
		n, err := trimEvents(tx, s.r, now)
		if err != nil {
			return err
		}
		if err := forgetKeys(tx, now.Add(-s.window)); err != nil {
			return err
		}
		removed = n
		return ctx.Err()
	})
	if err != nil {
		return 0, s.fail("trim", err)
	}
	return removed, nil
}

// Ping reports whether the file is open for writing and not known to be
// damaged: once a call found the file damaged, Ping returns that error
// (wrapping store.ErrCorrupt) until the store is closed. Ping only reads:
// it does not see a full disk (hub.Hub.Healthy does).
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	if c := s.corrupt.Load(); c != nil {
		return *c
	}
	if s.db.IsReadOnly() {
		return errors.New("bolt store: data file is read-only")
	}
	err := s.run(false, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("meta bucket missing")
		}
		return nil
	})
	if err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close waits for running transactions and closes the file, then lowers
// the ID mark to the last ID issued, so that the next Open goes on without
// a gap. A second Close returns store.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return store.ErrClosed
	}
	if err := s.release(); err != nil {
		return fmt.Errorf("bolt store: close: %w", err)
	}
	s.markMu.Lock()
	defer s.markMu.Unlock()
	if s.issued < s.reserved {
		// A mark left higher only makes the IDs jump at the next start.
		if err := writeMark(s.path+MarkSuffix, s.issued); err != nil {
			return fmt.Errorf("bolt store: close: %w", err)
		}
		s.reserved = s.issued
	}
	return nil
}

// reserve records that IDs up to seq are handed out, and moves the ID mark
// on disk a block past seq when seq is beyond it. Append calls it inside
// its transaction, before the commit: no ID is acknowledged before the mark
// covers it.
func (s *Store) reserve(seq uint64) error {
	s.markMu.Lock()
	defer s.markMu.Unlock()
	s.issued = max(s.issued, seq)
	if seq <= s.reserved {
		return nil
	}
	if err := writeMark(s.path+MarkSuffix, seq+markBlock); err != nil {
		return err
	}
	s.reserved = seq + markBlock
	return nil
}

// fail wraps err from operation op, turning bbolt's "not open" into
// store.ErrClosed for a Close that raced the call. It remembers the first
// error that found the file damaged, for Ping.
func (s *Store) fail(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, store.ErrCorrupt) {
		err = fmt.Errorf("bolt store: %s: data file %s is damaged: %w", op, s.path, err)
		s.corrupt.CompareAndSwap(nil, &err)
		return err
	}
	return fmt.Errorf("bolt store: %s: %w", op, err)
}

func validate(rec store.Record) error {
	switch {
	case rec.Topic == "":
		return errors.New("empty topic")
	case len(rec.Topic) > bbolt.MaxKeySize:
		return fmt.Errorf("topic longer than %d bytes", bbolt.MaxKeySize)
	case len(rec.IdempotencyKey) > bbolt.MaxKeySize:
		return fmt.Errorf("idempotency key longer than %d bytes", bbolt.MaxKeySize)
	}
	return nil
}
