package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/sseguard/sseguard/store"
)

// guard runs fn and turns a panic into a *panicError, which wraps
// store.ErrCorrupt. bbolt panics on some damaged pages, and a damaged page
// number can point outside the memory-mapped file, which faults:
// debug.SetPanicOnFault turns that fault into a panic of this goroutine
// instead of a crash of the process. bbolt runs a transaction, its function
// and its commit on the calling goroutine, so the guard covers all of it;
// Update and View roll the transaction back on the way out.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{v: r}
		}
	}()
	return fn()
}

// panicError is a panic that guard recovered.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("bbolt panicked: %v", e.v) }

func (e *panicError) Unwrap() error { return store.ErrCorrupt }

// The layout of a bbolt meta page (go.etcd.io/bbolt/internal/common.Meta
// after the 16-byte page header), in the machine's byte order. bbolt keeps
// two, in pages 0 and 1, and writes them in turn: the valid one with the
// higher transaction ID is the current one.
const (
	metaStart    = 16
	metaMagic    = 0xED0CDAED
	metaVersion  = 2
	metaSumStart = 56 // the checksum, FNV-64a of the bytes before it
	metaEnd      = metaSumStart + 8
)

// metaPage is what one meta page says.
type metaPage struct {
	valid    bool
	pageSize uint32
	pages    uint64 // pages in use: the file holds at least pages*pageSize bytes
	txid     uint64
}

func parseMeta(page []byte) metaPage {
	if len(page) < metaStart+metaEnd {
		return metaPage{}
	}
	m := page[metaStart : metaStart+metaEnd]
	e := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumStart])
	if e.Uint32(m) != metaMagic || e.Uint32(m[4:]) != metaVersion || e.Uint64(m[metaSumStart:]) != h.Sum64() {
		return metaPage{}
	}
	return metaPage{valid: true, pageSize: e.Uint32(m[8:]), pages: e.Uint64(m[40:]), txid: e.Uint64(m[48:])}
}

// fileState is what the meta pages of a data file say about it.
type fileState struct {
	size  int64
	metas [2]metaPage
}

// inspect reads the two meta pages of the file at path, which is not
// empty. Like bbolt, it finds the second page at the page size the first
// one states, or at the OS page size when the first one is damaged.
func inspect(path string) (fileState, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileState{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileState{}, err
	}
	st := fileState{size: fi.Size()}
	buf := make([]byte, metaStart+metaEnd)
	read := func(off int64) (metaPage, error) {
		n, err := f.ReadAt(buf, off)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return parseMeta(buf[:n]), err
	}
	if st.metas[0], err = read(0); err != nil {
		return fileState{}, err
	}
	second := int64(os.Getpagesize())
	if st.metas[0].valid {
		second = int64(st.metas[0].pageSize)
	}
	if st.metas[1], err = read(second); err != nil {
		return fileState{}, err
	}
	return st, nil
}

// current returns the index of the meta page bbolt uses, or -1 when both
// are damaged.
func (st fileState) current() int {
	a, b := st.metas[0], st.metas[1]
	switch {
	case a.valid && (!b.valid || a.txid >= b.txid):
		return 0
	case b.valid:
		return 1
	}
	return -1
}

// damage describes why bbolt cannot use the file safely, or returns "".
func (st fileState) damage() string {
	i := st.current()
	if i < 0 {
		return "neither meta page (pages 0 and 1) is valid: the file is not a bbolt file, or its header is damaged"
	}
	m := st.metas[i]
	if need := int64(m.pages) * int64(m.pageSize); st.size < need {
		return fmt.Sprintf("the file is truncated: %d bytes, but its meta page %d says %d", st.size, i, need)
	}
	return ""
}

// verify reads every page reachable from the current meta page on this
// goroutine, under guard, then runs bbolt's consistency check (tx.Check),
// which reads the whole file once more. The walk comes first because the
// check runs on a goroutine of its own, where a damaged page number would
// fault beyond recovery; after the walk every reachable page is known to
// lie inside the file.
func (s *Store) verify() error {
	prefetch(s.path)
	return s.run(false, func(tx *bbolt.Tx) error {
		if err := tx.ForEach(func(_ []byte, b *bbolt.Bucket) error {
			walk(b)
			return nil
		}); err != nil {
			return err
		}
		var found []string
		n := 0
		for err := range tx.Check() { // drained to the end: the check stops only then
			if n++; len(found) < 3 {
				found = append(found, err.Error())
			}
		}
		if n > 0 {
			return fmt.Errorf("consistency check found %d problems: %s", n, strings.Join(found, "; "))
		}
		return nil
	})
}

// walk visits every key of b and of the buckets inside it, which reads
// every branch and leaf page of the tree.
func walk(b *bbolt.Bucket) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				walk(child)
			}
		}
	}
}

// prefetch reads the file from start to end, so that the check's reads in
// tree order find its pages in the OS cache: on a 1.4 GB file read cold, it
// makes the check take about 5 s instead of about 30 s. Errors are left to
// the check.
func prefetch(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
	}
}
