// Package store keeps published events durably and reads them back for
// replay: the Store interface, its errors, and what every implementation
// must guarantee.
//
// Implementations live in sub-packages: store/memory (rings per topic, for
// tests and ephemeral use) and store/bolt (an embedded bbolt file, the
// default). Each is one process's own: no store shares history between
// hub processes. The conformance suite in store/storetest checks every
// implementation against this contract.
//
// Package store does not fan events out to subscribers (package hub does).
package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// Record is an event as a publisher hands it to the store.
type Record struct {
	Topic string
	Type  string // empty means "message"
	Data  string
	// IdempotencyKey, when not empty, makes a repeated Append of the same
	// key within the store's idempotency window return the first event's ID
	// and store nothing new.
	IdempotencyKey string
}

// Event is a stored event.
type Event struct {
	// ID is opaque to callers, assigned by the store, unique, and strictly
	// increasing in the order the store committed events, across topics
	// and restarts. Compare orders two IDs.
	ID    string
	Topic string
	Type  string
	Data  string
	Time  time.Time // when the store committed it
}

// Appended is the result of appending one Record.
type Appended struct {
	Event Event
	// Duplicate is true when the record's IdempotencyKey was seen within the
	// window: Event is then the first event stored under that key, and
	// nothing new was stored.
	Duplicate bool
	// Conflict is true, with Duplicate, when the key was first used for a
	// different record (another topic, type or data): nothing was stored,
	// and the caller should refuse the request rather than answer it with
	// the first event (a key reused by mistake would otherwise lose the new
	// event silently). Keys stored by an older version of a store carry no
	// fingerprint and never conflict.
	Conflict bool
}

// Fingerprint identifies what a Record asks to store (topic, type and
// data), so that a store can tell a retried publish from a key reused for
// another one. Stores keep it with the idempotency key.
func Fingerprint(r Record) [16]byte {
	h := sha256.New()
	for _, s := range []string{r.Topic, r.Type, r.Data} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var sum [16]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// Page is the result of a Read.
type Page struct {
	// Events are in ID order, at most the limit asked for.
	Events []Event
	// Truncated is true when events of one of the topics with IDs after the
	// cursor were already removed by retention, so history has a gap that
	// the caller must report (the hub sends event: reset).
	Truncated bool
	// More is true when the limit cut the page short.
	More bool
}

// Retention bounds what a store keeps. The zero value keeps everything.
type Retention struct {
	// MaxEventsPerTopic keeps at most this many newest events per topic;
	// zero means no limit.
	MaxEventsPerTopic int
	// MaxAge drops events older than this; zero means no limit.
	MaxAge time.Duration
	// IdempotencyWindow is how long an idempotency key is remembered; zero
	// means DefaultIdempotencyWindow.
	IdempotencyWindow time.Duration
}

// DefaultIdempotencyWindow is how long idempotency keys are remembered when
// Retention does not say.
const DefaultIdempotencyWindow = 24 * time.Hour

// Errors a Store returns; callers test them with errors.Is.
var (
	// ErrUnknownCursor means the cursor is malformed or newer than anything
	// the store has committed (it may come from another store or a wiped
	// one).
	ErrUnknownCursor = errors.New("store: unknown cursor")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt means the store's data is damaged: a file that fails its
	// consistency check, is truncated, or makes the storage engine panic.
	// Retrying does not help; the operator restores the data from a backup
	// or moves it aside. The error's text says which file and what to do.
	ErrCorrupt = errors.New("store: data damaged")
)

// Store keeps events. Implementations are safe for concurrent use.
type Store interface {
	// Append stores recs durably, in one transaction (one fsync for the
	// whole batch), in order, and returns one result per record. It returns
	// only once the events are durable: a crash after Append returns loses
	// none of them. On error nothing of the batch is stored. Append does not
	// panic on damaged data: it returns an error wrapping ErrCorrupt.
	Append(ctx context.Context, recs []Record) ([]Appended, error)

	// Read returns the events of the given topics with IDs after the
	// cursor, in ID order, at most limit of them (limit <= 0 means a
	// store-chosen default). An empty cursor reads from the oldest retained
	// event. A malformed cursor, or one newer than the newest committed
	// event, gives ErrUnknownCursor.
	Read(ctx context.Context, topics []string, after string, limit int) (Page, error)

	// Head returns the ID of the newest committed event, or "" when the
	// store is empty.
	Head(ctx context.Context) (string, error)

	// Compare orders two valid IDs of this store: -1, 0 or +1.
	Compare(a, b string) int

	// Trim applies the retention to events committed before now, and
	// forgets idempotency keys older than the window. It returns how many
	// events it removed.
	Trim(ctx context.Context, now time.Time) (int, error)

	// Ping reports whether the store is reachable and writable. Once a
	// store has found its data damaged, Ping keeps returning an error that
	// wraps ErrCorrupt. Ping need not write: a failed Append (a full disk)
	// may go unseen by it, so the caller of Append keeps that outcome
	// (hub.Hub.Healthy).
	Ping(ctx context.Context) error

	// Close flushes and closes the store. Calls after Close return
	// ErrClosed.
	Close() error
}
