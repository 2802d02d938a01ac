package servertest_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// TestStartServesTheHub: a token from Token subscribes, another publishes,
// and the event published over HTTP arrives on the stream; a foreign
// origin is refused, and Log shows the refusal.
func TestStartServesTheHub(t *testing.T) {
	ts := servertest.Start(t, nil)
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") || ts.URL != "http://"+ts.Addr {
		t.Fatalf("URL %q, Addr %q: want a loopback base URL", ts.URL, ts.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events?topic=news", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+ts.Token(t, "reader", auth.Permissions{Subscribe: []string{"news"}}))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events with a token: %d, want 200", res.StatusCode)
	}

	pub, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/api/publish", strings.NewReader(`{"topic":"news","data":"hello"}`))
	pub.Header.Set("Content-Type", "application/json")
	pub.Header.Set("Authorization", "Bearer "+ts.Token(t, "writer", auth.Permissions{Publish: []string{"news"}}))
	pres, err := http.DefaultClient.Do(pub)
	if err != nil {
		t.Fatal(err)
	}
	var published struct{ ID string }
	_ = json.NewDecoder(pres.Body).Decode(&published)
	pres.Body.Close()
	if pres.StatusCode != http.StatusCreated || published.ID == "" {
		t.Fatalf("POST /api/publish: %d, id %q; want 201 with an ID", pres.StatusCode, published.ID)
	}
	ev, err := sse.NewParser(res.Body).Next()
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	if ev.ID != published.ID || ev.Data != "hello" {
		t.Errorf("stream got %+v, want ID %s with data hello", ev, published.ID)
	}

	refused, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events?topic=news", nil)
	refused.Header.Set("Accept", "text/event-stream")
	refused.Header.Set("Authorization", req.Header.Get("Authorization"))
	refused.Header.Set("Origin", "https://evil.example")
	rres, err := http.DefaultClient.Do(refused)
	if err != nil {
		t.Fatal(err)
	}
	rres.Body.Close()
	if rres.StatusCode != http.StatusForbidden {
		t.Fatalf("a stream from a foreign origin: %d, want 403", rres.StatusCode)
	}
	if l := ts.Log(); !strings.Contains(l, `"origin refused"`) {
		t.Errorf("the refused origin is not in the log:\n%s", l)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestStartConfigAndStore: fields left at zero get their defaults, those
// set are kept; the hub keeps its events in the store given, which Close
// leaves open; Close stops everything Start started, and the port.
func TestStartConfigAndStore(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	st := memory.New(store.Retention{})
	defer st.Close()
	ts := servertest.Start(t, &config.Config{Stream: config.Stream{MaxTopics: 2}}, servertest.WithStore(st))
	if ts.Config.Stream.MaxTopics != 2 || ts.Config.Stream.QueueBytes != config.Default().Stream.QueueBytes {
		t.Errorf("stream section %+v: want max_topics 2 and the default queue_bytes", ts.Config.Stream)
	}
	if ts.Store != st {
		t.Error("Store is not the store given")
	}
	res, err := ts.Hub.Publish(context.Background(), store.Record{Topic: "t", Data: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := st.Head(context.Background(), nil); err != nil || head != res[0].Event.ID {
		t.Fatalf("the store's head is %q, %v; want the event published, %s", head, err, res[0].Event.ID)
	}

	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Errorf("the test's store after Close: %v, want it open", err)
	}
	if c, err := net.Dial("tcp", ts.Addr); err == nil {
		c.Close()
		t.Error("the hub still accepts connections after Close")
	}
	goleak.VerifyNone(t, ignore)
}

// TestStoreClosedByTheTest: a test may close the hub's own store to make
// it fail; the hub then reports itself not ready, and Close still
// succeeds.
func TestStoreClosedByTheTest(t *testing.T) {
	ts := servertest.Start(t, nil)
	if err := ts.Store.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the store closed: %d, want 503", res.StatusCode)
	}
	if err := ts.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
