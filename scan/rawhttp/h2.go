package rawhttp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Window is the flow-control window the client grants, per stream and for
// the connection; it is topped up as data is read.
const h2Window = 1 << 20

// doHTTP2 speaks HTTP/2 on conn: preface, settings, one request on stream 1.
func (c *Client) doHTTP2(conn net.Conn, req *Request, scheme string, tm *Timing, cleanup func()) (*Response, error) {
	fr, err := h2Start(conn)
	if err != nil {
		return nil, err
	}
	if err := h2WriteRequest(fr, req, scheme); err != nil {
		return nil, err
	}
	tm.Sent = time.Now()

	s := &h2stream{fr: fr}
	s.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { s.fields = append(s.fields, f) })
	res := &Response{Proto: "HTTP/2.0", ProtoMajor: 2, Framing: FramingHTTP2}
	if err := s.readHead(res); err != nil {
		return nil, err
	}
	tm.Headers = time.Now()
	res.Body = &closer{Reader: s, close: cleanup}
	return res, nil
}

// h2Start writes the connection preface, the settings and a window update
// that lets a stream run without acknowledging every byte.
func h2Start(conn net.Conn) (*http2.Framer, error) {
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return nil, fmt.Errorf("write HTTP/2 preface: %w", err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window},
	); err != nil {
		return nil, fmt.Errorf("write HTTP/2 settings: %w", err)
	}
	if err := fr.WriteWindowUpdate(0, h2Window-65535); err != nil {
		return nil, fmt.Errorf("write HTTP/2 window update: %w", err)
	}
	return fr, nil
}

// h2WriteRequest writes req on stream 1: its header fields in order (a
// Host field becomes :authority), then its body.
func h2WriteRequest(fr *http2.Framer, req *Request, scheme string) error {
	method := req.Method
	if method == "" {
		method = "GET"
	}
	authority := hostHeader(req.URL)
	var rest []Field
	for _, f := range req.Header {
		if strings.EqualFold(f.Name, "Host") {
			authority = f.Value
			continue
		}
		rest = append(rest, f)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	write := func(name, value string) { _ = enc.WriteField(hpack.HeaderField{Name: name, Value: value}) }
	write(":method", method)
	write(":scheme", scheme)
	write(":authority", authority)
	write(":path", req.URL.RequestURI())
	for _, f := range rest {
		write(strings.ToLower(f.Name), f.Value)
	}
	if len(req.Body) > 0 && len(Values(req.Header, "Content-Length")) == 0 {
		write("content-length", strconv.Itoa(len(req.Body)))
	}
	if err := writeHeaderBlock(fr, hb.Bytes(), len(req.Body) == 0); err != nil {
		return fmt.Errorf("write HTTP/2 request: %w", err)
	}
	for body := req.Body; len(body) > 0; {
		n := min(len(body), 16384)
		if err := fr.WriteData(1, n == len(body), body[:n]); err != nil {
			return fmt.Errorf("write HTTP/2 request body: %w", err)
		}
		body = body[n:]
	}
	return nil
}

// readHead reads header blocks until the final one (1xx responses are
// interim), and fills res's status and header fields from it.
func (s *h2stream) readHead(res *Response) error {
	for {
		fields, end, err := s.readHeaders()
		if err != nil {
			return err
		}
		status := -1
		var regular []Field
		for _, f := range fields {
			if f.Name == ":status" {
				status, _ = strconv.Atoi(f.Value)
				continue
			}
			if strings.HasPrefix(f.Name, ":") {
				continue
			}
			regular = append(regular, Field{Name: f.Name, Value: strings.Trim(f.Value, " \t")})
		}
		if status < 0 {
			return errors.New("HTTP/2 response without :status")
		}
		if status >= 100 && status < 200 {
			res.Interim = append(res.Interim, status)
			continue
		}
		res.StatusCode, res.Header, s.ended = status, regular, end
		return nil
	}
}

// writeHeaderBlock writes a header block as HEADERS plus CONTINUATION frames.
func writeHeaderBlock(fr *http2.Framer, block []byte, endStream bool) error {
	const max = 16384
	first := block
	if len(first) > max {
		first = first[:max]
	}
	rest := block[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: endStream, EndHeaders: len(rest) == 0}); err != nil {
		return err
	}
	for len(rest) > 0 {
		n := min(len(rest), max)
		if err := fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// h2stream reads the frames of stream 1 and answers what the connection
// needs (settings acks, pings, window updates) on the way.
type h2stream struct {
	fr     *http2.Framer
	dec    *hpack.Decoder
	fields []hpack.HeaderField
	buf    []byte
	ended  bool
	err    error
}

// next reads one frame for stream 1, handling connection frames itself.
func (s *h2stream) next() (http2.Frame, error) {
	for {
		f, err := s.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("HTTP/2 connection closed before the end of the stream: %w", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("read HTTP/2 frame: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := s.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := s.fr.WritePing(true, f.Data); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.GoAwayFrame:
			if f.LastStreamID < 1 {
				return nil, fmt.Errorf("HTTP/2 GOAWAY before the request was processed (%v)", f.ErrCode)
			}
			continue
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return nil, &StreamResetError{Code: f.ErrCode.String()}
			}
			continue
		}
		if f.Header().StreamID != 1 {
			continue
		}
		return f, nil
	}
}

// readHeaders reads one complete header block of stream 1.
func (s *h2stream) readHeaders() ([]Field, bool, error) {
	for {
		f, err := s.next()
		if err != nil {
			return nil, false, err
		}
		hf, ok := f.(*http2.HeadersFrame)
		if !ok {
			if _, data := f.(*http2.DataFrame); data {
				return nil, false, errors.New("HTTP/2 DATA before the response headers")
			}
			continue
		}
		s.fields = s.fields[:0]
		if _, err := s.dec.Write(hf.HeaderBlockFragment()); err != nil {
			return nil, false, fmt.Errorf("HPACK: %w", err)
		}
		endStream := hf.StreamEnded()
		done := hf.HeadersEnded()
		for !done {
			f, err := s.next()
			if err != nil {
				return nil, false, err
			}
			cf, ok := f.(*http2.ContinuationFrame)
			if !ok {
				return nil, false, errors.New("HTTP/2 header block interrupted")
			}
			if _, err := s.dec.Write(cf.HeaderBlockFragment()); err != nil {
				return nil, false, fmt.Errorf("HPACK: %w", err)
			}
			done = cf.HeadersEnded()
		}
		if err := s.dec.Close(); err != nil {
			return nil, false, fmt.Errorf("HPACK: %w", err)
		}
		out := make([]Field, len(s.fields))
		for i, f := range s.fields {
			out[i] = Field{Name: f.Name, Value: f.Value}
		}
		return out, endStream, nil
	}
}

// Read returns the data of stream 1.
func (s *h2stream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.ended {
			return 0, io.EOF
		}
		f, err := s.next()
		if err != nil {
			s.err = err
			return 0, err
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			data := f.Data()
			s.buf = append(s.buf[:0], data...)
			if n := f.Length; n > 0 {
				// Grant back what was received, padding included.
				if err := s.fr.WriteWindowUpdate(0, n); err != nil {
					s.err = err
				} else if !f.StreamEnded() {
					if err := s.fr.WriteWindowUpdate(1, n); err != nil {
						s.err = err
					}
				}
			}
			if f.StreamEnded() {
				s.ended = true
			}
		case *http2.HeadersFrame: // trailers
			s.ended = s.ended || f.StreamEnded()
			if !f.HeadersEnded() {
				// Drain the trailer block; its fields are not kept.
				for {
					cf, err := s.next()
					if err != nil {
						s.err = err
						break
					}
					if c, ok := cf.(*http2.ContinuationFrame); !ok || c.HeadersEnded() {
						break
					}
				}
			}
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}
