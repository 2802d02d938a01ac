// Command subscribe subscribes to an sseguard topic with the project's
// EventSource for Go, sse.Client.
//
// usage: subscribe TOPIC [COUNT]
//
// Environment:
//
//	SSEGUARD_URL    the hub (default http://127.0.0.1:8080)
//	SSEGUARD_TOKEN  a token that may subscribe to TOPIC (sseguard token --subscribe TOPIC)
//	LAST_EVENT_ID   resume after this event ID (default: live events only)
//
// It prints "event ID TYPE DATA" for each event and "reset REASON" when the
// hub says that history was lost (event: reset), then goes on. It exits 0
// after COUNT events (default: never). sse.Client reconnects as browsers
// do: after the server's retry hint, sending Last-Event-ID, so no event is
// missed or repeated. A refusal prints "refused: STATUS CODE: DETAIL" on
// stderr and exits 1; 429 and 503 are retried after Retry-After.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sseguard/sseguard/sse"
)

// errDone ends Run once COUNT events have arrived.
var errDone = errors.New("done")

// problem is the problem+json body of a refusal (docs/errors.md).
type problem struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		fmt.Fprintln(os.Stderr, "usage: subscribe TOPIC [COUNT]")
		os.Exit(2)
	}
	count := -1
	if len(os.Args) == 3 {
		n, err := strconv.Atoi(os.Args[2])
		if err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, "COUNT must be a positive number")
			os.Exit(2)
		}
		count = n
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	base := strings.TrimRight(cmp.Or(os.Getenv("SSEGUARD_URL"), "http://127.0.0.1:8080"), "/")
	if err := subscribe(ctx, base, os.Getenv("SSEGUARD_TOKEN"), os.Args[1], count); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// subscribe prints the topic's events until count of them arrived (count
// < 0: until ctx ends).
func subscribe(ctx context.Context, base, token, topic string, count int) error {
	// sse.ResponseError carries no headers: this transport keeps the
	// Retry-After of the last answer for the refusals worth retrying.
	ra := &retryAfter{base: http.DefaultTransport}
	c := &sse.Client{
		URL:         base + "/events?" + url.Values{"topic": {topic}}.Encode(),
		HTTPClient:  &http.Client{Transport: ra},
		Header:      http.Header{"Authorization": {"Bearer " + token}},
		LastEventID: os.Getenv("LAST_EVENT_ID"),
		OnOpen: func(resp *http.Response) {
			fmt.Fprintf(os.Stderr, "connected (Last-Event-ID: %s)\n", cmp.Or(resp.Request.Header.Get("Last-Event-ID"), "none"))
		},
	}
	handle := func(e sse.Event) error {
		if e.Type == "reset" {
			// History after our Last-Event-ID is gone (retention, or an ID
			// this hub never issued): say so, and go on with what follows.
			var r struct{ Reason string }
			_ = json.Unmarshal([]byte(e.Data), &r)
			fmt.Println("reset", r.Reason)
			return nil
		}
		fmt.Println("event", e.ID, cmp.Or(e.Type, "message"), e.Data)
		if count--; count == 0 {
			return errDone
		}
		return nil
	}
	for {
		// Run reconnects by itself after network errors and ended streams,
		// honouring the retry hint; it returns on what a browser would not
		// retry: a refusal.
		err := c.Run(ctx, handle)
		if errors.Is(err, errDone) {
			return nil
		}
		var re *sse.ResponseError
		if !errors.As(err, &re) {
			return err
		}
		p := problemOf(re)
		if re.StatusCode != http.StatusTooManyRequests && re.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("refused: %d %s: %s", p.Status, p.Error, p.Detail)
		}
		wait := ra.last()
		fmt.Fprintf(os.Stderr, "refused: %d %s, retrying in %v\n", p.Status, p.Error, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// problemOf decodes a refusal's problem+json body.
func problemOf(re *sse.ResponseError) problem {
	p := problem{Status: re.StatusCode, Detail: http.StatusText(re.StatusCode)}
	if mt, _, _ := mime.ParseMediaType(re.ContentType); mt == "application/problem+json" {
		_ = json.Unmarshal([]byte(re.Body), &p)
	}
	return p
}

// retryAfter is an http.RoundTripper that remembers the Retry-After of the
// last response.
type retryAfter struct {
	base http.RoundTripper
	mu   sync.Mutex
	wait time.Duration
}

func (t *retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		wait := 5 * time.Second // when the hub gives none
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		t.mu.Lock()
		t.wait = wait
		t.mu.Unlock()
	}
	return resp, err
}

func (t *retryAfter) last() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wait
}
