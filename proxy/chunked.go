package proxy

import "errors"

// errChunked is an upstream body whose chunked framing is broken.
var errChunked = errors.New("malformed chunked encoding from the upstream")

// Bounds of what a chunked body may hold besides its data, as net/http's
// own reader bounds them: a size line (with its extensions) and the
// trailer section.
const (
	maxChunkLine    = 4096
	maxTrailerBytes = 64 << 10
)

// dechunker undoes HTTP/1.1 chunked framing (RFC 9112 §7.1) as bytes
// arrive, in place: it reads a parked stream's upstream body without a
// goroutine or a reader of its own. Chunk extensions and trailers are
// read and dropped. A bare LF ends a line as CRLF does, as net/http reads
// it. Its zero value is ready, at the start of a body.
type dechunker struct {
	state  uint8
	digits uint8 // hex digits of the size line so far
	size   uint64
	line   int // bytes of the current size or trailer line
	trail  int // bytes of the trailer section
}

const (
	dcSize        = iota // in the size's hex digits
	dcSizeWS             // whitespace after the size
	dcExt                // an extension, up to the LF
	dcSizeLF             // the size line's CR was seen
	dcData               // in a chunk's data: size bytes left
	dcDataCR             // after the data: CRLF expected
	dcDataLF             // the CR after the data was seen
	dcTrailer            // at the start of a trailer line (or the final blank line)
	dcTrailerLine        // inside a trailer line
	dcTrailerLF          // the final blank line's CR was seen
	dcDone               // the last chunk and the trailers have been read
)

// decode replaces p's framing with the data it carries, moved to the front
// of p, and returns the data's length. done reports that the body ended
// (the bytes after its end are ignored). After an error, the stream is
// broken: decode keeps returning it.
func (d *dechunker) decode(p []byte) (n int, done bool, err error) {
	for i := 0; i < len(p); {
		switch d.state {
		case dcDone:
			return n, true, nil
		case dcData:
			k := len(p) - i
			if uint64(k) > d.size {
				k = int(d.size)
			}
			n += copy(p[n:], p[i:i+k])
			i += k
			if d.size -= uint64(k); d.size == 0 {
				d.state = dcDataCR
			}
			continue
		}
		c := p[i]
		i++
		switch d.state {
		case dcSize:
			if v, ok := unhex(c); ok {
				if d.digits == 15 { // over 2^60: nobody streams that in one chunk
					return d.fail(n)
				}
				d.size, d.digits = d.size<<4|uint64(v), d.digits+1
				d.line++
				continue
			}
			if d.digits == 0 {
				return d.fail(n)
			}
			switch c {
			case '\r':
				d.state = dcSizeLF
			case '\n':
				d.endSizeLine()
			case ';':
				d.state = dcExt
				d.line++
			case ' ', '\t':
				d.state = dcSizeWS
				d.line++
			default:
				return d.fail(n)
			}
		case dcSizeWS:
			switch c {
			case ' ', '\t':
				if d.line++; d.line > maxChunkLine {
					return d.fail(n)
				}
			case ';':
				d.state = dcExt
			case '\r':
				d.state = dcSizeLF
			case '\n':
				d.endSizeLine()
			default:
				return d.fail(n)
			}
		case dcExt:
			switch {
			case c == '\n':
				d.endSizeLine()
			case c == '\r':
				d.state = dcSizeLF
			case c < ' ' && c != '\t' || c == 0x7f:
				return d.fail(n)
			default:
				if d.line++; d.line > maxChunkLine {
					return d.fail(n)
				}
			}
		case dcSizeLF:
			if c != '\n' {
				return d.fail(n)
			}
			d.endSizeLine()
		case dcDataCR:
			switch c {
			case '\r':
				d.state = dcDataLF
			case '\n':
				d.state = dcSize
			default:
				return d.fail(n)
			}
		case dcDataLF:
			if c != '\n' {
				return d.fail(n)
			}
			d.state = dcSize
		case dcTrailer:
			switch c {
			case '\r':
				d.state = dcTrailerLF
			case '\n':
				d.state = dcDone
			default:
				d.state = dcTrailerLine
			}
			if d.trail++; d.trail > maxTrailerBytes {
				return d.fail(n)
			}
		case dcTrailerLine:
			if c == '\n' {
				d.state = dcTrailer
			}
			if d.trail++; d.trail > maxTrailerBytes {
				return d.fail(n)
			}
		case dcTrailerLF:
			if c != '\n' {
				return d.fail(n)
			}
			d.state = dcDone
		default: // a failed stream
			return n, false, errChunked
		}
	}
	return n, d.state == dcDone, nil
}

func (d *dechunker) endSizeLine() {
	if d.size == 0 {
		d.state = dcTrailer
	} else {
		d.state = dcData
	}
	d.digits, d.line = 0, 0
}

// failed is the state of a broken stream.
const dcFailed = 0xff

func (d *dechunker) fail(n int) (int, bool, error) {
	d.state = dcFailed
	return n, false, errChunked
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
