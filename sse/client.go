package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sseguard/sseguard/policy"
)

// Defaults for Client.
const (
	// defaultRetry is the reconnection time until the server sets one,
	// the value browsers use.
	defaultRetry = 3 * time.Second
	// defaultMaxBackoff caps the backoff after consecutive failed attempts.
	defaultMaxBackoff = 30 * time.Second
	// minFailureDelay is the least wait after a failed attempt, so that a
	// server that sent "retry: 0" and went away is not hammered.
	minFailureDelay = 100 * time.Millisecond
	// responseBodyLimit bounds ResponseError.Body.
	responseBodyLimit = 1 << 10
	// responseBodyWait bounds the time spent reading ResponseError.Body,
	// which a server may stream slowly or never end.
	responseBodyWait = time.Second
)

// ErrNoContent is matched, with errors.Is, by the *ResponseError that Run
// returns when the server answers 204 No Content: the standard's way for a
// server to tell clients to stop reconnecting.
var ErrNoContent = errors.New("sse: server answered 204 No Content")

// ResponseError reports a response on which a browser fails the connection
// for good instead of reconnecting: a status other than 200, or a
// Content-Type whose MIME type is not text/event-stream.
type ResponseError struct {
	StatusCode  int
	ContentType string // the Content-Type header lines, joined by ", "
	Body        string // the start of the body, at most 1 KiB, for diagnostics
}

func (e *ResponseError) Error() string {
	if e.StatusCode != http.StatusOK {
		return fmt.Sprintf("sse: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("sse: server answered content type %q, not text/event-stream", e.ContentType)
}

// Is makes errors.Is(err, ErrNoContent) true for a 204 response.
func (e *ResponseError) Is(target error) bool {
	return target == ErrNoContent && e.StatusCode == http.StatusNoContent
}

// Client is an EventSource for Go: it connects to URL, hands each event to a
// function, and reconnects as browsers do. The zero value is not usable: set
// URL. Set the fields before calling Run and do not change them while it
// runs, except that Run itself updates LastEventID. Do not call Run on one
// Client from two goroutines at once.
type Client struct {
	// URL is the stream's http or https URL.
	URL string

	// HTTPClient sends the requests. nil means a client with
	// http.DefaultTransport and no overall timeout, since streams last;
	// a client's Timeout would cut every stream after that time.
	HTTPClient *http.Client

	// Header holds extra request headers, such as Authorization or Cookie.
	// Accept, Cache-Control and Last-Event-ID are set by the client.
	Header http.Header

	// LastEventID is sent as the Last-Event-ID header on the first
	// connection when it is not empty. Run updates it as events arrive,
	// before it calls handle, and sends it on every reconnection, as
	// browsers do. Read it from handle or after Run returns.
	LastEventID string

	// Retry is the initial reconnection time; 0 means 3s, what browsers
	// use. Within Run, a retry field from the server replaces it.
	Retry time.Duration

	// MaxBackoff caps the wait after consecutive failed attempts; 0 means
	// 30s. It never shortens the reconnection time the server asked for.
	MaxBackoff time.Duration

	// MaxEventBytes is passed to the Parser of each connection; see
	// Parser.MaxEventBytes.
	MaxEventBytes int

	// OnOpen, when set, is called on each successful connection (status
	// 200 and a text/event-stream body), before the first event is read.
	// It must not close or read resp.Body.
	OnOpen func(resp *http.Response)

	// OnComment, when set, is passed to the Parser of each connection; see
	// Parser.OnComment.
	OnComment func(text string)

	// wait, when set, replaces the timer between attempts (tests).
	wait func(ctx context.Context, d time.Duration) error
}

var defaultHTTPClient = &http.Client{}

// Run connects, calls handle for each event, and reconnects after a network
// error or the end of the body, waiting the reconnection time (doubled per
// consecutive failure with jitter, capped by MaxBackoff; reset after a
// successful connection). The first wait after a stream ends is exactly the
// reconnection time, as in browsers.
//
// Run returns ctx.Err() when ctx ends, the error handle returned if it
// returned one, or a *ResponseError when the server answers with a status
// other than 200 (204 included: errors.Is(err, ErrNoContent)) or with a
// Content-Type whose MIME essence is not text/event-stream: the cases where
// browsers fail the connection and do not reconnect. It also returns,
// without connecting, an error naming the Client field that is invalid,
// and it stops with ErrEventTooLarge (wrapped) when an event exceeds
// MaxEventBytes, since reconnecting would replay it.
//
// handle runs on the goroutine that called Run, one event at a time. When
// Run returns, the response body is closed and nothing Run started is still
// running.
func (c *Client) Run(ctx context.Context, handle func(Event) error) error {
	if err := c.validate(); err != nil {
		return err
	}
	retry := c.Retry
	if retry == 0 {
		retry = defaultRetry
	}
	maxBackoff := c.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = defaultMaxBackoff
	}
	failures := 0
	for {
		opened, err := c.connect(ctx, &retry, handle)
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if opened {
			failures = 0
		} else {
			failures++
		}
		if err := c.sleep(ctx, reconnectDelay(retry, maxBackoff, failures, rand.Int64N)); err != nil {
			return err
		}
	}
}

// stopError carries an error that ends Run, as opposed to one that makes it
// reconnect.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// connect makes one attempt: it sends the request and reads events until the
// body ends. opened reports whether the server accepted the stream.
func (c *Client) connect(ctx context.Context, retry *time.Duration, handle func(Event) error) (opened bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return false, &stopError{fmt.Errorf("sse: Client.URL: %w", err)}
	}
	req.Header = c.Header.Clone()
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Del("Last-Event-ID")
	if c.LastEventID != "" {
		req.Header.Set("Last-Event-ID", c.LastEventID)
	}

	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header.Values("Content-Type")) {
		return false, &stopError{newResponseError(resp)}
	}
	if c.OnOpen != nil {
		c.OnOpen(resp)
	}

	// The transport ends a body read when ctx ends; closing the body too
	// covers transports that do not.
	closed := make(chan struct{})
	stopClose := context.AfterFunc(ctx, func() {
		resp.Body.Close()
		close(closed)
	})
	defer func() {
		if !stopClose() {
			<-closed
		}
	}()

	p := NewParser(resp.Body)
	p.MaxEventBytes = c.MaxEventBytes
	p.OnComment = c.OnComment
	p.setLastEventID(c.LastEventID)
	for {
		ev, err := p.Next()
		// The ID and the retry of blocks that dispatch nothing count too.
		c.LastEventID = p.sourceID
		if d, ok := p.Retry(); ok {
			*retry = d
		}
		if errors.Is(err, ErrEventTooLarge) {
			return true, &stopError{fmt.Errorf("sse: reading %s: %w", c.URL, err)}
		}
		if err != nil {
			return true, err
		}
		if err := handle(ev); err != nil {
			return true, &stopError{err}
		}
	}
}

// newResponseError describes a refused response, reading the start of its
// body for diagnostics without waiting long for it.
func newResponseError(resp *http.Response) *ResponseError {
	closed := make(chan struct{})
	t := time.AfterFunc(responseBodyWait, func() {
		resp.Body.Close()
		close(closed)
	})
	body, _ := io.ReadAll(io.LimitReader(resp.Body, responseBodyLimit))
	if !t.Stop() {
		<-closed
	}
	return &ResponseError{
		StatusCode:  resp.StatusCode,
		ContentType: strings.Join(resp.Header.Values("Content-Type"), ", "),
		Body:        string(body),
	}
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.wait != nil {
		return c.wait(ctx, d)
	}
	return sleepCtx(ctx, d)
}

// sleepCtx waits for d or until ctx ends, and returns ctx.Err() if it ended.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reconnectDelay returns the wait before the next attempt, given the
// reconnection time, the cap, and the number of consecutive failed attempts
// (0 after a stream that was open). randN returns a number in [0, n).
//
// After an open stream ends, and after the first failure, the wait is the
// reconnection time. From the second consecutive failure the upper bound
// doubles, at least minFailureDelay and at most max(maxBackoff, retry), and
// the wait is drawn from its upper half ("equal jitter"), never below the
// reconnection time.
func reconnectDelay(retry, maxBackoff time.Duration, failures int, randN func(n int64) int64) time.Duration {
	if failures == 0 {
		return retry
	}
	ceiling := max(maxBackoff, retry)
	d := max(retry, minFailureDelay)
	for i := 1; i < failures && d < ceiling; i++ {
		if d > ceiling/2 {
			d = ceiling // and no overflow
			break
		}
		d *= 2
	}
	d = min(d, ceiling)
	if half := d / 2; half > 0 {
		d = d - half + time.Duration(randN(int64(half)+1))
	}
	return max(d, retry)
}

func (c *Client) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("sse: Client.URL: %w", err)
	}
	if s := strings.ToLower(u.Scheme); (s != "http" && s != "https") || u.Host == "" {
		return fmt.Errorf("sse: Client.URL %q: want an absolute http or https URL", c.URL)
	}
	if strings.ContainsAny(c.LastEventID, "\r\n\x00") {
		return errors.New("sse: Client.LastEventID: contains CR, LF or NUL")
	}
	for name, values := range c.Header {
		if !policy.IsToken(name) {
			return fmt.Errorf("sse: Client.Header: invalid header name %q", name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("sse: Client.Header: %s: value contains CR, LF or NUL", name)
			}
		}
	}
	if c.Retry < 0 {
		return errors.New("sse: Client.Retry: negative duration")
	}
	if c.MaxBackoff < 0 {
		return errors.New("sse: Client.MaxBackoff: negative duration")
	}
	return nil
}

// isEventStream reports whether Content-Type header lines carry the MIME
// type text/event-stream, as the Fetch standard's "extract a MIME type"
// reads them (policy.ExtractMIMEType). Parameters, such as a charset, do
// not matter: the stream is always UTF-8.
func isEventStream(values []string) bool {
	mt, ok := policy.ExtractMIMEType(values)
	return ok && mt.Essence == "text/event-stream"
}
