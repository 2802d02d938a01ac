package sse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/unicode"
)

// DefaultMaxEventBytes is the limit a [Parser] applies when MaxEventBytes is
// 0: 1 MiB for one line and for one event's data. Real streams stay far
// below it; a hostile or broken server that never ends a line or an event
// gets [ErrEventTooLarge] instead of the process's memory.
const DefaultMaxEventBytes = 1 << 20

// ErrEventTooLarge is returned by [Parser.Next] when a line, or the data of
// one event, exceeds the parser's MaxEventBytes.
var ErrEventTooLarge = errors.New("sse: event exceeds size limit")

// Parser reads server-sent events from a byte stream with the algorithm of
// the WHATWG HTML standard, section 9.2.6 "Interpreting an event stream":
//
//   - The stream is decoded as UTF-8 as the WHATWG Encoding standard's
//     decoder does: one leading byte order mark is dropped, and each
//     maximal ill-formed subsequence becomes one U+FFFD, so every string
//     the parser returns is valid UTF-8.
//   - Lines end in CRLF, LF or CR. A CR that ends a read does not wait for
//     the next byte: the line is processed at once and an LF that arrives
//     next is swallowed.
//   - A line starting with a colon is a comment. Otherwise the field name
//     runs up to the first colon (or is the whole line) and one space after
//     the colon is dropped from the value. Field names are case-sensitive;
//     unknown fields are ignored.
//   - "data" appends the value and an LF to the data buffer; "event" sets
//     the event type buffer; "id" sets the last event ID buffer unless the
//     value contains NUL (an empty value clears it); "retry" sets the
//     reconnection time when the value is all ASCII digits and fits in a
//     [time.Duration] (in milliseconds).
//   - A blank line dispatches an event if the data buffer is not empty, then
//     clears the data and event type buffers. The last event ID buffer
//     persists across events.
//   - At the end of the stream an unterminated line and an undispatched
//     event are dropped.
//
// Create a Parser with [NewParser]. It buffers its reads (it wraps the
// reader in a [bufio.Reader]), so it must be the only reader of r. It is not
// safe for concurrent use.
type Parser struct {
	// MaxEventBytes bounds the bytes buffered for one line and for one
	// event's data; a stream that exceeds it makes Next return
	// ErrEventTooLarge. 0 means DefaultMaxEventBytes; negative means no
	// limit. Comment text kept for Event.Comment is capped at the same size
	// per event; comment lines beyond it are still passed to OnComment.
	MaxEventBytes int

	// OnComment, when set, is called with the text of every comment line
	// (after the colon, one leading space stripped), including comments in
	// blocks that dispatch nothing (heartbeats), as soon as the line ends.
	// It runs on the goroutine that called Next.
	OnComment func(text string)

	r *bufio.Reader

	line    []byte // a line that spans reads
	data    []byte // data buffer
	typ     []byte // event type buffer
	comment []byte // comment lines of the current block, joined by LF
	scratch []byte // decoded id values, and comments past the limit

	hasComment  bool   // the block holds at least one comment line
	commentFull bool   // the block's comments reached the limit; keep no more
	lastID      string // last event ID buffer
	sourceID    string // the standard's last event ID string: lastID at the last blank line
	lastType    string // the previous event's type, reused to save an allocation

	retry      time.Duration // reconnection time
	retrySet   bool
	blockRetry time.Duration // retry set in the current block

	started bool // the first line has been seen, so no BOM is possible
	skipLF  bool // the last line ended in CR; an LF that follows belongs to it
	err     error
}

// NewParser returns a Parser that reads the event stream from r.
func NewParser(r io.Reader) *Parser {
	return &Parser{r: bufio.NewReader(r)}
}

// shrinkAbove is the capacity above which a buffer is released after use, so
// that one large event does not pin memory for the life of a stream.
const shrinkAbove = 64 << 10

// Next returns the next dispatched event.
//
// It returns io.EOF when the stream ends; an unterminated final event is
// dropped, as the standard says. It returns ErrEventTooLarge when a line or
// an event's data exceeds MaxEventBytes. Both are final: later calls return
// the same error. Any other error is the reader's and is returned as is; a
// later call reads on from where the stream stopped.
func (p *Parser) Next() (Event, error) {
	if p.err != nil {
		return Event{}, p.err
	}
	limit := p.limit()
	for {
		buf, err := p.fill()
		if err != nil {
			if err == io.EOF {
				p.err = io.EOF
				p.line = nil
			}
			return Event{}, err
		}
		if p.skipLF {
			p.skipLF = false
			if buf[0] == '\n' {
				p.discard(1)
				continue
			}
		}

		end := bytes.IndexByte(buf, '\n')
		head := buf
		if end >= 0 {
			head = buf[:end]
		}
		if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
			end = cr
		}
		if end < 0 {
			if limit >= 0 && len(p.line)+len(buf) > limit {
				return p.fail(ErrEventTooLarge)
			}
			p.line = append(p.line, buf...)
			p.discard(len(buf))
			continue
		}

		line := buf[:end]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		n := end + 1
		if buf[end] == '\r' {
			switch {
			case end+1 == len(buf):
				p.skipLF = true // decide when the next byte arrives, without waiting for it
			case buf[end+1] == '\n':
				n++
			}
		}
		if limit >= 0 && len(line) > limit {
			return p.fail(ErrEventTooLarge)
		}
		ev, ok, err := p.processLine(line, limit)
		p.line = p.line[:0]
		if cap(p.line) > shrinkAbove {
			p.line = nil
		}
		p.discard(n)
		if err != nil {
			return p.fail(err)
		}
		if ok {
			return ev, nil
		}
	}
}

// LastEventID returns the last event ID buffer: the value of the last valid
// id field read so far, which persists across events.
func (p *Parser) LastEventID() string { return p.lastID }

// Retry returns the reconnection time last set by a valid retry field, and
// whether any retry field has set it.
func (p *Parser) Retry() (time.Duration, bool) { return p.retry, p.retrySet }

// setLastEventID starts the last event ID buffer at id, as a client does
// when it reconnects: the ID persists across connections.
func (p *Parser) setLastEventID(id string) {
	p.lastID = id
	p.sourceID = id
}

func (p *Parser) limit() int {
	switch {
	case p.MaxEventBytes == 0:
		return DefaultMaxEventBytes
	case p.MaxEventBytes < 0:
		return -1
	}
	return p.MaxEventBytes
}

func (p *Parser) fail(err error) (Event, error) {
	p.err = err
	p.line, p.data, p.comment = nil, nil, nil
	return Event{}, err
}

// fill returns the bytes buffered in p.r, reading once if there are none.
// The slice is valid until the next read.
func (p *Parser) fill() ([]byte, error) {
	if p.r.Buffered() == 0 {
		if _, err := p.r.Peek(1); err != nil {
			return nil, err
		}
	}
	buf, _ := p.r.Peek(p.r.Buffered())
	return buf, nil
}

func (p *Parser) discard(n int) {
	// Discarding buffered bytes cannot fail.
	_, _ = p.r.Discard(n)
}

var utf8BOM = []byte("\xEF\xBB\xBF")

// processLine applies one line (without its end) to the parser's state and
// reports whether it dispatched an event. line may alias the read buffer, so
// whatever is kept is copied.
func (p *Parser) processLine(line []byte, limit int) (Event, bool, error) {
	if !p.started {
		p.started = true
		// A BOM has no CR or LF, so if the stream has one it starts the first line.
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	if len(line) == 0 {
		ev, ok := p.dispatch()
		return ev, ok, nil
	}
	if line[0] == ':' {
		p.addComment(line[1:], limit)
		return Event{}, false, nil
	}

	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	// Field names are compared before decoding: the known names are ASCII,
	// and a name holding a byte that is not ASCII can never decode to one.
	switch string(name) {
	case "data":
		p.data = appendText(p.data, value)
		p.data = append(p.data, '\n')
		if limit >= 0 && len(p.data)-1 > limit {
			return Event{}, false, ErrEventTooLarge
		}
	case "event":
		p.typ = appendText(p.typ[:0], value)
	case "id":
		if bytes.IndexByte(value, 0) >= 0 {
			break
		}
		p.scratch = appendText(p.scratch[:0], value)
		if string(p.scratch) != p.lastID {
			p.lastID = string(p.scratch)
		}
	case "retry":
		if d, ok := parseRetry(value); ok {
			p.retry, p.retrySet, p.blockRetry = d, true, d
		}
	}
	return Event{}, false, nil
}

// dispatch ends the current block: it returns the event the block built, if
// its data buffer is not empty, and resets the per-block buffers.
func (p *Parser) dispatch() (Event, bool) {
	p.sourceID = p.lastID
	if len(p.data) == 0 {
		p.resetBlock()
		return Event{}, false
	}
	ev := Event{
		ID:    p.lastID,
		Type:  "message",
		Data:  string(p.data[:len(p.data)-1]), // every data line ends in LF
		Retry: p.blockRetry,
	}
	if len(p.typ) > 0 {
		if string(p.typ) != p.lastType {
			p.lastType = string(p.typ)
		}
		ev.Type = p.lastType
	}
	if p.hasComment {
		ev.Comment = string(p.comment)
	}
	p.resetBlock()
	return ev, true
}

func (p *Parser) resetBlock() {
	p.data = p.data[:0]
	if cap(p.data) > shrinkAbove {
		p.data = nil
	}
	p.typ = p.typ[:0]
	p.comment = p.comment[:0]
	if cap(p.comment) > shrinkAbove {
		p.comment = nil
	}
	p.hasComment, p.commentFull = false, false
	p.blockRetry = 0
}

func (p *Parser) addComment(text []byte, limit int) {
	if len(text) > 0 && text[0] == ' ' {
		text = text[1:]
	}
	if p.commentFull {
		if p.OnComment != nil {
			p.scratch = appendText(p.scratch[:0], text)
			p.OnComment(string(p.scratch))
		}
		return
	}
	start := len(p.comment)
	if p.hasComment {
		p.comment = append(p.comment, '\n')
	}
	textStart := len(p.comment)
	p.comment = appendText(p.comment, text)
	if p.OnComment != nil {
		p.OnComment(string(p.comment[textStart:]))
	}
	if limit >= 0 && len(p.comment) > limit {
		// Keep whole lines only, and no later line, so that what is kept
		// is a prefix of the block's comments.
		p.comment = p.comment[:start]
		p.commentFull = true
		return
	}
	p.hasComment = true
}

// maxRetryMillis is the largest retry value, in milliseconds, that fits in a
// time.Duration.
const maxRetryMillis = math.MaxInt64 / int64(time.Millisecond)

// parseRetry interprets a retry value: base-ten ASCII digits only, leading
// zeros allowed. A value that does not fit in a Duration is ignored.
func parseRetry(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
		if ms > maxRetryMillis {
			return 0, false
		}
	}
	return time.Duration(ms) * time.Millisecond, true
}

// appendText appends src to dst decoded as the WHATWG Encoding standard's
// UTF-8 decoder does: each maximal ill-formed subsequence becomes one U+FFFD
// (so "\xE2\x82A" gives U+FFFD then "A", not two U+FFFD as Go's own decoding
// would). golang.org/x/text implements exactly that rule.
//
// Decoding line by line, or field by field, gives what decoding the whole
// stream would: lines and fields are cut at ASCII bytes, which end an
// ill-formed sequence in the decoder too.
func appendText(dst, src []byte) []byte {
	if utf8.Valid(src) {
		return append(dst, src...)
	}
	n := len(dst)
	room := 3 * len(src) // each byte decodes to at most one U+FFFD
	dst = slices.Grow(dst, room)
	w, _, err := unicode.UTF8.NewDecoder().Transform(dst[n:n+room], src, true)
	if err != nil {
		// Unreachable with room for the worst case; never return invalid text.
		return append(dst[:n], bytes.ToValidUTF8(src, []byte("\uFFFD"))...)
	}
	return dst[:n+w]
}
