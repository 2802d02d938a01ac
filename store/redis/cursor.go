package redis

import (
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/sseguard/sseguard/store"
)

// An event's ID is "<topic hash>.<epoch>.<offset>": the topic's hash (8
// characters, 48 bits of SHA-256 in base64url), the topic's epoch (8
// characters, random, made with the topic's first event and again after
// Redis lost the topic), and the event's offset in its topic (decimal, from
// 1, contiguous). A cursor is one such position per topic, sorted by hash
// and joined with "~"; a cursor of one topic is the ID of the last event
// its reader was given. "<topic hash>.0" is the position before a topic's
// first event, of any epoch: Head names a topic that has no event yet so.
// Every byte is in store.ValidCursor's alphabet, and 32 positions fit
// store.MaxCursor with offsets of up to 10 digits.
const (
	hashLen  = 8
	epochLen = 8
	// entrySep separates the positions of a cursor.
	entrySep = '~'
	// maxOffset keeps offsets exact in Lua's doubles.
	maxOffset = 1<<53 - 1
)

var b64 = base64.RawURLEncoding

// topicHash is the hash part of the IDs of topic.
func topicHash(topic string) string {
	sum := sha256.Sum256([]byte(topic))
	return b64.EncodeToString(sum[:6])
}

// newEpoch returns a random epoch. It need not be secret, only unlikely
// to repeat.
func newEpoch() string {
	var b [6]byte
	u := rand.Uint64()
	for i := range b {
		b[i] = byte(u >> (8 * i))
	}
	return b64.EncodeToString(b[:])
}

// pos is one topic's position: the last offset of epoch a reader was given.
type pos struct {
	hash, epoch string
	offset      uint64
}

func (p pos) String() string {
	if p.epoch == "" {
		return p.hash + ".0"
	}
	// One allocation: an ID is made for every event appended and read.
	var b [hashLen + 1 + epochLen + 1 + 20]byte
	out := append(b[:0], p.hash...)
	out = append(out, '.')
	out = append(out, p.epoch...)
	out = append(out, '.')
	out = strconv.AppendUint(out, p.offset, 10)
	return string(out)
}

// parsePos parses one position (an ID, or a topic's start); of an
// indexed event's ID, the topic's position (see parseID).
func parsePos(s string) (pos, bool) {
	p, _, ok := parseID(s)
	return p, ok
}

// parsePos3 parses "<hash>.<epoch>.<offset>" or "<hash>.0".
func parsePos3(s string) (pos, bool) {
	if len(s) == hashLen+2 && s[hashLen:] == ".0" && isB64(s[:hashLen]) {
		return pos{hash: s[:hashLen]}, true
	}
	if len(s) < hashLen+1+epochLen+2 || s[hashLen] != '.' || s[hashLen+1+epochLen] != '.' {
		return pos{}, false
	}
	h, e, o := s[:hashLen], s[hashLen+1:hashLen+1+epochLen], s[hashLen+2+epochLen:]
	if !isB64(h) || !isB64(e) {
		return pos{}, false
	}
	off, ok := parseOffset(o)
	if !ok {
		return pos{}, false
	}
	return pos{hash: h, epoch: e, offset: off}, true
}

func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseCursor parses a cursor into its positions; ok is false when it is
// malformed. The empty cursor and "0" (store.Store's cursor before every
// event) have no positions.
func parseCursor(c string) (ps []pos, ok bool) {
	if c == "" || c == "0" {
		return nil, true
	}
	if len(c) > store.MaxCursor {
		return nil, false
	}
	for part := range strings.SplitSeq(c, string(entrySep)) {
		p, ok := parsePos(part)
		if !ok {
			return nil, false
		}
		for _, q := range ps {
			if q.hash == p.hash {
				return nil, false
			}
		}
		ps = append(ps, p)
	}
	return ps, true
}

// findPos returns the position of the topic with hash h in cursor c
// without allocating: Seen runs once per event and subscriber.
func findPos(c, h string) (pos, bool) {
	for len(c) > 0 {
		part := c
		if i := strings.IndexByte(c, entrySep); i >= 0 {
			part, c = c[:i], c[i+1:]
		} else {
			c = ""
		}
		if strings.HasPrefix(part, h) && len(part) > len(h) && part[len(h)] == '.' {
			return parsePos(part)
		}
	}
	return pos{}, false
}

func formatCursor(ps []pos) string {
	slices.SortFunc(ps, func(a, b pos) int { return strings.Compare(a.hash, b.hash) })
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(entrySep)
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Next returns e.ID for a reader of one topic, and otherwise the cursor
// with e's position set. Positions of topics the reader does not read are
// kept while they fit store.MaxCursor.
//
// An indexed event that a pattern of topics matches moves that pattern's
// position in the event's index instead (see index.go).
func (s *Store) Next(cursor string, topics []string, e store.Event) string {
	if oneTopic(topics) && !store.IsPattern(topics[0]) {
		return e.ID
	}
	p, ok := s.position(topics, e)
	if !ok {
		return e.ID
	}
	ps, ok := parseCursor(cursor)
	if !ok {
		ps = nil
	}
	ps = slices.DeleteFunc(ps, func(q pos) bool { return q.hash == p.hash })
	ps = append(ps, p)
	c := formatCursor(ps)
	if len(c) > store.MaxCursor {
		want := s.wanted(topics)
		ps = slices.DeleteFunc(ps, func(q pos) bool { return !want[q.hash] })
		c = formatCursor(ps)
	}
	return c
}

// Seen reports whether cursor holds a position of e's topic in e's epoch
// at or after e. An event of another epoch than the cursor's is not Seen:
// the topic's history was lost and started again. For an indexed event
// that a pattern of topics matches, the position is the pattern's in the
// event's index.
func (s *Store) Seen(cursor string, topics []string, e store.Event) bool {
	if cursor == "" || len(cursor) > store.MaxCursor {
		return false
	}
	p, ok := s.position(topics, e)
	if !ok {
		return false
	}
	q, ok := findPos(cursor, p.hash)
	return ok && q.epoch == p.epoch && p.offset <= q.offset
}

// Compare orders two IDs of one topic by offset. IDs of two epochs of a
// topic (before and after Redis lost it) have no meaningful order; they
// are ordered by offset too, and then as strings.
func (s *Store) Compare(a, b string) int {
	pa, oka := parsePos(a)
	pb, okb := parsePos(b)
	if oka && okb && pa.offset != pb.offset {
		if pa.offset < pb.offset {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// oneTopic reports whether topics names a single topic (maybe repeated).
func oneTopic(topics []string) bool {
	for _, t := range topics[min(1, len(topics)):] {
		if t != topics[0] {
			return false
		}
	}
	return len(topics) > 0
}
