package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/memory"
)

// patternStores are the stores that serve topic patterns.
var patternStores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(t *testing.T) store.Store { return memory.New(store.Retention{}) }},
	{"bolt", func(t *testing.T) store.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "events.db"), store.Retention{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}},
}

// TestPatternStreamResumes: a token allowed orders/* subscribes to
// orders/* and gets the events of orders/1 and orders/2, not of other
// topics; after a reconnect with Last-Event-ID it gets exactly what it
// missed, a topic that appeared meanwhile included; a stream of "*" never
// gets the reserved sseguard:dashboard.
func TestPatternStreamResumes(t *testing.T) {
	for _, ps := range patternStores {
		t.Run(ps.name, func(t *testing.T) {
			ts := start(t, nil, ps.open(t))
			pub := token(t, allPerms, time.Hour)
			sub := token(t, auth.Permissions{Subscribe: []string{"orders/*"}}, time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			sctx, stop := context.WithCancel(ctx)
			res, p := ts.openStream(t, sctx, "topic=orders/*", bearerHeader(sub))
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			_, everything := ts.openStream(t, ctx, "topic=*", bearerHeader(pub))
			waitSubscribers(t, ts.hub, 2)
			id1 := ts.mustPublish(t, pub, "orders/1", "a")
			ts.mustPublish(t, pub, "misc", "b")
			if _, err := ts.hub.Publish(ctx, store.Record{Topic: DashboardTopic, Data: "{}"}); err != nil {
				t.Fatal(err)
			}
			id2 := ts.mustPublish(t, pub, "orders/2", "c")
			for _, want := range []string{id1, id2} {
				if e := nextEvent(t, p); e.ID != want {
					t.Fatalf("got %+v, want id %s", e, want)
				}
			}
			stop()
			waitSubscribers(t, ts.hub, 1)
			// Missed while away: one event of a known topic, one of a new one.
			id3 := ts.mustPublish(t, pub, "orders/1", "d")
			ts.mustPublish(t, pub, "misc", "e")
			id4 := ts.mustPublish(t, pub, "orders/new", "f")
			h := bearerHeader(sub)
			h.Set("Last-Event-ID", id2)
			_, p = ts.openStream(t, ctx, "topic=orders/*", h)
			waitSubscribers(t, ts.hub, 2)
			id5 := ts.mustPublish(t, pub, "orders/2", "g")
			for _, want := range []string{id3, id4, id5} {
				if e := nextEvent(t, p); e.ID != want {
					t.Fatalf("after the reconnect got %+v, want id %s", e, want)
				}
			}
			// The "*" stream saw every event but the dashboard's, in order.
			var got []string
			for range 7 {
				e := nextEvent(t, everything)
				if e.Data == "{}" {
					t.Fatalf("* delivered an event of %s", DashboardTopic)
				}
				got = append(got, e.Data)
			}
			if want := "[a b c d e f g]"; "["+strings.Join(got, " ")+"]" != want {
				t.Fatalf("* got %q, want %s", got, want)
			}
		})
	}
}

// TestPatternPollAndWS: /api/poll and /ws take the same patterns, with
// the same cursor.
func TestPatternPollAndWS(t *testing.T) {
	ts := start(t, nil, nil)
	pub := token(t, allPerms, time.Hour)
	sub := token(t, auth.Permissions{Subscribe: []string{"orders/*"}}, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id1 := ts.mustPublish(t, pub, "orders/1", "a")
	ts.mustPublish(t, pub, "misc", "b")
	id2 := ts.mustPublish(t, pub, "orders/2", "c")
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/api/poll?topic="+url.QueryEscape("orders/*")+"&after=0", nil)
	req.Header = bearerHeader(sub)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans pollAnswer
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || res.StatusCode != 200 {
		t.Fatalf("poll: %d %v", res.StatusCode, err)
	}
	if len(ans.Events) != 2 || ans.Events[0].ID != id1 || ans.Events[1].ID != id2 {
		t.Fatalf("poll gave %+v, want %s and %s", ans.Events, id1, id2)
	}
	// The poll's cursor resumes a WebSocket.
	c := ts.dialWS(t, ctx, "topic=orders/*&lastEventId="+url.QueryEscape(ans.Next), bearerHeader(sub))
	waitSubscribers(t, ts.hub, 1)
	ts.mustPublish(t, pub, "misc", "d")
	id3 := ts.mustPublish(t, pub, "orders/3", "e")
	if m := wsRead(t, ctx, c); m.ID != id3 || m.Topic != "orders/3" {
		t.Fatalf("ws got %+v, want %s of orders/3", m, id3)
	}
}

// TestPatternAnonymous: an anonymous pattern is accepted only inside
// auth.anonymous_subscribe.
func TestPatternAnonymous(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Auth.AnonymousSubscribe = &[]string{"public/*"} }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for q, want := range map[string]int{"topic=public/*": 200, "topic=public/news/*": 200, "topic=*": 401, "topic=pub*": 401} {
		res, _ := ts.openStream(t, ctx, q, nil)
		if res.StatusCode != want {
			t.Errorf("anonymous %s: status %d, want %d", q, res.StatusCode, want)
		}
		res.Body.Close()
	}
}

// TestPatternUnsupportedStore: a store that does not read patterns
// (vector cursors: memory.Shared, store/redis) refuses them with a 400
// that says so, rather than serving a stream it could not resume.
func TestPatternUnsupportedStore(t *testing.T) {
	ts := start(t, nil, memory.NewShared(store.Retention{}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, _ := ts.openStream(t, ctx, "topic=orders/*", bearerHeader(token(t, allPerms, time.Hour)))
	assertProblem(t, res, 400, "bad_request")
}
