package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// pubConn publishes over one kept-alive HTTP/1.1 connection, one request
// at a time, the way wrk does: a request is a prebuilt head plus the body,
// written in one call, and the answer is parsed only as far as its status,
// its length and whether the server keeps the connection.
//
// net/http's client costs about five times more CPU per request (a read
// and a write goroutine per connection, a timer and a context per
// request, header maps both ways). On two shared cores the generator's
// CPU is taken from the hub it measures, so that client made the bench
// report about two thirds of the publish rate wrk measured against the
// same hub (docs/benchmarks.md, durable publish throughput).
type pubConn struct {
	dial    func(context.Context) (net.Conn, error)
	head    []byte // request line and headers up to "Content-Length: "
	timeout time.Duration

	conn net.Conn
	br   *bufio.Reader
	wbuf []byte
	stop func() bool // ends the context watch of conn
}

// errPubClosed reports an answer after which the server closed (or will
// close) the connection; the answer itself is valid.
var errPubClosed = errors.New("connection closed by the server")

// newPubHead returns the fixed part of a publish request.
func newPubHead(host, path, token string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sseguard-bench\r\n", path, host)
	b.WriteString("Content-Type: application/json\r\nAccept: application/json\r\n")
	if token != "" {
		b.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	b.WriteString("Content-Length: ")
	return b.Bytes()
}

// do sends body and returns the answer's status and up to 160 bytes of
// its body. Any error leaves the connection closed; the next call dials.
func (p *pubConn) do(ctx context.Context, body []byte) (status int, excerpt []byte, err error) {
	if p.conn == nil {
		c, err := p.dial(ctx)
		if err != nil {
			return 0, nil, err
		}
		p.conn = c
		if p.br == nil {
			p.br = bufio.NewReaderSize(c, 4096)
		} else {
			p.br.Reset(c)
		}
		// One watch per connection, not per request: a cancelled run
		// unblocks the read or write in progress.
		p.stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	}
	p.wbuf = append(p.wbuf[:0], p.head...)
	p.wbuf = strconv.AppendInt(p.wbuf, int64(len(body)), 10)
	p.wbuf = append(p.wbuf, "\r\n\r\n"...)
	p.wbuf = append(p.wbuf, body...)
	deadline := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := p.conn.SetDeadline(deadline); err != nil {
		p.close()
		return 0, nil, err
	}
	if _, err := p.conn.Write(p.wbuf); err != nil {
		p.close()
		return 0, nil, err
	}
	status, excerpt, err = readAnswer(p.br)
	if err != nil {
		p.close()
		if errors.Is(err, errPubClosed) {
			err = nil
		}
	}
	return status, excerpt, err
}

func (p *pubConn) close() {
	if p.conn != nil {
		p.stop()
		p.conn.Close()
		p.conn = nil
	}
}

// readAnswer reads one HTTP/1.1 response with a Content-Length body (what
// net/http sends for a short answer), keeping at most 160 bytes of the
// body. It returns errPubClosed with a valid answer when the connection
// cannot carry another request.
func readAnswer(br *bufio.Reader) (status int, excerpt []byte, err error) {
	line, err := readLine(br)
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, fmt.Errorf("malformed status line %q", truncate(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 {
		return 0, nil, fmt.Errorf("malformed status line %q", truncate(line))
	}
	length := int64(-1)
	closing := line[7] == '0' // HTTP/1.0 closes unless asked otherwise
	for {
		line, err = readLine(br)
		if err != nil {
			return 0, nil, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, fmt.Errorf("malformed header %q", truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || length < 0 {
				return 0, nil, fmt.Errorf("malformed Content-Length %q", truncate(value))
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, fmt.Errorf("unsupported Transfer-Encoding %q on a publish answer", truncate(value))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	if length < 0 {
		return 0, nil, errors.New("publish answer without Content-Length")
	}
	if length > 64<<10 {
		return 0, nil, fmt.Errorf("publish answer of %d bytes", length)
	}
	if status/100 != 2 {
		excerpt = make([]byte, min(length, 160))
		if _, err := io.ReadFull(br, excerpt); err != nil {
			return 0, nil, err
		}
		length -= int64(len(excerpt))
	}
	if _, err := br.Discard(int(length)); err != nil {
		return 0, nil, err
	}
	if closing {
		return status, excerpt, errPubClosed
	}
	return status, excerpt, nil
}

// readLine reads one CRLF-terminated line of at most the reader's buffer.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("answer line too long")
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
