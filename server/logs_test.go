package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// TestRefusedOriginsLogBounded: refused origins are an anonymous client's
// to choose, in number and size: a burst of them with 10 KB origins leaves
// one clipped log line, not one line (and 10 KB) each.
func TestRefusedOriginsLogBounded(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.CORS.AllowedOrigins = []string{"https://app.test"} }, nil)
	huge := "https://" + strings.Repeat("a", 10<<10) + ".test"
	for range 50 {
		req, _ := http.NewRequest("GET", ts.base+"/api/poll?topic=demo", nil)
		req.Header.Set("Origin", huge)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 403 {
			t.Fatalf("status %d, want 403", res.StatusCode)
		}
	}
	logs := ts.logs()
	if n := strings.Count(logs, `"origin refused"`); n != 1 {
		t.Fatalf("%d origin refused lines for 50 refusals; want 1 (with a count after a minute)", n)
	}
	if len(logs) > 4<<10 {
		t.Fatalf("50 refusals wrote %d bytes of log", len(logs))
	}
}

// failingReads is a memory store whose reads fail, as a store on a broken
// disk does.
type failingReads struct{ store.Store }

func (failingReads) Read(context.Context, []string, string, int) (store.Page, error) {
	return store.Page{}, errors.New("read events.db: input/output error")
}

// TestStoreFailuresLogBounded: a store that fails every request answers
// each with 503 but logs one line a minute, not one per request.
func TestStoreFailuresLogBounded(t *testing.T) {
	ts := start(t, nil, failingReads{memory.New(store.Retention{})})
	for range 50 {
		res, err := http.Get(ts.base + "/api/poll?topic=demo&after=0")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 503 {
			t.Fatalf("status %d, want 503", res.StatusCode)
		}
	}
	if n := strings.Count(ts.logs(), `"store failed"`); n != 1 {
		t.Fatalf("%d store failed lines for 50 failures; want 1", n)
	}
}
