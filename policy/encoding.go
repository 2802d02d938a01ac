package policy

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUnsupportedCoding is wrapped by the error of DecodeContent for a
// content coding it cannot undo, or for several codings at once.
var ErrUnsupportedCoding = errors.New("unsupported content coding")

// DecodeContent undoes the content coding that a response's
// Content-Encoding lines (values) name on its body: gzip (or x-gzip), and
// deflate, which RFC 9110 defines as zlib but which some servers send as
// raw deflate, so both are read. identity is no coding. Names are matched
// without regard to case. The proxy (on upstream bodies) and the scanner
// (on streams, refusals and pages) both decode with it, so that they agree
// on what a body says.
//
// coding is the coding found, in lower case without identity ("" when
// there is none, and then dec is body itself); several codings are joined
// with ", ". It is set on error too, so that the caller can report it. A
// coding other than those, or several codings, give an error wrapping
// ErrUnsupportedCoding and a nil dec.
//
// The decompressor is opened at dec's first Read, not here: reading its
// header waits for body bytes, and a response's head must be judged or
// sent before the first event arrives. An empty body reads as empty.
// Corrupt compressed data makes Read fail with the compress packages' own
// errors ([IsCorruptContent] tells them apart from a failing connection).
func DecodeContent(values []string, body io.Reader) (dec io.Reader, coding string, err error) {
	var codings []string
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	coding = strings.Join(codings, ", ")
	switch {
	case len(codings) == 0:
		return body, "", nil
	case len(codings) > 1:
		return nil, coding, fmt.Errorf("%w: %s (one coding at most)", ErrUnsupportedCoding, coding)
	}
	switch coding {
	case "gzip", "x-gzip":
		return &lazyReader{build: func() (io.Reader, error) { return gzip.NewReader(body) }}, coding, nil
	case "deflate":
		return &lazyReader{build: func() (io.Reader, error) { return zlibOrFlate(body) }}, coding, nil
	}
	return nil, coding, fmt.Errorf("%w: %s", ErrUnsupportedCoding, coding)
}

// lazyReader builds its reader on the first Read; an error building it is
// returned by every Read.
type lazyReader struct {
	build func() (io.Reader, error)
	r     io.Reader
	err   error
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil && l.err == nil {
		l.r, l.err = l.build()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(p)
}

// zlibOrFlate reads "deflate" as RFC 9110 defines it (zlib), falling back
// to the raw deflate some servers send. A zlib stream starts with a CMF
// byte naming method 8 and a check that makes CMF*256+FLG a multiple of
// 31; a raw deflate stream rarely does.
func zlibOrFlate(r io.Reader) (io.Reader, error) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	mr := io.MultiReader(bytes.NewReader(head[:]), r)
	if head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
		return zlib.NewReader(mr)
	}
	return flate.NewReader(mr), nil
}

// IsCorruptContent reports whether err, from reading a DecodeContent
// reader, says the compressed data is corrupt, as opposed to the
// connection failing under the decompressor.
func IsCorruptContent(err error) bool {
	var corrupt flate.CorruptInputError
	var internal flate.InternalError
	return errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, zlib.ErrHeader) || errors.Is(err, zlib.ErrChecksum) || errors.Is(err, zlib.ErrDictionary) ||
		errors.As(err, &corrupt) || errors.As(err, &internal)
}
