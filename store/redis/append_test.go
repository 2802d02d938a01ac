package redis

import (
	"context"
	"fmt"
	"testing"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// TestAppendManyTopicsOneCall: one Append over several topics (one script
// call on a single Redis), with duplicates inside the batch and from an
// earlier one, answers every record in its place: stored records take
// their topic's next offsets in order, duplicates the first event (with
// its data), a key reused for other data a conflict; Read returns the
// stored events only, in order.
func TestAppendManyTopicsOneCall(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr)})
	first := mustAppend(t, s, store.Record{Topic: "b", Data: "b0", IdempotencyKey: "kb"})[0]

	recs := []store.Record{
		{Topic: "a", Data: "a1"},
		{Topic: "b", Data: "b0", IdempotencyKey: "kb"}, // a retry of the earlier one
		{Topic: "a", Data: "a2", Type: "x", IdempotencyKey: "ka"},
		{Topic: "c", Data: "c1"},
		{Topic: "a", Data: "a2", Type: "x", IdempotencyKey: "ka"}, // a retry within the batch
		{Topic: "b", Data: "b1"},
		{Topic: "b", Data: "other", IdempotencyKey: "kb"}, // the key, other data
		{Topic: "a", Data: "a3"},
	}
	got := mustAppend(t, s, recs...)
	if len(got) != len(recs) {
		t.Fatalf("%d results for %d records", len(got), len(recs))
	}
	want := map[string][]string{"a": {"a1", "a2", "a3"}, "b": {"b0", "b1"}, "c": {"c1"}}
	stored := map[int]bool{0: true, 2: true, 3: true, 5: true, 7: true}
	for i, g := range got {
		r := recs[i]
		if g.Err != nil || g.Event.Topic != r.Topic {
			t.Errorf("record %d: %+v", i, g)
			continue
		}
		if stored[i] {
			if g.Duplicate || g.Event.Data != r.Data || g.Event.Type != r.Type || g.Event.Time.IsZero() {
				t.Errorf("record %d: %+v, want it stored as sent", i, g)
			}
			continue
		}
		if !g.Duplicate {
			t.Errorf("record %d: %+v, want a duplicate", i, g)
		}
	}
	if got[1].Event != first.Event || got[1].Conflict {
		t.Errorf("retry of an earlier key: %+v, want %+v", got[1], first.Event)
	}
	if got[4].Event != got[2].Event || got[4].Conflict {
		t.Errorf("retry within the batch: %+v, want %+v", got[4], got[2].Event)
	}
	if !got[6].Conflict || got[6].Event != first.Event {
		t.Errorf("key reused for other data: %+v, want a conflict with %+v", got[6], first.Event)
	}
	for topic, data := range want {
		page, err := s.Read(context.Background(), []string{topic}, "", 0)
		if err != nil {
			t.Fatalf("Read %s: %v", topic, err)
		}
		var gotData []string
		for _, e := range page.Events {
			gotData = append(gotData, e.Data)
		}
		if fmt.Sprint(gotData) != fmt.Sprint(data) {
			t.Errorf("topic %s holds %q, want %q", topic, gotData, data)
		}
		// The IDs Append gave are the ones Read gives.
		byID := map[string]string{}
		for _, e := range page.Events {
			byID[e.ID] = e.Data
		}
		for i, g := range got {
			if stored[i] && g.Event.Topic == topic && byID[g.Event.ID] != g.Event.Data {
				t.Errorf("record %d: ID %s holds %q in the store, want %q", i, g.Event.ID, byID[g.Event.ID], g.Event.Data)
			}
		}
	}
}

// TestKeySlot: the slot keySlot computes for a hash tag is Redis's
// (CLUSTER KEYSLOT on a real server), so that the topics of a call share
// a slot on a Cluster.
func TestKeySlot(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})
	for _, topic := range []string{"a", "bench", "orders/42", "tö", "x%7By", "123456789"} {
		key := "sseguard:{" + tag(topic) + "}:m"
		want, err := c.Nodes[0].Do("CLUSTER", "KEYSLOT", key)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(keySlot(tag(topic))); got != want {
			t.Errorf("keySlot(%q) = %s; Redis says %s", tag(topic), got, want)
		}
	}
}
