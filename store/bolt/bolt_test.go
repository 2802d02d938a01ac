package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return open(t, filepath.Join(t.TempDir(), "events.db"), r)
	})
}

func TestDurability(t *testing.T) {
	storetest.RunDurable(t, func(t *testing.T, dir string, r store.Retention) store.Store {
		return open(t, filepath.Join(dir, "events.db"), r)
	})
}

func open(t *testing.T, path string, r store.Retention) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, r, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "events.db")
	s := open(t, path, store.Retention{})
	defer s.Close()
	tests := []struct {
		name string
		path string
		mode os.FileMode
	}{
		{name: "folder", path: dir, mode: 0o700 | os.ModeDir},
		{name: "file", path: path, mode: 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("mode %v, want %v", fi.Mode(), tt.mode)
			}
		})
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path, store.Retention{})
	defer s.Close()
	start := time.Now()
	second, err := bolt.Open(path, store.Retention{}, &bolt.Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second Open waited %v for a 50ms lock timeout", waited)
	}
	t.Logf("error: %v", err)
}

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{
			name: "not a bbolt file",
			setup: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("hello, this is not a database file at all"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "another application's bbolt file",
			setup: func(t *testing.T, path string) {
				db, err := bbolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				err = db.Update(func(tx *bbolt.Tx) error {
					_, err := tx.CreateBucket([]byte("other"))
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "newer format",
			setup: func(t *testing.T, path string) {
				s := open(t, path, store.Retention{})
				s.Close()
				db, err := bbolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				err = db.Update(func(tx *bbolt.Tx) error {
					return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte{0, 0, 0, 0, 0, 0, 0, 9})
				})
				if err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.db")
			tt.setup(t, path)
			s, err := bolt.Open(path, store.Retention{}, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestAppendRejects(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "events.db"), store.Retention{})
	defer s.Close()
	long := string(make([]byte, bbolt.MaxKeySize+1))
	tests := []struct {
		name string
		rec  store.Record
	}{
		{name: "topic too long", rec: store.Record{Topic: long}},
		{name: "idempotency key too long", rec: store.Record{Topic: "a", IdempotencyKey: long}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Append(context.Background(), []store.Record{tt.rec}); err == nil {
				t.Error("Append succeeded")
			}
		})
	}
}

// TestRetentionLowered checks that a store reopened with a lower
// MaxEventsPerTopic trims the surplus and reports the gap.
func TestRetentionLowered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path, store.Retention{})
	ctx := context.Background()
	var first string
	for i := range 10 {
		got, err := s.Append(ctx, []store.Record{{Topic: "a", Data: string(rune('0' + i))}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = got[0].Event.ID
		}
	}
	s.Close()
	s = open(t, path, store.Retention{MaxEventsPerTopic: 4})
	defer s.Close()
	n, err := s.Trim(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("Trim removed %d events, want 6", n)
	}
	page, err := s.Read(ctx, []string{"a"}, first, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 4 || !page.Truncated || page.Events[0].Data != "6" {
		t.Errorf("Read = %+v, want the 4 newest events and Truncated", page)
	}
}
