// Package store keeps published events durably and reads them back for
// replay: the Store interface, its errors, and what every implementation
// must guarantee.
//
// Implementations live in sub-packages: store/memory (rings per topic, for
// tests and ephemeral use) and store/bolt (an embedded bbolt file, the
// default), each one process's own, and store/redis, which several hub
// processes share. The conformance suite in store/storetest checks every
// implementation against this contract.
//
// # IDs and cursors
//
// An event's ID is its position in its own topic: unique in the store and
// ordered within its topic (Compare), not necessarily across topics, so
// that a store spread over shards needs no single counter that every
// publish touches. A cursor is what a reader holds (SSE Last-Event-ID,
// poll after and next): its position in the history of a set of topics.
// Next computes the cursor after each event given to a reader, Seen asks
// whether an event is already behind a cursor, Head gives the cursor "now".
// Stores with one global sequence (memory, bolt) use the event's ID as the
// cursor for every topic set; store/redis uses the ID for one topic and a
// vector of positions for several.
//
// A cursor is at most MaxCursor bytes of [A-Za-z0-9._~-], so that it fits
// an SSE id line and a URL query unchanged. The empty cursor and "0" are
// the position before every event of every store: "0" is the one cursor a
// client writes itself (lastEventId=0 replays all retained history).
//
// A cursor positions every topic it was made for: Head names each topic
// of its set (one with no event yet at "before its first event"), and
// Next keeps every position and moves the event's topic. A reader that
// starts live starts from Head, so that its cursor says, for each topic,
// what it has been given.
//
// A cursor may name fewer topics than the reader's set: it was made for
// another set (a client that adds a topic keeps its Last-Event-ID), or
// folded by Next from the empty cursor. The positions of the topics it
// names hold; a topic it does not name is read from its oldest retained
// event, and Read reports Truncated when that topic has lost events to
// retention or data loss (the reader may have been owed them: a loss is
// never silent). A store may start such a topic later (a global sequence
// positions every topic), but never after the point where the cursor was
// issued.
//
// # Topic patterns
//
// A store that implements Patterns (memory and bolt, whose one sequence
// is the cursor of any topic set) takes patterns among the topics of
// Read, Head, Next and Seen: "orders/*" stands for every topic that starts
// with "orders/", including topics that get their first event after a
// cursor was issued, and never for a reserved topic (see Match).
// store/redis reads the patterns of the prefixes it indexes and refuses
// others (PatternChecker, ErrPatternNotServed); memory.Shared reads none.
// Callers check SupportsPatterns and CheckPattern.
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
	// ID is opaque to callers, assigned by the store, unique in the
	// store, and strictly increasing in the order the store committed the
	// events of one topic, across restarts (Compare orders two IDs of one
	// topic). It is also the cursor of a reader of its topic alone that
	// has seen it. It follows the cursor alphabet (see MaxCursor).
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
	// Err, when not nil, says that this record was not acknowledged while
	// others of its batch were: a store spread over shards (Redis
	// Cluster) whose shard for this record's topic failed. It wraps the
	// shard's error (ErrUnavailable when it could not be reached: the
	// record may or may not be stored, as for a failed Append); Event is
	// then empty. Stores with one transaction per batch never set it:
	// they fail the whole Append instead.
	Err error
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
	// Events are in ID order within each topic, at most the limit asked
	// for. Across topics the order is the store's: commit order for stores
	// with one sequence, an interleaving that keeps each topic's order
	// otherwise. The reader's cursor after each event is Store.Next.
	Events []Event
	// Truncated is true when events of one of the topics with IDs after the
	// cursor were already removed by retention, or lost (a store that lost
	// its data and started a new epoch of a topic), so history has a gap
	// that the caller must report (the hub sends event: reset). Events then
	// continue from the oldest retained event of that topic.
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

// MaxCursor is the longest cursor a store issues, in bytes. Cursors use
// only the bytes [A-Za-z0-9._~-].
const MaxCursor = 1024

// ValidCursor reports whether c is within MaxCursor and the cursor
// alphabet. Stores check the cursors they issue with it in tests; a cursor
// that fails it is malformed (ErrUnknownCursor).
func ValidCursor(c string) bool {
	if len(c) > MaxCursor {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '~' || b == '-') {
			return false
		}
	}
	return true
}

// DefaultIdempotencyWindow is how long idempotency keys are remembered when
// Retention does not say.
const DefaultIdempotencyWindow = 24 * time.Hour

// Errors a Store returns; callers test them with errors.Is.
var (
	// ErrUnknownCursor means the cursor is malformed or newer than anything
	// the store has committed (it may come from another store or a wiped
	// one). The caller reports a reset and goes on from Head.
	ErrUnknownCursor = errors.New("store: unknown cursor")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt means the store's data is damaged: a file that fails its
	// consistency check, is truncated, or makes the storage engine panic.
	// Retrying does not help; the operator restores the data from a backup
	// or moves it aside. The error's text says which file and what to do.
	ErrCorrupt = errors.New("store: data damaged")
	// ErrUnavailable means the store could not be reached (a Redis that is
	// down, refuses, times out or is loading its data): retrying later may
	// succeed. A record whose Append failed with it may or may not be
	// stored; an idempotency key makes the retry safe. The server answers
	// 503 store_unavailable with Retry-After.
	ErrUnavailable = errors.New("store: unavailable")
)

// Store keeps events. Implementations are safe for concurrent use.
type Store interface {
	// Append stores recs durably, in one transaction (one fsync for the
	// whole batch), in order, and returns one result per record. (A store
	// spread over shards documents what it guarantees for a batch across
	// shards, and reports a record its failed shard did not store in
	// Appended.Err; the hub answers each publisher for its own records.) It
	// returns only once the events are durable: a crash after Append
	// returns loses none of them. On error nothing of the batch is stored
	// (ErrUnavailable: nothing was acknowledged, and a record may or may
	// not be stored; an idempotency key makes the retry safe). Append does not
	// panic on damaged data: it returns an error wrapping ErrCorrupt.
	Append(ctx context.Context, recs []Record) ([]Appended, error)

	// Read returns the events of the given topics after the cursor, in
	// ID order within each topic (see Page.Events), at most limit of them
	// (limit <= 0 means a store-chosen default). after is a cursor (see
	// the package doc, also for a cursor of another topic set); the empty
	// cursor reads from the oldest retained event. A malformed cursor, or
	// one newer than what the store has committed, gives
	// ErrUnknownCursor.
	Read(ctx context.Context, topics []string, after string, limit int) (Page, error)

	// Head returns the cursor of a reader of topics that has seen every
	// event committed so far: reading after it returns only events
	// committed later, and nothing committed later is Seen at it. It
	// names every topic of topics (see the package doc). For an empty
	// store it may be "" (stores with one sequence return "").
	Head(ctx context.Context, topics []string) (string, error)

	// Next returns the cursor of a reader of topics that was at cursor
	// ("" for none yet) and has now been given e, an event of one of
	// topics that is not Seen at cursor. Stores with one global sequence
	// return e.ID; for a single topic every store returns e.ID. Next does
	// no I/O; a malformed cursor counts as "".
	Next(cursor string, topics []string, e Event) string

	// Seen reports whether e, an event of one of topics, is at or before
	// cursor: a reader at cursor was already given it. It is false for
	// the empty cursor and for a topic the cursor does not name. Seen does
	// no I/O; a malformed cursor counts as "".
	Seen(cursor string, topics []string, e Event) bool

	// Compare orders two valid IDs of events of one topic: -1, 0 or +1.
	// IDs of different topics have no defined order unless the store
	// keeps one sequence.
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

// Feed is implemented by stores that several hub processes share: events
// any process commits reach every process's hub through it. A hub over a
// Feed store fans out only what Follow delivers, never its own commits
// directly, so that no node delivers an event twice.
type Feed interface {
	// Follow reads newly committed events into sink until ctx ends, and
	// then returns ctx's error. It calls sink.Started once it is in place
	// (subscribed): every event committed after that point reaches
	// sink.Deliver, in order per topic, exactly once. A gap it cannot fill
	// (retention passed it, the store lost data) goes to sink.Gap, never
	// skipped silently. While the store is unreachable Follow retries and
	// then catches up; it returns another error only when it cannot go on
	// at all. Follow calls sink from one goroutine at a time.
	Follow(ctx context.Context, sink FeedSink) error
}

// FeedSink receives what Feed.Follow reads; package hub implements it.
type FeedSink interface {
	// Started says that from now on every committed event will be
	// delivered. Subscribers that registered before it may have missed
	// events: the hub cuts them loose, and they resume from their cursors.
	Started()
	// Deliver hands over newly committed events, in order per topic. The
	// sink does not keep the slice.
	Deliver(events []Event)
	// Gap says that events of topic were lost to the feed (retention, data
	// loss): the hub cuts the topic's subscribers loose, so that they
	// resume from their cursors and get Truncated (event: reset).
	Gap(topic string)
}
