package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sseguard/sseguard/sse"
)

func startServer(t *testing.T, opts Options) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- New(opts).Serve(ctx, ln, nil) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("server did not stop within 30 s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop
}

func TestEventsStreamAndResume(t *testing.T) {
	base, _ := startServer(t, Options{TickInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	c := &sse.Client{URL: base + "/events", LastEventID: "41"}
	errStop := errors.New("enough")
	err := c.Run(ctx, func(e sse.Event) error {
		if e.Type != "tick" {
			t.Errorf("type %q", e.Type)
		}
		var body struct {
			N uint64 `json:"n"`
		}
		if err := json.Unmarshal([]byte(e.Data), &body); err != nil {
			t.Errorf("data %q: %v", e.Data, err)
		}
		ids = append(ids, e.ID)
		if len(ids) == 3 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Run = %v", err)
	}
	if ids[0] != "42" || ids[1] != "43" || ids[2] != "44" {
		t.Fatalf("ids %v, want resume after 41", ids)
	}
}

func TestNotFoundIsProblem(t *testing.T) {
	base, _ := startServer(t, Options{})
	res, err := http.Get(base + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func TestShutdownEndsOpenStreams(t *testing.T) {
	base, stop := startServer(t, Options{TickInterval: time.Hour})
	req, _ := http.NewRequest("GET", base+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 64)
	if _, err := res.Body.Read(buf); err != nil { // the retry field
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
