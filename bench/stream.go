package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Per-stream buffers. A stream costs the generator its socket, these two
// buffers, a few small structs and one goroutine that blocks in Read: about
// 10 KB in all (measured), so one process holds the ~19k streams its file
// limit allows. sse.Parser is not used here because it always wraps its
// reader in a 4 KiB bufio.Reader and allocates per event; this reader only
// needs the id and data lines of the events the bench itself publishes.
const (
	connBufSize = 512 // response head and chunk framing
	lineBufSize = 512 // event lines; longer lines spill into a growing slice
	maxLine     = 2 << 20
)

var errLineTooLong = errors.New("line longer than 2 MiB")

// stream is one subscriber connection and its delivery bookkeeping.
type stream struct {
	r      *run
	conn   net.Conn // nil for an HTTP/2 stream, which cancel ends
	cancel context.CancelFunc
	body   io.ReadCloser
	lr     *bufio.Reader

	seen       []uint64 // bitmap of the sequence numbers received; only the reader goroutine writes it
	unique     atomic.Int64
	heartbeats atomic.Int64
	ended      atomic.Bool

	long []byte // a line longer than lineBufSize
}

// streamRequest returns the request bytes every stream sends.
func streamRequest(u *url.URL, cfg *settings) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s?topic=%s HTTP/1.1\r\n", cfg.EventsPath, url.QueryEscape(cfg.Topic))
	fmt.Fprintf(&b, "Host: %s\r\n", u.Host)
	b.WriteString("User-Agent: sseguard-bench\r\n")
	b.WriteString("Accept: text/event-stream\r\n")
	b.WriteString("Cache-Control: no-cache\r\n")
	if cfg.Token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", cfg.Token)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// dial opens stream i: dial, request, response head. It returns the time
// from the start of the dial to the parsed response head.
func (r *run) dial(ctx context.Context, i int) (*stream, time.Duration, error) {
	if r.h2 != nil {
		return r.dialH2(ctx, i)
	}
	d := net.Dialer{Timeout: r.cfg.ConnectTimeout}
	if n := len(r.cfg.Sources); n > 0 {
		d.LocalAddr = &net.TCPAddr{IP: r.cfg.Sources[i%n].AsSlice()}
	}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", r.streamAddrs[i%len(r.streamAddrs)].String())
	if err != nil {
		return nil, 0, fmt.Errorf("dial: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	// A canceled run must not wait for the connect timeout.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(start.Add(r.cfg.ConnectTimeout)); err != nil {
		return nil, 0, fmt.Errorf("set deadline: %w", err)
	}
	if r.tls != nil {
		tc, err := handshake(ctx, conn, r.h1TLS())
		if err != nil {
			return nil, 0, err
		}
		conn = tc // closed, on failure, with the raw connection under it
	}
	if _, err := conn.Write(r.streamReqs[i%len(r.streamReqs)]); err != nil {
		return nil, 0, fmt.Errorf("send request: %w", err)
	}
	br := bufio.NewReaderSize(conn, connBufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("read response head: %w", err)
	}
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, 0, fmt.Errorf("stream answered %s: %q", resp.Status, bytes.TrimSpace(msg))
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return nil, 0, fmt.Errorf("stream content type %q, want text/event-stream", resp.Header.Get("Content-Type"))
	}
	if !stop() {
		return nil, 0, ctx.Err()
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, 0, fmt.Errorf("clear deadline: %w", err)
	}
	s := r.newStream(conn, resp.Body)
	ok = true
	return s, elapsed, nil
}

// newStream returns the stream that reads body, on conn (nil for HTTP/2).
func (r *run) newStream(conn net.Conn, body io.ReadCloser) *stream {
	s := &stream{r: r, conn: conn, body: body, lr: bufio.NewReaderSize(body, lineBufSize)}
	if r.cfg.events > 0 {
		s.seen = make([]uint64, (r.cfg.events+63)/64)
	}
	return s
}

// read consumes the stream until its connection ends. It runs on the
// stream's own goroutine; the run closes the connection to stop it.
func (s *stream) read() {
	r := s.r
	events := int64(r.cfg.events)
	var (
		id, data, lastID           []byte
		haveID, haveData, haveLast bool
		lastIDStr                  string // only with a custom CompareIDs
	)
	for {
		line, err := s.readLine()
		if err != nil {
			s.end(err)
			return
		}
		switch {
		case len(line) == 0:
			if !haveData {
				continue
			}
			haveData = false
			now := time.Now()
			seq, sent, isOurs := parsePayload(data)
			if !isOurs || seq < 0 || seq >= events {
				r.other.Add(1)
				continue
			}
			r.latency.record(now.Sub(time.Unix(0, sent)))
			word, bit := seq/64, uint64(1)<<(uint64(seq)%64)
			duplicate := s.seen[word]&bit != 0
			if duplicate {
				r.duplicates.Add(1)
			} else {
				s.seen[word] |= bit
				s.unique.Add(1)
				r.delivered.Add(1)
			}
			if !haveID || duplicate {
				continue
			}
			var outOfOrder bool
			if r.customCompare != nil {
				idStr := string(id)
				outOfOrder = haveLast && r.customCompare(idStr, lastIDStr) <= 0
				lastIDStr = idStr
			} else {
				outOfOrder = haveLast && compareIDBytes(id, lastID) <= 0
			}
			if outOfOrder {
				r.outOfOrder.Add(1)
			}
			lastID = append(lastID[:0], id...)
			haveLast = true
		case line[0] == ':':
			s.heartbeats.Add(1)
			r.heartbeats.Add(1)
		default:
			name, value, _ := bytes.Cut(line, []byte(":"))
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
			switch string(name) {
			case "data":
				if haveData {
					data = append(data, '\n')
					data = append(data, value...)
				} else {
					data = append(data[:0], value...)
					haveData = true
				}
			case "id":
				if bytes.IndexByte(value, 0) < 0 {
					// The last event ID persists across events, as in the standard.
					id = append(id[:0], value...)
					haveID = len(id) > 0
				}
			}
		}
	}
}

// readLine returns the next line without its LF or CRLF. The slice is valid
// until the next call.
func (s *stream) readLine() ([]byte, error) {
	line, err := s.lr.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = s.lr.ReadSlice('\n')
			s.long = append(s.long, line...)
			if len(s.long) > maxLine {
				return nil, errLineTooLong
			}
		}
		line = s.long
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// end records why the stream's connection ended: an unexpected disconnect
// unless the run was closing it.
func (s *stream) end(err error) {
	s.ended.Store(true)
	if s.r.closing.Load() {
		return
	}
	s.r.disconnects.Add(1)
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("server closed the stream")
	}
	s.r.errs.add("stream: " + err.Error())
}

// close closes the connection, which ends the reader goroutine.
func (s *stream) close() {
	if s.conn != nil {
		s.conn.Close()
		return
	}
	s.cancel()
	s.body.Close()
}

// lost returns how many accepted events the stream never received.
func (s *stream) lost(accepted []atomic.Uint64) int64 {
	var n int
	for i, w := range s.seen {
		n += bits.OnesCount64(accepted[i].Load() &^ w)
	}
	return int64(n)
}

// payload builds the data of event seq, sent at sent (unix nanoseconds),
// with pad extra bytes.
func appendPayload(dst []byte, seq, sent int64, pad int) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"sent":`...)
	dst = strconv.AppendInt(dst, sent, 10)
	if pad > 0 {
		dst = append(dst, `,"pad":"`...)
		dst = append(dst, bytes.Repeat([]byte("x"), pad)...)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// parsePayload reads the sequence number and send time from data built by
// appendPayload, without allocating.
func parsePayload(data []byte) (seq, sent int64, ok bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"seq":`))
	if !ok {
		return 0, 0, false
	}
	seq, rest, ok = leadingInt(rest)
	if !ok {
		return 0, 0, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte(`,"sent":`))
	if !ok {
		return 0, 0, false
	}
	sent, rest, ok = leadingInt(rest)
	if !ok || len(rest) == 0 || (rest[0] != '}' && rest[0] != ',') {
		return 0, 0, false
	}
	return seq, sent, true
}

func leadingInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, nil, false
		}
		n = n*10 + d
	}
	return n, b[i:], i > 0
}

// compareIDBytes is compareIDs on byte slices, without allocating.
func compareIDBytes(a, b []byte) int { return naturalCompare(a, b) }
