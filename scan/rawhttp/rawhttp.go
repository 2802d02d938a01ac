package rawhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Field is one header line: its name as written on the wire and its value
// with surrounding whitespace removed.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Proto is the HTTP version a Client speaks.
type Proto int

const (
	// HTTP11 is HTTP/1.1, the default.
	HTTP11 Proto = iota
	// HTTP10 is HTTP/1.0: the server must not answer with a chunked body.
	HTTP10
	// HTTP2 is HTTP/2: over TLS the server must select "h2" by ALPN; over
	// cleartext (an http URL) the client speaks it with prior knowledge.
	HTTP2
)

func (p Proto) String() string {
	switch p {
	case HTTP10:
		return "HTTP/1.0"
	case HTTP2:
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// Version returns the protocol version numbers, as in http.Request's
// ProtoMajor and ProtoMinor.
func (p Proto) Version() (major, minor int) {
	switch p {
	case HTTP10:
		return 1, 0
	case HTTP2:
		return 2, 0
	}
	return 1, 1
}

// Framing says how the end of a response body is found.
type Framing string

// Body framings.
const (
	FramingNone    Framing = "none"    // no body: HEAD, 204, 304
	FramingChunked Framing = "chunked" // HTTP/1.1 chunked transfer coding
	FramingLength  Framing = "length"  // Content-Length
	FramingClose   Framing = "close"   // the body ends when the connection closes
	FramingHTTP2   Framing = "http2"   // DATA frames up to END_STREAM
)

// Request is one request to send. Header is written in order after the
// request line (HTTP/1.x) or the pseudo-header fields (HTTP/2); a Host
// field is added from URL unless Header has one.
type Request struct {
	Method string
	URL    *url.URL
	Header []Field
	Body   []byte
}

// Client sends requests. The zero value speaks HTTP/1.1 with a 10 s
// timeout and verifies TLS certificates against the system roots.
type Client struct {
	// Proto is the HTTP version to speak.
	Proto Proto
	// Timeout bounds connecting, the TLS handshake, and the wait for the
	// response head. Zero means 10 s. Reading the body is bounded by the
	// context given to Do, not by Timeout: streams last.
	Timeout time.Duration
	// TLSConfig, when set, is cloned for each connection; ServerName and
	// NextProtos are filled in.
	TLSConfig *tls.Config
	// Insecure skips verification of the server's certificate.
	Insecure bool
	// MaxHeaderBytes bounds the response head. Zero means 64 KiB.
	MaxHeaderBytes int
	// Dial, when set, replaces net.Dialer.DialContext (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Timing records when each step of an exchange happened.
type Timing struct {
	Start     time.Time `json:"start"`
	Connected time.Time `json:"connected"` // TCP connected, TLS done
	Sent      time.Time `json:"sent"`      // request written
	Headers   time.Time `json:"headers"`   // response head complete
}

// Response is a response head and its body.
type Response struct {
	// Proto is the version the server answered with: "HTTP/1.1" as it
	// appears on the status line, or "HTTP/2.0".
	Proto      string
	ProtoMajor int
	ProtoMinor int
	StatusCode int
	// Reason is the reason phrase of an HTTP/1.x status line.
	Reason string
	// Header holds the header lines in the order they arrived. Names keep
	// the server's spelling; HTTP/2 pseudo-header fields are left out.
	Header []Field
	// Interim holds the status codes of 1xx responses that came first.
	Interim []int
	// RawHead is the HTTP/1.x head as received, status line included.
	RawHead []byte
	// Framing says how the body ends.
	Framing Framing
	// Body is the de-framed body (chunks joined, DATA frames joined), not
	// content-decoded. It returns io.EOF at a clean end, and
	// io.ErrUnexpectedEOF (wrapped) when the connection ends early: a
	// chunked body without its last chunk, a short Content-Length, an
	// HTTP/2 stream without END_STREAM. Closing it closes the connection.
	Body io.ReadCloser
	// TLS is the connection's TLS state, nil for cleartext.
	TLS *tls.ConnectionState
	// RemoteAddr is the address connected to.
	RemoteAddr string
	Timing     Timing
}

// Values returns the values of every header line named name
// (case-insensitive), in order.
func (r *Response) Values(name string) []string {
	return Values(r.Header, name)
}

// Values returns the values of the fields named name (case-insensitive), in
// order.
func Values(fields []Field, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// StreamResetError is returned by an HTTP/2 body the server reset.
type StreamResetError struct {
	Code string // the RST_STREAM error code, such as "CANCEL"
}

func (e *StreamResetError) Error() string { return "http2: stream reset by the server: " + e.Code }

// ErrHeadTimeout is returned, wrapped, when the response head did not
// arrive within the Client's Timeout.
var ErrHeadTimeout = errors.New("no response head within the timeout")

// Do sends req on a new connection and reads the response head. The caller
// must close the response body. ctx bounds the whole exchange, body
// included: when it ends, the connection is closed.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	if req.URL == nil {
		return nil, errors.New("rawhttp: request has no URL")
	}
	scheme := strings.ToLower(req.URL.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("rawhttp: unsupported scheme %q", req.URL.Scheme)
	}
	for _, f := range req.Header {
		if strings.ContainsAny(f.Name, "\r\n:\x00 \t") || f.Name == "" || strings.ContainsAny(f.Value, "\r\n\x00") {
			return nil, fmt.Errorf("rawhttp: invalid header field %q", f.Name)
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tm := Timing{Start: time.Now()}
	conn, state, err := c.dial(ctx, req.URL, timeout)
	if err != nil {
		return nil, err
	}
	tm.Connected = time.Now()

	// The connection lives until the body is closed or ctx ends.
	var once sync.Once
	closeConn := func() { once.Do(func() { conn.Close() }) }
	stop := context.AfterFunc(ctx, closeConn)
	cleanup := func() {
		stop()
		closeConn()
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))

	var res *Response
	if c.Proto == HTTP2 {
		res, err = c.doHTTP2(conn, req, scheme, &tm, cleanup)
	} else {
		res, err = c.doHTTP1(conn, req, &tm, cleanup)
	}
	if err != nil {
		cleanup()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return nil, fmt.Errorf("%s: %w (%s)", req.URL.Host, ErrHeadTimeout, timeout)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	res.TLS = state
	res.RemoteAddr = conn.RemoteAddr().String()
	res.Timing = tm
	return res, nil
}

// dial connects to u's host, with TLS for https.
func (c *Client) dial(ctx context.Context, u *url.URL, timeout time.Duration) (net.Conn, *tls.ConnectionState, error) {
	https := strings.EqualFold(u.Scheme, "https")
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
		if https {
			port = "443"
		}
	}
	addr := net.JoinHostPort(host, port)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := c.Dial
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	conn, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	if !https {
		return conn, nil, nil
	}
	cfg := &tls.Config{}
	if c.TLSConfig != nil {
		cfg = c.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if c.Insecure {
		cfg.InsecureSkipVerify = true
	}
	if c.Proto == HTTP2 {
		cfg.NextProtos = []string{"h2"}
	} else {
		cfg.NextProtos = []string{"http/1.1"}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(dctx); err != nil {
		conn.Close()
		if c.Proto == HTTP2 {
			return nil, nil, fmt.Errorf("TLS handshake with %s offering only HTTP/2 (ALPN h2): %w", addr, err)
		}
		return nil, nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	st := tc.ConnectionState()
	if c.Proto == HTTP2 && st.NegotiatedProtocol != "h2" {
		tc.Close()
		return nil, nil, fmt.Errorf("%s did not negotiate HTTP/2 (ALPN %q)", addr, st.NegotiatedProtocol)
	}
	return tc, &st, nil
}

// hostHeader returns the Host (or :authority) for u: host and port, the
// port left out when it is the scheme's default.
func hostHeader(u *url.URL) string {
	host := u.Host
	if p := u.Port(); (p == "80" && strings.EqualFold(u.Scheme, "http")) || (p == "443" && strings.EqualFold(u.Scheme, "https")) {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return host
}

// closer closes the connection once, whoever asks first.
type closer struct {
	io.Reader
	close func()
}

func (c *closer) Close() error {
	c.close()
	return nil
}
