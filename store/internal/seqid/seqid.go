// Package seqid formats, parses and orders the event IDs of the stores that
// number events with one global sequence (store/memory and store/bolt): the
// canonical decimal form of a uint64, "1", "2", …, with no sign and no
// leading zero.
//
// The cursor "0" is valid and means "before the first event". Package seqid
// is not for stores with other ID schemes.
package seqid

import (
	"fmt"
	"strconv"

	"github.com/sseguard/sseguard/store"
)

// Format returns the ID of sequence number n.
func Format(n uint64) string {
	return strconv.FormatUint(n, 10)
}

// Parse returns the sequence number of id, and false when id is not in
// canonical form.
func Parse(id string) (uint64, bool) {
	if id == "" || len(id) > 20 || (id[0] == '0' && len(id) > 1) {
		return 0, false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Compare orders two IDs numerically: -1, 0 or +1. Canonical IDs have no
// leading zeros, so a shorter one is smaller and IDs of one length order
// like strings; non-canonical input still gets a consistent total order.
func Compare(a, b string) int {
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Seen reports whether the event id is at or before cursor; the empty or
// a malformed cursor has seen nothing.
func Seen(cursor, id string) bool {
	if _, ok := Parse(cursor); !ok {
		return false
	}
	return Compare(id, cursor) <= 0
}

// Cursor returns the sequence number of a Read cursor: 0 for the empty
// cursor (from the oldest event), and an error wrapping
// store.ErrUnknownCursor, prefixed with who, when it is malformed.
func Cursor(who, after string) (uint64, error) {
	if after == "" {
		return 0, nil
	}
	n, ok := Parse(after)
	if !ok {
		return 0, fmt.Errorf("%s: read: malformed cursor: %w", who, store.ErrUnknownCursor)
	}
	return n, nil
}
