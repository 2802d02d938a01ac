package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxResponseHead bounds an upstream's response head, as the transport's
// MaxResponseHeaderBytes does for other requests.
const maxResponseHead = 64 << 10

// Framings of an upstream body read by a parked stream.
const (
	framingClose   = iota // the body ends when the upstream closes
	framingChunked        // HTTP/1.1 chunked
	framingLength         // Content-Length bytes
)

// streamTransport makes the requests of streams that can be parked on a
// connection of their own, so that once the response head is read the
// connection can leave net/http (whose transport reads every body with two
// goroutines and two buffers) and be read from the epoll set instead. It
// sends every other request to next.
type streamTransport struct {
	next          http.RoundTripper
	dialer        *net.Dialer
	headerTimeout time.Duration
}

// wants reports whether req is the request of a stream the proxy may park:
// a GET without a body, to a plain http upstream, on a stream route or an
// auto route asked for an event stream, from a client the proxy can park.
func (t *streamTransport) wants(req *http.Request) bool {
	ex := exchangeFrom(req.Context())
	if ex == nil || ex.w == nil || req.Method != http.MethodGet || req.URL.Scheme != "http" ||
		(req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	switch ex.route.Kind {
	case KindStream:
		return true
	case KindAuto:
		return acceptsEventStream(req.Header.Values("Accept"))
	}
	return false
}

func (t *streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.wants(req) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	conn, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Until the body is closed or the stream parked, the request's end
	// closes the connection, as net/http's transport does.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if t.headerTimeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(t.headerTimeout))
	}
	bw := bufio.NewWriterSize(conn, 2048)
	if err := req.Write(bw); err != nil {
		return fail(fmt.Errorf("writing the request upstream: %w", err))
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("writing the request upstream: %w", err))
	}
	lr := &io.LimitedReader{R: conn, N: maxResponseHead}
	br := bufio.NewReaderSize(lr, 4096)
	var res *http.Response
	for informational := 0; ; informational++ {
		res, err = http.ReadResponse(br, req)
		if err != nil {
			switch {
			case lr.N == 0:
				err = fmt.Errorf("the upstream's response head exceeds %d bytes", maxResponseHead)
			case errors.Is(err, os.ErrDeadlineExceeded):
				err = errHeaderTimeout
			}
			return fail(err)
		}
		// 1xx answers before the final one are dropped, as the transport
		// does; 101 is final (and refused by modifyResponse).
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if informational == 5 {
			return fail(errors.New("too many informational responses from the upstream"))
		}
	}
	_ = conn.SetDeadline(time.Time{})
	lr.N = math.MaxInt64
	body := &upstreamBody{ReadCloser: res.Body, conn: conn, br: br, stop: stop, length: res.ContentLength}
	switch {
	case len(res.TransferEncoding) > 0 && res.TransferEncoding[0] == "chunked":
		body.framing = framingChunked
	case res.ContentLength >= 0:
		body.framing = framingLength
	}
	res.Body = body
	return res, nil
}

// errHeaderTimeout is the error of an upstream that did not send its
// response head within Config.HeaderTimeout, as net/http's transport
// words it.
var errHeaderTimeout error = headerTimeoutError{}

type headerTimeoutError struct{}

func (headerTimeoutError) Error() string   { return "net/http: timeout awaiting response headers" }
func (headerTimeoutError) Timeout() bool   { return true }
func (headerTimeoutError) Temporary() bool { return true }

// upstreamBody is the body of a response read by streamTransport: read
// through net/http's body reader, or detached from it to be parked.
type upstreamBody struct {
	io.ReadCloser
	conn    net.Conn
	br      *bufio.Reader
	stop    func() bool
	framing int
	length  int64 // framingLength only
}

// Close closes the connection.
func (b *upstreamBody) Close() error {
	b.stop()
	return b.conn.Close()
}

// detach takes the connection out of the body, with the bytes already read
// past the response head, so that nothing reads it but the caller, who
// must close it. It fails when the request already ended.
func (b *upstreamBody) detach() (net.Conn, []byte, bool) {
	if !b.stop() {
		return nil, nil, false
	}
	n := b.br.Buffered()
	pre, _ := b.br.Peek(n)
	b.ReadCloser = http.NoBody
	return b.conn, append([]byte(nil), pre...), true
}

// canHijack reports whether the writer under w, through Unwrap, can
// hijack its connection (an httptest.ResponseRecorder cannot).
func canHijack(w http.ResponseWriter) bool {
	for {
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
			w = u.Unwrap()
			continue
		}
		_, ok := w.(http.Hijacker)
		return ok
	}
}

// acceptsEventStream reports whether an Accept header names
// text/event-stream.
func acceptsEventStream(values []string) bool {
	for _, v := range values {
		if strings.Contains(strings.ToLower(v), "text/event-stream") {
			return true
		}
	}
	return false
}
