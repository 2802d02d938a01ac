package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
)

// blocks groups a stream's lines into blocks (events, comments, retry
// fields), each ended by a blank line, until n blocks are read.
func blocks(t *testing.T, ctx context.Context, lines <-chan string, n int, each func(block []string)) {
	t.Helper()
	var cur []string
	for got := 0; got < n; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended after %d blocks", got)
			}
			if l != "" {
				cur = append(cur, l)
				continue
			}
			each(cur)
			cur = nil
			got++
		case <-ctx.Done():
			t.Fatalf("after %d blocks: %v", got, ctx.Err())
		}
	}
}

func hasPrefix(block []string, prefix string) bool {
	for _, l := range block {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// TestHeartbeatEvents: /events?heartbeat=event sends, at once and then
// whenever idle for stream.heartbeat, the named event sseguard.heartbeat
// announcing the interval and carrying no id (Last-Event-ID stays
// untouched), and no comment heartbeats; without the parameter the
// heartbeats stay comments. Both for a parked stream (plain HTTP/1.1) and
// for one its handler serves (TLS, HTTP/2).
func TestHeartbeatEvents(t *testing.T) {
	fast := func(c *config.Config) { c.Stream.Heartbeat = config.Duration(50 * time.Millisecond) }
	plain := func(t *testing.T) (*testServer, *http.Client) { return start(t, fast, nil), http.DefaultClient }
	tlsH2 := func(t *testing.T) (*testServer, *http.Client) { return startTLS(t, fast) }
	for name, open := range map[string]func(*testing.T) (*testServer, *http.Client){"parked": plain, "TLS": tlsH2} {
		t.Run(name, func(t *testing.T) {
			ts, client := open(t)
			tok := token(t, allPerms, time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, lines := streamLines(t, ctx, client, ts.base+"/events?topic=t&heartbeat=event", bearerHeader(tok))
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			var kinds []string
			blocks(t, ctx, lines, 2, func(b []string) { kinds = append(kinds, strings.Join(b, "|")) })
			if want := "event: " + HeartbeatEvent + `|data: {"interval_ms":50}`; kinds[1] != want {
				t.Fatalf("blocks %q; want the retry field, then %q at once", kinds, want)
			}
			waitSubscribers(t, ts.hub, 1)
			app, err := ts.hub.Publish(ctx, store.Record{Topic: "t", Data: "x"})
			if err != nil {
				t.Fatal(err)
			}
			id := app[0].Event.ID
			beats, sawEvent := 0, false
			blocks(t, ctx, lines, 6, func(b []string) {
				switch {
				case hasPrefix(b, "id: "+id):
					sawEvent = true
				case hasPrefix(b, "event: "+HeartbeatEvent):
					beats++
					if hasPrefix(b, "id:") {
						t.Fatalf("a heartbeat event with an id: %q", b)
					}
				case hasPrefix(b, ":"):
					t.Fatalf("a comment heartbeat on a heartbeat=event stream: %q", b)
				default:
					t.Fatalf("unexpected block %q", b)
				}
			})
			if !sawEvent || beats < 4 {
				t.Fatalf("event seen %v, %d heartbeats of 6 blocks", sawEvent, beats)
			}

			// Control: the default stays comments.
			_, lines = streamLines(t, ctx, client, ts.base+"/events?topic=t", bearerHeader(tok))
			blocks(t, ctx, lines, 4, func(b []string) {
				if hasPrefix(b, "event: "+HeartbeatEvent) {
					t.Fatalf("a heartbeat event without heartbeat=event: %q", b)
				}
			})
		})
	}
}

// TestHeartbeatParameter: a heartbeat value other than event is a 400
// problem, not silently ignored.
func TestHeartbeatParameter(t *testing.T) {
	ts := start(t, nil, nil)
	req, _ := http.NewRequest("GET", ts.base+"/events?topic=demo&heartbeat=comment", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	assertProblem(t, res, 400, policy.CodeBadRequest)
}
