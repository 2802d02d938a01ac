package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/sseguard/sseguard/policy"
)

// doHTTP1 writes the request and reads the response head over HTTP/1.x.
func (c *Client) doHTTP1(conn net.Conn, req *Request, tm *Timing, cleanup func()) (*Response, error) {
	version := "HTTP/1.1"
	if c.Proto == HTTP10 {
		version = "HTTP/1.0"
	}
	method := req.Method
	if method == "" {
		method = "GET"
	}
	if _, err := conn.Write(h1Request(req, method, version)); err != nil {
		return nil, fmt.Errorf("write request: %w", err)
	}
	tm.Sent = time.Now()

	limit := c.MaxHeaderBytes
	if limit <= 0 {
		limit = 64 << 10
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	var interim []int
	for {
		res, err := readHead(br, limit)
		if err != nil {
			return nil, err
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 && res.StatusCode != 101 {
			interim = append(interim, res.StatusCode)
			continue
		}
		tm.Headers = time.Now()
		res.Interim = interim
		res.Body = &closer{Reader: h1Body(res, br, method), close: cleanup}
		return res, nil
	}
}

// h1Request is req on the wire: the request line, Host unless req sets
// it, req's fields in order, Content-Length for a body without one.
func h1Request(req *Request, method, version string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", method, req.URL.RequestURI(), version)
	if len(Values(req.Header, "Host")) == 0 {
		fmt.Fprintf(&b, "Host: %s\r\n", hostHeader(req.URL))
	}
	for _, f := range req.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", f.Name, f.Value)
	}
	if len(req.Body) > 0 && len(Values(req.Header, "Content-Length")) == 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(req.Body))
	}
	b.WriteString("\r\n")
	b.Write(req.Body)
	return b.Bytes()
}

// h1Body returns the reader of res's body as its framing delimits it, and
// sets res.Framing.
func h1Body(res *Response, br *bufio.Reader, method string) io.Reader {
	switch {
	case method == "HEAD" || res.StatusCode == 204 || res.StatusCode == 304:
		res.Framing = FramingNone
		return eofReader{}
	case isChunked(res.Header) && res.ProtoMinor >= 1:
		res.Framing = FramingChunked
		return &chunkedBody{r: httputil.NewChunkedReader(br)}
	}
	if n, ok := contentLength(res.Header); ok {
		res.Framing = FramingLength
		return &lengthBody{r: br, left: n}
	}
	res.Framing = FramingClose
	return &closeBody{r: br}
}

// readHead reads one status line and its header lines.
func readHead(br *bufio.Reader, limit int) (*Response, error) {
	var raw bytes.Buffer
	readLine := func() (string, error) {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("response head line longer than %d bytes", br.Size())
		}
		raw.Write(line)
		if raw.Len() > limit {
			return "", fmt.Errorf("response head larger than %d bytes", limit)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if raw.Len() == 0 {
					return "", fmt.Errorf("read response: connection closed before any response (%w)", io.ErrUnexpectedEOF)
				}
				return "", fmt.Errorf("read response head: %w", io.ErrUnexpectedEOF)
			}
			return "", fmt.Errorf("read response head: %w", err)
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
	status, err := readLine()
	if err != nil {
		return nil, err
	}
	res, err := parseStatusLine(status)
	if err != nil {
		return nil, err
	}
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(res.Header) > 0 {
			// obs-fold (RFC 9112 section 5.2): part of the previous value.
			last := &res.Header[len(res.Header)-1]
			last.Value = strings.TrimSpace(last.Value + " " + strings.TrimSpace(line))
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !policy.IsToken(name) {
			return nil, fmt.Errorf("malformed response header line %q", line)
		}
		res.Header = append(res.Header, Field{Name: name, Value: strings.Trim(value, " \t")})
	}
	res.RawHead = bytes.Clone(raw.Bytes())
	return res, nil
}

func parseStatusLine(line string) (*Response, error) {
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/") {
		return nil, fmt.Errorf("malformed status line %q: is this an HTTP server?", line)
	}
	codeStr, reason, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || len(codeStr) != 3 {
		return nil, fmt.Errorf("malformed status line %q", line)
	}
	major, minor := 1, 1
	if v, ok := strings.CutPrefix(proto, "HTTP/"); ok {
		a, b, _ := strings.Cut(v, ".")
		if x, err := strconv.Atoi(a); err == nil {
			major = x
		}
		if y, err := strconv.Atoi(b); err == nil {
			minor = y
		}
	}
	return &Response{Proto: proto, ProtoMajor: major, ProtoMinor: minor, StatusCode: code, Reason: reason}, nil
}

// isChunked reports whether chunked is the final transfer coding.
func isChunked(h []Field) bool {
	var codings []string
	for _, v := range Values(h, "Transfer-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				codings = append(codings, strings.ToLower(c))
			}
		}
	}
	return len(codings) > 0 && codings[len(codings)-1] == "chunked"
}

func contentLength(h []Field) (int64, bool) {
	vs := Values(h, "Content-Length")
	if len(vs) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(strings.Split(vs[0], ",")[0]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// chunkedBody reports a connection that ends before the last chunk as
// io.ErrUnexpectedEOF.
type chunkedBody struct{ r io.Reader }

func (c *chunkedBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, fmt.Errorf("chunked body ended without its last chunk: %w", io.ErrUnexpectedEOF)
		}
		return n, err
	}
	return n, err
}

type lengthBody struct {
	r    io.Reader
	left int64
}

func (l *lengthBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if errors.Is(err, io.EOF) && l.left > 0 {
		return n, fmt.Errorf("body shorter than its Content-Length: %w", io.ErrUnexpectedEOF)
	}
	if l.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// closeBody ends at the connection's end; that is a clean end.
type closeBody struct{ r io.Reader }

func (c *closeBody) Read(p []byte) (int, error) { return c.r.Read(p) }
