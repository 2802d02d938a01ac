package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
)

// pageSize is bbolt's page size for files created on this machine.
var pageSize = int64(os.Getpagesize())

// victimMarker is in the data of every event of the victim topic, so that
// a test finds the file pages that hold them.
const victimMarker = "VICTIM-7f3a9c"

// fill appends n events to topic "a", one transaction each, and returns
// the last ID.
func fill(t *testing.T, s *bolt.Store, n int) string {
	t.Helper()
	var last string
	for i := range n {
		got, err := s.Append(context.Background(), []store.Record{{Topic: "a", Data: fmt.Sprint("event ", i)}})
		if err != nil {
			t.Fatal(err)
		}
		last = got[0].Event.ID
	}
	return last
}

// appendVictims appends, in one transaction, events of topic "victim"
// large enough to fill several leaf pages under a branch page. One
// transaction writes each page once, so every page holding the marker is
// live.
func appendVictims(t *testing.T, s *bolt.Store) {
	t.Helper()
	recs := make([]store.Record, 200)
	for i := range recs {
		recs[i] = store.Record{Topic: "victim", Data: victimMarker + strings.Repeat("v", 200)}
	}
	if _, err := s.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// victimPages returns the numbers of the pages of the file at path that
// hold victimMarker.
func victimPages(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pages []int64
	for p := int64(0); (p+1)*pageSize <= int64(len(b)); p++ {
		if bytes.Contains(b[p*pageSize:(p+1)*pageSize], []byte(victimMarker)) {
			pages = append(pages, p)
		}
	}
	if len(pages) < 2 {
		t.Fatalf("found %d pages with the victim events, want several", len(pages))
	}
	return pages
}

// writeAt writes b into the file at path at off, as a disk or another
// program would: bbolt maps the file shared, so an open store sees it.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Ways to damage one page, each making bbolt misbehave differently.
var pageDamages = []struct {
	name   string
	damage func(page int64) []byte // the bytes written at the page's start
}{
	{
		// bbolt panics: "Page expected to be: N, but self identifies as M".
		name:   "page number changed",
		damage: func(page int64) []byte { return binary.NativeEndian.AppendUint64(nil, uint64(page)+7) },
	},
	{
		// bbolt panics on an unknown page type or reads out of range.
		name:   "page overwritten",
		damage: func(int64) []byte { return bytes.Repeat([]byte{0xff}, int(pageSize)) },
	},
}

// TestDamagedPageAtRunTime damages the pages of one topic while the store
// is open, as failing storage would, and checks that Append and Read of
// that topic fail with store.ErrCorrupt instead of crashing the process,
// and that Ping reports the damage from then on.
func TestDamagedPageAtRunTime(t *testing.T) {
	for _, tt := range pageDamages {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			s := open(t, path, store.Retention{})
			defer s.Close()
			ctx := context.Background()
			appendVictims(t, s)
			fill(t, s, 3)
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping before the damage: %v", err)
			}
			for _, p := range victimPages(t, path) {
				writeAt(t, path, p*pageSize, tt.damage(p))
			}
			_, err := s.Append(ctx, []store.Record{{Topic: "victim", Data: "after"}})
			if !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Append to the damaged topic: %v, want store.ErrCorrupt", err)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("Append error %q does not name the file", err)
			}
			if _, err := s.Read(ctx, []string{"victim"}, "", 0); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Read of the damaged topic: %v, want store.ErrCorrupt", err)
			}
			if err := s.Ping(ctx); !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Ping after the damage: %v, want store.ErrCorrupt", err)
			}
			t.Logf("Append error: %v", err)
		})
	}
}

// TestFileTruncatedAtRunTime truncates the file under an open store, so
// that the pages of a topic lie in the memory map but past the end of the
// file: reading them faults (SIGBUS), which kills a process that does not
// turn faults into panics. Read and Append must fail with store.ErrCorrupt
// instead.
func TestFileTruncatedAtRunTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path, store.Retention{})
	defer s.Close()
	ctx := context.Background()
	appendVictims(t, s)
	truncate(t, path, victimPages(t, path)[0]*pageSize)
	if _, err := s.Read(ctx, []string{"victim"}, "", 0); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Read of the topic past the end: %v, want store.ErrCorrupt", err)
	}
	if _, err := s.Append(ctx, []store.Record{{Topic: "victim", Data: "after"}}); !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Append to the topic past the end: %v, want store.ErrCorrupt", err)
	}
}

// TestOpenChecksFile damages a closed file and checks that Open refuses it
// with store.ErrCorrupt, naming the file and the way out, and that
// Options.SkipCheck opens it all the same.
func TestOpenChecksFile(t *testing.T) {
	tests := append([]struct {
		name   string
		damage func(page int64) []byte
	}{}, pageDamages...)
	// Keys out of order make bbolt neither panic nor fault; only its
	// consistency check finds them.
	tests = append(tests, struct {
		name   string
		damage func(page int64) []byte
	}{name: "keys out of order"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			s := open(t, path, store.Retention{})
			appendVictims(t, s)
			fill(t, s, 3)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, p := range victimPages(t, path) {
				if tt.damage != nil {
					writeAt(t, path, p*pageSize, tt.damage(p))
					continue
				}
				// The first leaf element: flags, pos, ksize, vsize (4
				// bytes each) after the page header; its key lies pos
				// bytes after the element.
				b := make([]byte, 24)
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.ReadAt(b, p*pageSize)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				pos := int64(binary.NativeEndian.Uint32(b[20:]))
				writeAt(t, path, p*pageSize+16+pos, bytes.Repeat([]byte{0xff}, 8))
			}
			_, err := bolt.Open(path, store.Retention{}, nil)
			assertDamaged(t, err, path)

			s, err = bolt.Open(path, store.Retention{}, &bolt.Options{SkipCheck: true})
			if err != nil {
				t.Fatalf("Open with SkipCheck: %v", err)
			}
			s.Close()
		})
	}
}

// assertDamaged checks Open's refusal of a damaged file.
func assertDamaged(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open: %v, want store.ErrCorrupt", err)
	}
	for _, want := range []string{path, "restore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open error %q does not say %q", err, want)
		}
	}
	t.Logf("Open error: %v", err)
}

// TestOpenRefusesDamagedFile checks Open on files that bbolt cannot use
// safely: each is refused with store.ErrCorrupt and a clear error, never a
// panic or a crash, and never opened as a new, empty store.
func TestOpenRefusesDamagedFile(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		want   string // in the error
	}{
		{
			name:   "empty file beside its ID mark",
			damage: func(t *testing.T, path string, _ int64) { truncate(t, path, 0) },
			want:   "IDs up to 220 were issued",
		},
		{
			name:   "truncated to the meta pages",
			damage: func(t *testing.T, path string, _ int64) { truncate(t, path, 2*pageSize) },
			want:   "truncated",
		},
		{
			name:   "truncated to ten pages",
			damage: func(t *testing.T, path string, _ int64) { truncate(t, path, 10*pageSize) },
			want:   "truncated",
		},
		{
			name:   "truncated by half",
			damage: func(t *testing.T, path string, size int64) { truncate(t, path, size/2) },
			want:   "truncated",
		},
		{
			name:   "truncated to one page",
			damage: func(t *testing.T, path string, _ int64) { truncate(t, path, pageSize) },
			want:   "meta page",
		},
		{
			name:   "truncated inside the first page",
			damage: func(t *testing.T, path string, _ int64) { truncate(t, path, 100) },
			want:   "meta page",
		},
		{
			name: "both meta pages damaged",
			damage: func(t *testing.T, path string, _ int64) {
				writeAt(t, path, 16, []byte("garbage!"))
				writeAt(t, path, pageSize+16, []byte("garbage!"))
			},
			want: "meta page",
		},
		{
			name: "ID mark damaged",
			damage: func(t *testing.T, path string, _ int64) {
				writeAt(t, path+bolt.MarkSuffix, 0, []byte("x"))
			},
			want: bolt.MarkSuffix,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			s := open(t, path, store.Retention{})
			appendVictims(t, s)
			fill(t, s, 20)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, path, fi.Size())
			s, err = bolt.Open(path, store.Retention{}, nil)
			if err == nil {
				head, _ := s.Head(context.Background(), nil)
				s.Close()
				t.Fatalf("Open succeeded, head %q", head)
			}
			assertDamaged(t, err, path)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error does not say %q", tt.want)
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}
