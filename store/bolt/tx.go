package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/internal/seqid"
)

// writer appends events inside one write transaction. bbolt keeps the
// slices handed to Put until the commit, so every Put gets fresh ones.
type writer struct {
	tx                                      *bbolt.Tx
	meta, events, topics, keys, times, sums *bbolt.Bucket
	seq                                     uint64
}

// newWriter starts a writer whose first ID follows the file's sequence, or
// floor when that is higher.
func newWriter(tx *bbolt.Tx, floor uint64) *writer {
	w := &writer{
		tx:     tx,
		meta:   tx.Bucket(bucketMeta),
		events: tx.Bucket(bucketEvents),
		topics: tx.Bucket(bucketTopics),
		keys:   tx.Bucket(bucketKeys),
		times:  tx.Bucket(bucketKeyTimes),
		sums:   tx.Bucket(bucketKeySums),
	}
	w.seq = max(u64(w.meta.Get(keySeq)), floor)
	return w
}

// clock returns the commit time: now, or the last commit time when the
// wall clock went back, so that event times follow IDs.
func (w *writer) clock(now time.Time) time.Time {
	ns := now.UnixNano()
	if last := int64(u64(w.meta.Get(keyTime))); last > ns {
		ns = last
	}
	return time.Unix(0, ns).UTC()
}

// remembered returns the event first stored under key when the key is
// within the window at now. When the event itself was removed by retention
// since, only its ID, topic and time are known.
func (w *writer) remembered(key string, now time.Time, window time.Duration) (store.Event, bool, error) {
	v := w.keys.Get([]byte(key))
	if v == nil {
		return store.Event{}, false, nil
	}
	if len(v) < 16 {
		return store.Event{}, false, fmt.Errorf("idempotency key record of %d bytes", len(v))
	}
	seq, at := u64(v[:8]), time.Unix(0, int64(u64(v[8:16]))).UTC()
	if now.Sub(at) > window {
		return store.Event{}, false, nil
	}
	topic := string(v[16:])
	if b := w.events.Bucket([]byte(topic)); b != nil {
		if ev := b.Get(be64(seq)); ev != nil {
			e, err := decodeEvent(seq, topic, ev)
			return e, err == nil, err
		}
	}
	return store.Event{ID: seqid.Format(seq), Topic: topic, Time: at}, true, nil
}

// conflicts reports whether rec's idempotency key, known to be
// remembered, was stored for another record. A key without a fingerprint
// (stored before fingerprints were kept) never conflicts.
func (w *writer) conflicts(rec store.Record) bool {
	got := w.sums.Get([]byte(rec.IdempotencyKey))
	if len(got) != 16 {
		return false
	}
	want := store.Fingerprint(rec)
	return !bytes.Equal(got, want[:])
}

// append stores rec as the next event and applies the count limit to its
// topic.
func (w *writer) append(rec store.Record, now time.Time, maxPerTopic int) (store.Event, error) {
	w.seq++
	name := []byte(rec.Topic)
	b, err := w.events.CreateBucketIfNotExists(name)
	if err != nil {
		return store.Event{}, fmt.Errorf("topic bucket: %w", err)
	}
	// Keys only grow: pack pages full instead of splitting them in half.
	b.FillPercent = 1
	if err := b.Put(be64(w.seq), encodeEvent(now, rec.Type, rec.Data)); err != nil {
		return store.Event{}, fmt.Errorf("put event: %w", err)
	}
	tm := decodeTopicMeta(w.topics.Get(name))
	tm.count++
	if maxPerTopic > 0 {
		n, trimmed, err := dropOldest(b, int(tm.count)-maxPerTopic, nil)
		if err != nil {
			return store.Event{}, err
		}
		tm.count -= uint64(n)
		tm.trimmed = max(tm.trimmed, trimmed)
	}
	if err := w.topics.Put(name, tm.encode()); err != nil {
		return store.Event{}, fmt.Errorf("put topic: %w", err)
	}
	if rec.IdempotencyKey != "" {
		key := []byte(rec.IdempotencyKey)
		v := make([]byte, 16+len(name))
		binary.BigEndian.PutUint64(v, w.seq)
		binary.BigEndian.PutUint64(v[8:], uint64(now.UnixNano()))
		copy(v[16:], name)
		if err := w.keys.Put(key, v); err != nil {
			return store.Event{}, fmt.Errorf("put idempotency key: %w", err)
		}
		sum := store.Fingerprint(rec)
		if err := w.sums.Put(key, sum[:]); err != nil {
			return store.Event{}, fmt.Errorf("put idempotency fingerprint: %w", err)
		}
		w.times.FillPercent = 1
		if err := w.times.Put(timeSeqKey(now, w.seq), key); err != nil {
			return store.Event{}, fmt.Errorf("put idempotency time: %w", err)
		}
	}
	return store.Event{ID: seqid.Format(w.seq), Topic: rec.Topic, Type: rec.Type, Data: rec.Data, Time: now}, nil
}

// finish records the sequence and the commit time.
func (w *writer) finish(now time.Time) error {
	if err := w.meta.Put(keySeq, be64(w.seq)); err != nil {
		return err
	}
	return w.meta.Put(keyTime, be64(uint64(now.UnixNano())))
}

// dropOldest removes up to n of the oldest events of b, and more while
// expired reports true for the oldest one; it returns how many it removed
// and the highest sequence number removed.
func dropOldest(b *bbolt.Bucket, n int, expired func(v []byte) bool) (int, uint64, error) {
	removed, last := 0, uint64(0)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if removed >= n && (expired == nil || !expired(v)) {
			break
		}
		last = u64(k)
		if err := c.Delete(); err != nil {
			return removed, last, fmt.Errorf("drop event: %w", err)
		}
		removed++
	}
	return removed, last, nil
}

// trimEvents applies r at now to every topic.
func trimEvents(tx *bbolt.Tx, r store.Retention, now time.Time) (int, error) {
	if r.MaxEventsPerTopic <= 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	var expired func(v []byte) bool
	if r.MaxAge > 0 {
		cutoff := now.Add(-r.MaxAge).UnixNano()
		expired = func(v []byte) bool { return len(v) >= 8 && int64(u64(v[:8])) < cutoff }
	}
	events, topics := tx.Bucket(bucketEvents), tx.Bucket(bucketTopics)
	var names [][]byte
	err := topics.ForEach(func(k, v []byte) error {
		if decodeTopicMeta(v).count > 0 {
			names = append(names, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, name := range names {
		b := events.Bucket(name)
		if b == nil {
			continue
		}
		tm := decodeTopicMeta(topics.Get(name))
		over := 0
		if r.MaxEventsPerTopic > 0 {
			over = int(tm.count) - r.MaxEventsPerTopic
		}
		n, last, err := dropOldest(b, over, expired)
		if err != nil {
			return removed, err
		}
		if n == 0 {
			continue
		}
		removed += n
		tm.count -= uint64(n)
		tm.trimmed = max(tm.trimmed, last)
		if err := topics.Put(name, tm.encode()); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// forgetKeys removes the idempotency keys stored before cutoff.
func forgetKeys(tx *bbolt.Tx, cutoff time.Time) error {
	keys, times, sums := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyTimes), tx.Bucket(bucketKeySums)
	limit := cutoff.UnixNano()
	c := times.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if len(k) != 16 || int64(u64(k[:8])) >= limit {
			break
		}
		// A key re-used after it expired points at a newer sequence; only
		// the entry that matches may remove it.
		if cur := keys.Get(v); len(cur) >= 8 && u64(cur[:8]) == u64(k[8:]) {
			if err := keys.Delete(bytes.Clone(v)); err != nil {
				return fmt.Errorf("forget key: %w", err)
			}
			if err := sums.Delete(bytes.Clone(v)); err != nil {
				return fmt.Errorf("forget key fingerprint: %w", err)
			}
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("forget key time: %w", err)
		}
	}
	return nil
}

// topicMeta is the value of a topic in the topics bucket.
type topicMeta struct {
	count   uint64 // events retained
	trimmed uint64 // highest sequence number removed by retention
}

func decodeTopicMeta(v []byte) topicMeta {
	if len(v) < 16 {
		return topicMeta{}
	}
	return topicMeta{count: u64(v[:8]), trimmed: u64(v[8:16])}
}

func (m topicMeta) encode() []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, m.count)
	binary.BigEndian.PutUint64(v[8:], m.trimmed)
	return v
}

// encodeEvent lays out an event value: Unix ns, uvarint length of the type,
// the type, the data.
func encodeEvent(t time.Time, typ, data string) []byte {
	v := make([]byte, 8, 8+binary.MaxVarintLen64+len(typ)+len(data))
	binary.BigEndian.PutUint64(v, uint64(t.UnixNano()))
	v = binary.AppendUvarint(v, uint64(len(typ)))
	v = append(v, typ...)
	return append(v, data...)
}

// errCorrupt marks an event value that does not decode.
var errCorrupt = fmt.Errorf("corrupt event record: %w", store.ErrCorrupt)

// decodeEvent copies an event out of v, which bbolt owns.
func decodeEvent(seq uint64, topic string, v []byte) (store.Event, error) {
	if len(v) < 9 {
		return store.Event{}, fmt.Errorf("event %d: %w", seq, errCorrupt)
	}
	n, size := binary.Uvarint(v[8:])
	if size <= 0 || n > uint64(len(v)-8-size) {
		return store.Event{}, fmt.Errorf("event %d: %w", seq, errCorrupt)
	}
	// One allocation holds the ID, the type and the data.
	var digits [20]byte
	id := strconv.AppendUint(digits[:0], seq, 10)
	rest := v[8+size:]
	var b strings.Builder
	b.Grow(len(id) + len(rest))
	b.Write(id)
	b.Write(rest)
	s := b.String()
	typeEnd := len(id) + int(n)
	return store.Event{
		ID:    s[:len(id)],
		Topic: topic,
		Type:  s[len(id):typeEnd],
		Data:  s[typeEnd:],
		Time:  time.Unix(0, int64(u64(v[:8]))).UTC(),
	}, nil
}

func timeSeqKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func be64(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// u64 reads a big-endian integer; nil (a missing key) reads as zero.
func u64(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
