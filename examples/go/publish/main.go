// Command publish publishes one event to an sseguard hub with net/http.
//
// usage: publish TOPIC DATA [TYPE]
//
// Environment:
//
//	SSEGUARD_URL     the hub (default http://127.0.0.1:8080)
//	SSEGUARD_TOKEN   a token that may publish to TOPIC (sseguard token --publish TOPIC)
//	IDEMPOTENCY_KEY  names this event: a publish repeated with the same key
//	                 returns the first ID and stores nothing new (default: a
//	                 random key, the same for every retry of this run)
//
// It prints the event's ID, followed by " duplicate" when the key was seen
// before. A refusal prints "refused: STATUS CODE: DETAIL" on stderr and
// exits 1. Network errors, 429 and 503 are retried (after Retry-After when
// the hub sends one) with the same key, so a retry never publishes twice.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const maxAttempts = 5

// problem is the problem+json body of a refusal (docs/errors.md).
type problem struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

// answer is the body of a 201.
type answer struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// refusedError is a refusal that another attempt would not change.
type refusedError struct{ p problem }

func (e *refusedError) Error() string {
	return fmt.Sprintf("refused: %d %s: %s", e.p.Status, e.p.Error, e.p.Detail)
}

func main() {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fmt.Fprintln(os.Stderr, "usage: publish TOPIC DATA [TYPE]")
		os.Exit(2)
	}
	ev := map[string]string{"topic": os.Args[1], "data": os.Args[2]}
	if len(os.Args) == 4 {
		ev["type"] = os.Args[3]
	}
	base := strings.TrimRight(cmp.Or(os.Getenv("SSEGUARD_URL"), "http://127.0.0.1:8080"), "/")
	key := cmp.Or(os.Getenv("IDEMPOTENCY_KEY"), rand.Text())
	a, err := publish(context.Background(), base, os.Getenv("SSEGUARD_TOKEN"), key, ev)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if a.Duplicate {
		fmt.Println(a.ID, "duplicate")
	} else {
		fmt.Println(a.ID)
	}
}

// publish sends ev, retrying what another attempt may fix with the same
// Idempotency-Key.
func publish(ctx context.Context, base, token, key string, ev map[string]string) (*answer, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	delay := 500 * time.Millisecond
	for n := 1; ; n++ {
		a, retry, wait, err := attempt(ctx, client, base, token, key, body)
		if err == nil {
			return a, nil
		}
		if !retry || n == maxAttempts {
			return nil, err
		}
		if wait == 0 {
			wait = delay
		}
		fmt.Fprintf(os.Stderr, "retrying in %v: %v\n", wait, err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// attempt makes one request. retry says whether another attempt may
// succeed: after a network error, a 429 or a 503. wait is the hub's
// Retry-After, or 0 when it sent none.
func attempt(ctx context.Context, client *http.Client, base, token, key string, body []byte) (a *answer, retry bool, wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return nil, false, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return nil, true, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		a = new(answer)
		if err := json.NewDecoder(resp.Body).Decode(a); err != nil {
			return nil, true, 0, fmt.Errorf("reading the answer: %w", err)
		}
		return a, false, 0, nil
	}
	p := problem{Status: resp.StatusCode, Detail: resp.Status}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
	}
	// 401, 403, 413, 422, ...: the same request would fail the same way.
	retry = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
	if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
		wait = time.Duration(s) * time.Second
	}
	return nil, retry, wait, &refusedError{p}
}
