package bolt

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/internal/seqid"
)

func TestEventCodec(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name      string
		seq       uint64
		typ, data string
	}{
		{name: "plain", seq: 1, data: "hello"},
		{name: "typed", seq: 99, typ: "price", data: `{"p":1}`},
		{name: "empty", seq: 100},
		{name: "type only", seq: 12345, typ: "ping"},
		{name: "binary", seq: 1 << 40, typ: "\x00\xff", data: "\x00\r\n\xff"},
		{name: "long type", seq: 7, typ: string(make([]byte, 300)), data: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := decodeEvent(tt.seq, "topic", encodeEvent(at, tt.typ, tt.data))
			if err != nil {
				t.Fatal(err)
			}
			want := store.Event{ID: seqid.Format(tt.seq), Topic: "topic", Type: tt.typ, Data: tt.data, Time: at}
			if ev != want {
				t.Errorf("decode(encode) = %+v, want %+v", ev, want)
			}
		})
	}
}

func TestDecodeEventCorrupt(t *testing.T) {
	tests := []struct {
		name string
		v    []byte
	}{
		{name: "empty", v: nil},
		{name: "time only", v: make([]byte, 8)},
		{name: "type longer than value", v: append(make([]byte, 8), 5, 'a')},
		{name: "unterminated varint", v: append(make([]byte, 8), 0x80)},
		{name: "huge varint", v: append(make([]byte, 8), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, err := decodeEvent(1, "t", tt.v); !errors.Is(err, errCorrupt) {
				t.Errorf("decodeEvent = %+v, %v; want errCorrupt", ev, err)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(encodeEvent(time.Unix(1, 0), "type", "data"))
	f.Add([]byte{})
	f.Add(append(make([]byte, 8), 0x80))
	f.Fuzz(func(t *testing.T, v []byte) {
		ev, err := decodeEvent(42, "t", v)
		if err != nil {
			return
		}
		again, err := decodeEvent(42, "t", encodeEvent(ev.Time, ev.Type, ev.Data))
		if err != nil || again != ev {
			t.Errorf("re-encoded %+v decodes to %+v, %v", ev, again, err)
		}
	})
}

// TestClockNeverGoesBack checks that an event committed while the wall
// clock is behind the last commit gets the last commit's time.
func TestClockNeverGoesBack(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "events.db"), store.Retention{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	future := time.Now().Add(time.Hour).UTC().Round(0)
	err = s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyTime, be64(uint64(future.UnixNano())))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Append(t.Context(), []store.Record{{Topic: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Event.Time.Equal(future) {
		t.Errorf("event time %v, want the last commit's %v", got[0].Event.Time, future)
	}
}

// TestKeyExpiresAtAppend checks that a key older than the window is new to
// Append even before Trim forgets it.
func TestKeyExpiresAtAppend(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "events.db"), store.Retention{IdempotencyWindow: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, err := s.Append(t.Context(), []store.Record{{Topic: "a", IdempotencyKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Duration // after the first event
		dup  bool
	}{
		{name: "within the window", at: time.Minute, dup: true},
		{name: "after the window", at: time.Minute + time.Nanosecond, dup: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.db.View(func(tx *bbolt.Tx) error {
				_, dup, err := newWriter(tx, 0).remembered("k", first[0].Event.Time.Add(tt.at), s.window)
				if dup != tt.dup {
					t.Errorf("remembered = %v, want %v", dup, tt.dup)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
