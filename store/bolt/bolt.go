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
// store/memory, and go on increasing after a restart.
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
// Package bolt is not for several processes or hub nodes sharing history:
// the file is locked by one process (a Redis store serves clusters).
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sseguard/sseguard/store"
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
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")
	bucketTopics   = []byte("topics")
	bucketKeys     = []byte("keys")
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
}

// Store is a store.Store in a bbolt file. The zero value is not usable;
// call Open.
type Store struct {
	db     *bbolt.DB
	r      store.Retention
	window time.Duration
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens the data file at path, creating it (mode 0600) and its folder
// (mode 0700) when missing, and applies r from then on. A MaxEventsPerTopic
// or MaxAge of zero or less means no limit; an IdempotencyWindow of zero or
// less means store.DefaultIdempotencyWindow. opts may be nil.
//
// When another process holds the file, Open fails after Options.LockTimeout
// with an error that wraps ErrLocked.
func Open(path string, r store.Retention, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      timeout,
		FreelistType: bbolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt store: open %s: %w (waited %v)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	}
	if err := db.Update(initialize); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt store: open %s: %w", path, err)
	}
	w := r.IdempotencyWindow
	if w <= 0 {
		w = store.DefaultIdempotencyWindow
	}
	return &Store{db: db, r: r, window: w}, nil
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
	for _, name := range [][]byte{bucketEvents, bucketTopics, bucketKeys, bucketKeyTimes} {
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
	err := s.db.Update(func(tx *bbolt.Tx) error {
		w := newWriter(tx)
		now := w.clock(time.Now())
		for i, rec := range recs {
			if rec.IdempotencyKey != "" {
				ev, ok, err := w.remembered(rec.IdempotencyKey, now, s.window)
				if err != nil {
					return err
				}
				if ok {
					out[i] = store.Appended{Event: ev, Duplicate: true}
					continue
				}
			}
			ev, err := w.append(rec, now, s.r.MaxEventsPerTopic)
			if err != nil {
				return err
			}
			out[i] = store.Appended{Event: ev}
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
	err = s.db.View(func(tx *bbolt.Tx) error {
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
		for _, name := range topics {
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
		for len(heads) > 0 {
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
			for j := 1; j < len(heads); j++ {
				if heads[j].seq < heads[lo].seq {
					lo = j
				}
			}
			h := &heads[lo]
			ev, err := decodeEvent(h.seq, h.topic, h.v)
			if err != nil {
				return err
			}
			page.Events = append(page.Events, ev)
			if k, v := h.c.Next(); k != nil {
				h.seq, h.v = u64(k), v
			} else {
				heads = append(heads[:lo], heads[lo+1:]...)
			}
		}
		return nil
	})
	if err != nil {
		return store.Page{}, s.fail("read", err)
	}
	return page, nil
}

// Head returns the ID of the newest event, or "" when none was appended.
func (s *Store) Head(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if s.closed.Load() {
		return "", store.ErrClosed
	}
	var seq uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
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
	err := s.db.Update(func(tx *bbolt.Tx) error {
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

// Ping reports whether the file is open for writing.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	if s.db.IsReadOnly() {
		return errors.New("bolt store: data file is read-only")
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
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

// Close waits for running transactions and closes the file. A second Close
// returns store.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return store.ErrClosed
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt store: close: %w", err)
	}
	return nil
}

// fail wraps err from operation op, turning bbolt's "not open" into
// store.ErrClosed for a Close that raced the call.
func (s *Store) fail(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
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
