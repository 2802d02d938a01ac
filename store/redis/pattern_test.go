package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"

	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/storetest"
)

// conformancePrefixes index every topic (""), with two nested prefixes
// under it, so that the whole suite runs on indexed topics and the
// pattern cases read patterns that span one index ("orders/eu/*") or
// several ("*", "orders*").
var conformancePrefixes = []string{"", "orders/", "orders/eu/"}

func TestConformancePatterns(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return openStore(t, Config{Client: testClient(srv.Addr), Retention: r, PatternPrefixes: conformancePrefixes})
	})
}

func TestConformancePatternsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 0, redistest.Options{})
	storetest.Run(t, func(t *testing.T, r store.Retention) store.Store {
		return openStore(t, Config{Client: testClient(c.Addrs()...), Retention: r, PatternPrefixes: conformancePrefixes})
	})
}

// TestPatternOK: a pattern is served only under a declared prefix, and
// the refusal names the setting; a store that declares none reads none.
func TestPatternOK(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	none := openStore(t, Config{Client: testClient(srv.Addr)})
	if store.SupportsPatterns(none) || !errors.Is(store.CheckPattern(none, "orders/*"), store.ErrPatternNotServed) {
		t.Errorf("a store without pattern prefixes reads patterns")
	}
	s := openStore(t, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/", "chat/"}})
	for _, p := range []string{"orders/*", "orders/eu/*", "orders/1*", "chat/*"} {
		if err := store.CheckPattern(s, p); err != nil {
			t.Errorf("CheckPattern(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"*", "orders*", "order*", "other/*", "sseguard:*"} {
		err := store.CheckPattern(s, p)
		if !errors.Is(err, store.ErrPatternNotServed) {
			t.Errorf("CheckPattern(%q) = %v, want ErrPatternNotServed", p, err)
		}
		if _, err := s.Read(context.Background(), []string{p}, "", 0); !errors.Is(err, store.ErrPatternNotServed) {
			t.Errorf("Read(%q) = %v, want ErrPatternNotServed", p, err)
		}
	}
	if err := s.PatternOK("other/*"); err == nil || !strings.Contains(err.Error(), "store.redis.pattern_prefixes") {
		t.Errorf("PatternOK(other/*) = %v, want a message naming store.redis.pattern_prefixes", err)
	}
	wide := openStore(t, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"", "orders/"}})
	for _, p := range []string{"*", "orders*", "x/*"} {
		if err := wide.PatternOK(p); err != nil {
			t.Errorf("with \"\" declared, PatternOK(%q) = %v", p, err)
		}
	}
	for _, bad := range [][]string{{"a*"}, {"sseguard:"}, {"a", "a"}} {
		if _, err := Open(context.Background(), Config{Client: testClient(srv.Addr), PatternPrefixes: bad}); err == nil {
			t.Errorf("Open with pattern prefixes %q succeeded", bad)
		}
	}
}

// TestPatternKeysShareSlot: an indexed topic's keys and its index's keys
// hash to one Cluster slot (so one script may touch them all), and
// topics whose names look alike keep apart.
func TestPatternKeysShareSlot(t *testing.T) {
	s := &Store{prefix: "p"}
	if err := s.setPrefixes([]string{"orders/", ""}); err != nil {
		t.Fatal(err)
	}
	ix := s.index("orders/")
	k := s.keys("orders/{1}:k:x")
	for _, key := range []string{k.meta, k.stream, k.idem("a"), ix.stream} {
		if slotOf(key) != slotOf(ix.meta) {
			t.Errorf("key %q has the hash tag %q, the index meta %q has %q", key, slotOf(key), ix.meta, slotOf(ix.meta))
		}
	}
	seen := map[string]string{}
	for _, topic := range []string{"orders/a", "orders/a:s", "orders/a:k:x", "x", "x:m"} {
		k := s.keys(topic)
		for _, key := range []string{k.meta, k.stream, k.idem("x:m")} {
			if o, ok := seen[key]; ok {
				t.Errorf("topics %q and %q share the key %q", o, topic, key)
			}
			seen[key] = topic
		}
	}
	if _, ok := s.indexOf(store.ReservedPrefix + "dashboard"); ok {
		t.Errorf("a reserved topic is indexed")
	}
}

// slotOf is the hash tag of key: what Redis Cluster hashes.
func slotOf(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

// TestPatternCursorOfAnotherPattern: a cursor of one pattern used with
// another pattern of the same index names nothing of it, so the other
// pattern is read whole: its events that came before the cursor's point
// are not skipped (its position in the shared index would skip them).
func TestPatternCursorOfAnotherPattern(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/"}})
	ctx := context.Background()
	var us []string
	for i := range 6 {
		got := mustAppend(t, s, store.Record{Topic: "orders/eu/1", Data: fmt.Sprint(i)}, store.Record{Topic: "orders/us/1", Data: fmt.Sprint(i)})
		us = append(us, got[1].Event.ID)
	}
	eu := []string{"orders/eu/*"}
	page, err := s.Read(ctx, eu, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	cursor := ""
	for _, e := range page.Events {
		cursor = s.Next(cursor, eu, e)
	}
	if !store.ValidCursor(cursor) || len(page.Events) != 6 {
		t.Fatalf("cursor %q after %d events", cursor, len(page.Events))
	}
	other := []string{"orders/us/*"}
	page, err = s.Read(ctx, other, cursor, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Events {
		got = append(got, e.ID)
		if s.Seen(cursor, other, e) {
			t.Errorf("Seen(cursor of orders/eu/*, orders/us/*, %s) = true", e.ID)
		}
	}
	if !slices.Equal(got, us) {
		t.Errorf("Read(orders/us/*, cursor of orders/eu/*) = %q, want every orders/us event %q", got, us)
	}
}

// TestPatternRetentionReset: a pattern cursor older than what the index
// retains reads with Truncated (event: reset), then the retained events.
func TestPatternRetentionReset(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/"},
		Retention: store.Retention{MaxEventsPerTopic: 2}})
	ctx := context.Background()
	topics := []string{"orders/*"}
	first := mustAppend(t, s, store.Record{Topic: "orders/1", Data: "a"}, store.Record{Topic: "orders/2", Data: "a"})
	cursor := s.Next(s.Next("", topics, first[0].Event), topics, first[1].Event)
	for i := range 10 {
		mustAppend(t, s, store.Record{Topic: "orders/1", Data: fmt.Sprint(i)}, store.Record{Topic: "orders/2", Data: fmt.Sprint(i)})
	}
	if _, err := s.Trim(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	page, err := s.Read(ctx, topics, cursor, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Two topics of two events each: the index keeps 2 × 2 entries.
	if !page.Truncated || len(page.Events) != 4 {
		t.Fatalf("Read after retention: truncated %v, %d events; want a reset and the 4 retained", page.Truncated, len(page.Events))
	}
	// Read from where the reset left the reader: nothing more, no reset.
	for _, e := range page.Events {
		cursor = s.Next(cursor, topics, e)
	}
	page, err = s.Read(ctx, topics, cursor, 0)
	if err != nil || page.Truncated || len(page.Events) != 0 {
		t.Fatalf("Read after the retained events: %v, truncated %v, %d events", err, page.Truncated, len(page.Events))
	}
}

// TestPatternLoss: a Redis restarted without persistence loses the index:
// a pattern cursor from before reads with Truncated from the new epoch,
// never with a silent gap; a cursor past the index's end is unknown.
func TestPatternLoss(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/"}})
	ctx := context.Background()
	topics := []string{"orders/*"}
	cursor := ""
	for _, a := range mustAppend(t, s, store.Record{Topic: "orders/1", Data: "a"}, store.Record{Topic: "orders/2", Data: "b"}) {
		cursor = s.Next(cursor, topics, a.Event)
	}
	srv.Kill()
	srv.Restart()
	var after []store.Appended
	eventually.True(t, 0, func() bool {
		got, err := s.Append(ctx, []store.Record{{Topic: "orders/3", Data: "c"}})
		after = got
		return err == nil
	}, "Redis answers again")
	page, err := s.Read(ctx, topics, cursor, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !page.Truncated || len(page.Events) != 1 || page.Events[0].ID != after[0].Event.ID {
		t.Fatalf("Read after the loss: truncated %v, events %v; want a reset and %s", page.Truncated, page.Events, after[0].Event.ID)
	}
	// A cursor past the index's end: the store never issued it.
	_, ix, _ := parseID(after[0].Event.ID)
	bogus := pos{hash: s.posKey("orders/*", "orders/"), epoch: ix.epoch, offset: ix.offset + 5}.String()
	if _, err := s.Read(ctx, topics, bogus, 0); !errors.Is(err, store.ErrUnknownCursor) {
		t.Errorf("Read after a position past the index's end: %v, want ErrUnknownCursor", err)
	}
}

// TestIndexRetentionCountsTopics: an index keeps max_events_per_topic
// times the topics that append to it, also after Redis lost the index
// alone (its topics kept): the new epoch counts them again as they append.
func TestIndexRetentionCountsTopics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openStore(t, Config{Client: testClient(srv.Addr), PatternPrefixes: []string{"orders/"},
		Retention: store.Retention{MaxEventsPerTopic: 2}})
	ctx := context.Background()
	round := func() {
		for i := range 4 {
			mustAppend(t, s, store.Record{Topic: "orders/1", Data: fmt.Sprint(i)},
				store.Record{Topic: "orders/2", Data: fmt.Sprint(i)}, store.Record{Topic: "orders/3", Data: fmt.Sprint(i)})
		}
		if _, err := s.Trim(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ix := s.index("orders/")
	round()
	if n, err := s.c.XLen(ctx, ix.stream).Result(); err != nil || n != 6 {
		t.Fatalf("index holds %d entries (%v), want 2 per topic, 6", n, err)
	}
	// The index alone is lost (evicted): its topics go on.
	if err := s.c.Del(ctx, ix.meta, ix.stream).Err(); err != nil {
		t.Fatal(err)
	}
	round()
	if n, err := s.c.XLen(ctx, ix.stream).Result(); err != nil || n != 6 {
		t.Fatalf("after the index was lost, it holds %d entries (%v), want 6", n, err)
	}
}

// TestPrefixChangeResets: declaring a prefix moves its topics to other
// keys; a cursor from before reads the topic's new history with a reset
// (a new epoch), never the old events mixed with the new ones.
func TestPrefixChangeResets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := nextPrefix()
	before := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix})
	ctx := context.Background()
	for _, topics := range [][]string{{"orders/1"}, {"orders/1", "misc"}} {
		old := mustAppend(t, before, store.Record{Topic: "orders/1", Data: "old"}, store.Record{Topic: "misc", Data: "m"})
		cursor := ""
		for _, a := range old {
			if slices.Contains(topics, a.Event.Topic) {
				cursor = before.Next(cursor, topics, a.Event)
			}
		}
		after := openStore(t, Config{Client: testClient(srv.Addr), Prefix: prefix, PatternPrefixes: []string{"orders/"}})
		fresh := mustAppend(t, after, store.Record{Topic: "orders/1", Data: "new"})[0].Event
		page, err := after.Read(ctx, topics, cursor, 0)
		if err != nil {
			t.Fatal(err)
		}
		var data []string
		for _, e := range page.Events {
			if e.Topic == "orders/1" {
				data = append(data, e.Data)
			}
		}
		if !page.Truncated || !slices.Contains(data, "new") || slices.Contains(data, "old") {
			t.Errorf("Read(%q) after orders/ was declared: truncated %v, orders/1 data %q; want a reset and only the new history (%s)", topics, page.Truncated, data, fresh.ID)
		}
		if err := after.c.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
