package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
	"github.com/sseguard/sseguard/store/memory"
	redisstore "github.com/sseguard/sseguard/store/redis"
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
	// Every topic indexed (""), orders/ in an index of its own: "*"
	// spans two indexes, orders/* reads one.
	{"redis", func(t *testing.T) store.Store {
		srv := redistest.Start(t, redistest.Options{})
		st, err := redisstore.Open(context.Background(), redisstore.Config{
			Client:          goredis.NewClient(&goredis.Options{Addr: srv.Addr}),
			PatternPrefixes: []string{"", "orders/"},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}},
}

// startFollowing starts a server over st and, for a store with a feed
// (Redis), waits until the hub follows it: a stream opened before would be
// cut loose when the feed starts.
func startFollowing(t *testing.T, st store.Store) *testServer {
	t.Helper()
	ts := start(t, nil, st)
	deadline := time.Now().Add(10 * time.Second)
	for s := ts.hub.StoreState(); s.Shared && !s.Following; s = ts.hub.StoreState() {
		if time.Now().After(deadline) {
			t.Fatal("the hub does not follow the store's feed")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	return ts
}

// TestPatternStreamResumes: a token allowed orders/* subscribes to
// orders/* and gets the events of orders/1 and orders/2, not of other
// topics; after a reconnect with Last-Event-ID it gets exactly what it
// missed, a topic that appeared meanwhile included; a stream of "*" never
// gets the reserved sseguard:dashboard.
func TestPatternStreamResumes(t *testing.T) {
	for _, ps := range patternStores {
		t.Run(ps.name, func(t *testing.T) {
			ts := startFollowing(t, ps.open(t))
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
			// The id line is the reader's cursor: the event's ID on a store
			// with one sequence, a position in the pattern's index on Redis.
			// The data names each event.
			ts.mustPublish(t, pub, "orders/1", "a")
			ts.mustPublish(t, pub, "misc", "b")
			if _, err := ts.hub.Publish(ctx, store.Record{Topic: DashboardTopic, Data: "{}"}); err != nil {
				t.Fatal(err)
			}
			ts.mustPublish(t, pub, "orders/2", "c")
			last := ""
			for _, want := range []string{"a", "c"} {
				e := nextEvent(t, p)
				if e.Data != want {
					t.Fatalf("got %+v, want data %s", e, want)
				}
				last = e.ID
			}
			stop()
			waitSubscribers(t, ts.hub, 1)
			// Missed while away: one event of a known topic, one of a new one.
			ts.mustPublish(t, pub, "orders/1", "d")
			ts.mustPublish(t, pub, "misc", "e")
			ts.mustPublish(t, pub, "orders/new", "f")
			h := bearerHeader(sub)
			h.Set("Last-Event-ID", last)
			_, p = ts.openStream(t, ctx, "topic=orders/*", h)
			waitSubscribers(t, ts.hub, 2)
			ts.mustPublish(t, pub, "orders/2", "g")
			for _, want := range []string{"d", "f", "g"} {
				if e := nextEvent(t, p); e.Data != want {
					t.Fatalf("after the reconnect got %+v, want data %s", e, want)
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
	for _, ps := range patternStores {
		t.Run(ps.name, func(t *testing.T) {
			ts := startFollowing(t, ps.open(t))
			pub := token(t, allPerms, time.Hour)
			sub := token(t, auth.Permissions{Subscribe: []string{"orders/*"}}, time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			poll := func(after string) pollAnswer {
				t.Helper()
				q := "topic=" + url.QueryEscape("orders/*")
				if after != "" {
					q += "&after=" + url.QueryEscape(after)
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+"/api/poll?"+q, nil)
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
				return ans
			}
			// No cursor: the pattern's head, to go on from (not empty: a
			// store with one sequence gives "" for an empty store).
			ts.mustPublish(t, pub, "misc", "z")
			head := poll("").Next
			if head == "" {
				t.Fatal("poll without a cursor gave no head")
			}
			ts.mustPublish(t, pub, "orders/1", "a")
			ts.mustPublish(t, pub, "misc", "b")
			ts.mustPublish(t, pub, "orders/2", "c")
			ans := poll(head)
			if len(ans.Events) != 2 || ans.Events[0].Data != "a" || ans.Events[1].Data != "c" || ans.Next != ans.Events[1].ID {
				t.Fatalf("poll after the head gave %+v (next %q), want a and c", ans.Events, ans.Next)
			}
			// The poll's cursor resumes a WebSocket.
			c := ts.dialWS(t, ctx, "topic=orders/*&lastEventId="+url.QueryEscape(ans.Next), bearerHeader(sub))
			waitSubscribers(t, ts.hub, 1)
			ts.mustPublish(t, pub, "misc", "d")
			ts.mustPublish(t, pub, "orders/3", "e")
			m := wsRead(t, ctx, c)
			if m.Topic != "orders/3" || m.str(t) != "e" {
				t.Fatalf("ws got %+v, want e of orders/3", m)
			}
			// And the WebSocket's cursor resumes a poll: nothing left.
			if rest := poll(m.ID); len(rest.Events) != 0 || rest.Reset != nil {
				t.Fatalf("poll after the ws cursor gave %+v", rest)
			}
		})
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

// TestPatternReconnectsUnderLoad: while a publisher writes events of
// topics that appear one after another (orders/0, orders/1, … and misc),
// a subscriber of orders/* reconnects with its Last-Event-ID every few
// events, over and over: it gets every event of the pattern once, in
// order, whether the event came by replay or live, and whether its topic
// existed when the cursor was issued.
func TestPatternReconnectsUnderLoad(t *testing.T) {
	const total = 300 // events of orders/*
	for _, ps := range patternStores {
		t.Run(ps.name, func(t *testing.T) {
			ts := startFollowing(t, ps.open(t))
			pub := token(t, allPerms, time.Hour)
			sub := token(t, auth.Permissions{Subscribe: []string{"orders/*"}}, time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			published := make(chan string, total)
			pubErr := make(chan error, 1)
			// The publisher's own client: a POST on a kept-alive connection
			// that the server closed meanwhile fails without a retry, so it
			// retries with an Idempotency-Key, which stores it once.
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			post := func(topic, data, key string) (string, error) {
				var err error
				for range 3 {
					req, _ := http.NewRequestWithContext(ctx, "POST", ts.base+"/api/publish", strings.NewReader(`{"topic":"`+topic+`","data":"`+data+`"}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+pub)
					req.Header.Set("Idempotency-Key", key)
					var res *http.Response
					if res, err = client.Do(req); err != nil {
						continue
					}
					var m map[string]any
					err = json.NewDecoder(res.Body).Decode(&m)
					res.Body.Close()
					if res.StatusCode != 201 {
						return "", fmt.Errorf("publish: %d %v", res.StatusCode, m)
					}
					id, _ := m["id"].(string)
					return id, err
				}
				return "", err
			}
			begin := make(chan struct{}) // once the first stream is live
			go func() {
				defer close(published)
				select {
				case <-begin:
				case <-ctx.Done():
					return
				}
				for i := range total {
					id, err := post("orders/"+strconv.Itoa(i/3), strconv.Itoa(i), "o"+strconv.Itoa(i))
					if err == nil && i%7 == 0 {
						_, err = post("misc", "x", "m"+strconv.Itoa(i))
					}
					if err != nil {
						pubErr <- fmt.Errorf("publish %d: %w", i, err)
						return
					}
					published <- id
				}
			}()
			var got []string
			last := ""
			for conn := 0; len(got) < total; conn++ {
				if conn > 200 {
					t.Fatalf("got %d of %d events in 200 connections", len(got), total)
				}
				h := bearerHeader(sub)
				if last != "" {
					h.Set("Last-Event-ID", last)
				}
				sctx, stop := context.WithCancel(ctx)
				res, p := ts.openStream(t, sctx, "topic=orders/*", h)
				if res.StatusCode != 200 {
					stop()
					t.Fatalf("status %d", res.StatusCode)
				}
				if conn == 0 {
					waitSubscribers(t, ts.hub, 1)
					close(begin)
				}
				for range 1 + conn%11 { // a few events, then reconnect
					if len(got) == total {
						break
					}
					e, err := p.Next()
					if err != nil {
						stop()
						select {
						case perr := <-pubErr:
							t.Fatalf("after %d events: %v", len(got), perr)
						default:
						}
						have := map[string]bool{}
						for _, d := range got {
							have[d] = true
						}
						var missing []int
						for i := range total {
							if !have[strconv.Itoa(i)] {
								missing = append(missing, i)
							}
						}
						t.Fatalf("after %d events (last id %s, conn %d): %v; missing %v; got %q", len(got), last, conn, err, missing, got)
					}
					if e.Type == "reset" {
						stop()
						t.Fatalf("a reset after %d events: %s", len(got), e.Data)
					}
					got = append(got, e.Data)
					last = e.ID
				}
				stop()
				res.Body.Close()
			}
			for i, d := range got {
				if d != strconv.Itoa(i) {
					t.Fatalf("event %d has data %q, want %d: a gap or a duplicate (got %q)", i, d, i, got)
				}
			}
			n := 0
			for range published {
				n++
			}
			if n != total {
				t.Fatalf("published %d", n)
			}
		})
	}
}
