package sse

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one server-sent event.
//
// The zero Event is a valid, empty "message" event. Encoding an Event always
// produces exactly one dispatched event on the receiving side, so comment-only
// blocks (heartbeats) and retry-only blocks are written with [AppendComment]
// and [AppendRetry] instead.
type Event struct {
	// ID sets the receiver's last event ID. Empty means no id field, so the
	// receiver keeps the ID it had (the standard's last event ID buffer
	// persists across events). It must not contain CR, LF or NUL.
	ID string

	// Type is the event type. Empty means "message", the default. It must
	// not contain CR, LF or NUL.
	Type string

	// Data is the payload. Each CR, LF or CRLF in it starts a new data line,
	// so the receiver cannot be made to see a field the caller did not
	// write. The receiver joins data lines with LF: it sees Data unchanged
	// except that each CR and CRLF has become LF (the format cannot carry a
	// CR in data).
	Data string

	// Retry, when positive, is written as a retry field in whole
	// milliseconds, rounded down but never below 1 ms (retry: 0 asks for an
	// immediate reconnect, which a positive Retry never means). Zero writes
	// no retry field; a negative value is an error.
	Retry time.Duration

	// Comment is written as comment lines before the fields. Receivers
	// ignore comments; each line break in Comment starts a new comment line.
	Comment string
}

// FieldError reports an Event field that cannot be encoded safely.
type FieldError struct {
	Field  string // "id", "event" or "retry"
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("sse: invalid %s field: %s", e.Field, e.Reason)
}

// ErrInvalidField is matched by every *FieldError with errors.Is.
var ErrInvalidField = errors.New("sse: invalid field")

// Is makes errors.Is(err, ErrInvalidField) true for every FieldError.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidField }

// Validate reports whether e can be encoded: ID and Type free of CR, LF and
// NUL, and Retry not negative.
func (e Event) Validate() error {
	if i := strings.IndexAny(e.ID, "\r\n\x00"); i >= 0 {
		return &FieldError{Field: "id", Reason: fmt.Sprintf("contains %q at byte %d", e.ID[i], i)}
	}
	if i := strings.IndexAny(e.Type, "\r\n\x00"); i >= 0 {
		return &FieldError{Field: "event", Reason: fmt.Sprintf("contains %q at byte %d", e.Type[i], i)}
	}
	if e.Retry < 0 {
		return &FieldError{Field: "retry", Reason: "negative duration"}
	}
	return nil
}

// AppendTo appends the wire form of e to dst, ending with the blank line that
// dispatches it. On error dst is returned unchanged and nothing is appended.
func (e Event) AppendTo(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	if e.Comment != "" {
		dst = AppendComment(dst, e.Comment)
		dst = dst[:len(dst)-1] // keep the comment in this event's block
	}
	if e.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, e.ID...)
		dst = append(dst, '\n')
	}
	if e.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, e.Type...)
		dst = append(dst, '\n')
	}
	if e.Retry > 0 {
		dst = appendRetryField(dst, max(e.Retry, time.Millisecond))
	}
	dst = appendLines(dst, "data", e.Data)
	return append(dst, '\n'), nil
}

// Encode returns the wire form of e; see [Event.AppendTo]. (It is not
// MarshalText on purpose: encoding/json would then turn an Event into one
// string of wire text instead of an object.)
func (e Event) Encode() ([]byte, error) {
	return e.AppendTo(make([]byte, 0, e.encodedSizeHint()))
}

// WriteTo writes the wire form of e to w in one Write call.
func (e Event) WriteTo(w io.Writer) (int64, error) {
	b, err := e.Encode()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (e Event) encodedSizeHint() int {
	return len(e.ID) + len(e.Type) + len(e.Data) + len(e.Comment) + 40
}

// AppendComment appends text as comment lines (": text"), one per line of
// text, followed by a blank line. Receivers ignore comments, which is what
// makes them useful as heartbeats.
func AppendComment(dst []byte, text string) []byte {
	dst = appendLines(dst, "", text)
	return append(dst, '\n')
}

// AppendRetry appends a block holding only a retry field, in whole
// milliseconds, which sets the receiver's reconnection time without
// dispatching an event. A negative d is written as zero.
func AppendRetry(dst []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	dst = appendRetryField(dst, d)
	return append(dst, '\n')
}

func appendRetryField(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, '\n')
}

// appendLines writes one "name: line" per line of s, splitting on CR, LF and
// CRLF. An empty name writes comment lines. An empty line is written without
// the space, as "name:".
func appendLines(dst []byte, name, s string) []byte {
	for {
		line, rest, more := nextLine(s)
		dst = append(dst, name...)
		dst = append(dst, ':')
		if line != "" {
			dst = append(dst, ' ')
			dst = append(dst, line...)
		}
		dst = append(dst, '\n')
		if !more {
			return dst
		}
		s = rest
	}
}

// linesLen is the length appendLines adds for name and s.
func linesLen(name, s string) int {
	n := 0
	for {
		line, rest, more := nextLine(s)
		n += len(name) + 2 // the colon and the LF
		if line != "" {
			n += 1 + len(line)
		}
		if !more {
			return n
		}
		s = rest
	}
}

// nextLine splits s at its first line break (CR, LF or CRLF, as the
// WHATWG parser reads them): the line, what follows the break, and whether
// there was one.
func nextLine(s string) (line, rest string, more bool) {
	i := strings.IndexAny(s, "\r\n")
	if i < 0 {
		return s, "", false
	}
	line = s[:i]
	if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
		i++
	}
	return line, s[i+1:], true
}

// EncodedLen returns the length of e's wire form (what AppendTo appends
// for a valid e), without building it: a line break in Data costs a
// whole "data: " field, so the wire form of many short lines is several
// times the length of Data.
func (e Event) EncodedLen() int {
	n := 1 // the blank line
	if e.Comment != "" {
		n += linesLen("", e.Comment)
	}
	if e.ID != "" {
		n += len("id: \n") + len(e.ID)
	}
	if e.Type != "" {
		n += len("event: \n") + len(e.Type)
	}
	if e.Retry > 0 {
		n += len(appendRetryField(nil, max(e.Retry, time.Millisecond)))
	}
	return n + linesLen("data", e.Data)
}
