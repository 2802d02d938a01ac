package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/internal/seqid"
)

// appendOne appends one event to topic "a" and returns its ID.
func appendOne(t *testing.T, s *bolt.Store, data string) string {
	t.Helper()
	got, err := s.Append(context.Background(), []store.Record{{Topic: "a", Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return got[0].Event.ID
}

// assertAfter fails unless id is a valid ID after every ID up to last.
func assertAfter(t *testing.T, id, last string) {
	t.Helper()
	if _, ok := seqid.Parse(id); !ok || seqid.Compare(id, last) != 1 {
		t.Fatalf("new ID %q, want one after %q: an acknowledged ID was issued again", id, last)
	}
}

// openLogged opens path with a logger that writes to the returned buffer.
func openLogged(t *testing.T, path string) (*bolt.Store, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := bolt.Open(path, store.Retention{}, &bolt.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, &logs
}

// TestDamagedMetaPageKeepsIDs damages the newest of bbolt's two meta pages
// after the last acknowledged Append. bbolt then falls back to the other
// page, one transaction older, and that event is lost; its ID must not be
// handed out again, and Open must say what happened.
func TestDamagedMetaPageKeepsIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path, store.Retention{})
	fill(t, s, 10)
	last := appendOne(t, s, "the newest, acknowledged")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The transaction ID is at byte 48 of the meta, after the 16-byte
	// page header; the newer page has the higher one.
	newest := int64(0)
	txids := [2]uint64{}
	for p := range int64(2) {
		b := make([]byte, 8)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadAt(b, p*pageSize+16+48)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		txids[p] = binary.NativeEndian.Uint64(b)
	}
	if txids[1] > txids[0] {
		newest = 1
	}
	writeAt(t, path, newest*pageSize+16, []byte("damaged!"))

	s, logs := openLogged(t, path)
	head, err := s.Head(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if head == last {
		t.Fatalf("Head = %q: the damaged meta page was used", head)
	}
	next := appendOne(t, s, "after the damage")
	assertAfter(t, next, last)
	for _, want := range []string{"damaged meta page", "newest transaction may be lost", path} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("Open logged %q, want it to say %q", logs.String(), want)
		}
	}
	t.Logf("head %s after losing %s; next ID %s; log: %s", head, last, next, logs.String())
}

// TestLostFileKeepsIDs replaces the data file by an older copy, or removes
// it, after acknowledged Appends: the store goes on, and no acknowledged ID
// is handed out again.
func TestLostFileKeepsIDs(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, path, backup string)
		log  string // what Open must log, if anything
	}{
		{
			name: "restored from an older backup",
			lose: func(t *testing.T, path, backup string) {
				if err := os.Rename(backup, path); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "moved aside",
			lose: func(t *testing.T, path, _ string) {
				if err := os.Rename(path, path+".damaged"); err != nil {
					t.Fatal(err)
				}
			},
			log: "data file missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			s := open(t, path, store.Retention{})
			fill(t, s, 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			backup := path + ".backup"
			copyFile(t, path, backup)
			s = open(t, path, store.Retention{})
			last := fill(t, s, 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tt.lose(t, path, backup)
			s, logs := openLogged(t, path)
			assertAfter(t, appendOne(t, s, "after the loss"), last)
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("Open logged %q, want %q", logs.String(), tt.log)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCleanCloseLeavesNoGap checks that the IDs reserved in a block do not
// show after a clean Close: the next Open goes on with the next ID.
func TestCleanCloseLeavesNoGap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path, store.Retention{})
	last := fill(t, s, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, store.Retention{})
	defer s.Close()
	n, _ := seqid.Parse(last)
	if got, want := appendOne(t, s, "next"), seqid.Format(n+1); got != want {
		t.Errorf("ID after a clean reopen = %s, want %s", got, want)
	}
}

// TestOpenEmptyFileWithoutMark checks that an empty file with no ID mark
// beside it, as a crash while creating the store leaves, opens as a new
// store.
func TestOpenEmptyFileWithoutMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, path, store.Retention{})
	defer s.Close()
	if got := appendOne(t, s, "first"); got != "1" {
		t.Errorf("first ID %q, want 1", got)
	}
}

// TestCrashKeepsIDs kills a process that appends in a loop, then loses the
// data file: the ID mark the killed process left must cover every ID it
// acknowledged, so none is handed out again.
func TestCrashKeepsIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "events.db")
	got := crashOnce(t, path, 100)
	if err := os.Rename(path, path+".lost"); err != nil {
		t.Fatal(err)
	}
	s, _ := openLogged(t, path)
	next, err := s.Append(context.Background(), []store.Record{{Topic: "t0", Data: "after the crash"}})
	if err != nil {
		t.Fatal(err)
	}
	assertAfter(t, next[0].Event.ID, got[len(got)-1].id)
}
