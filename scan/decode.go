package scan

import (
	"bytes"
	"errors"
	"io"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// decodeBody undoes the content coding of the start of a refusal's or
// page's body (with policy.DecodeContent, as the proxy does), so that its
// shape can be checked; a body that cannot be decoded is returned as it
// came.
func decodeBody(res *rawhttp.Response, body []byte) []byte {
	dec, coding, err := policy.DecodeContent(res.Values("Content-Encoding"), bytes.NewReader(body))
	if err != nil || coding == "" {
		return body
	}
	out, err := io.ReadAll(io.LimitReader(dec, 64<<10))
	if err != nil && len(out) == 0 {
		return body
	}
	return out
}

// promptLimit is how much of a compressed stream promptDecoder decodes
// from the start again on each read; past it, it decodes as a stream.
const promptLimit = 64 << 10

// decodeStream undoes a stream's content coding as a browser does: what
// each read of raw makes decodable is returned at once, even in the
// middle of a compressed block, so that events are timed on the arrival
// of their bytes. (A plain gzip reader holds a block's output until the
// block ends: through a compressing proxy that is seconds later than a
// browser sees it.)
func decodeStream(values []string, raw io.Reader) (io.Reader, string, error) {
	_, coding, err := policy.DecodeContent(values, raw)
	if err != nil || coding == "" {
		return raw, coding, err
	}
	return &promptDecoder{raw: raw, values: values}, coding, nil
}

// promptDecoder decodes the compressed bytes received so far after each
// read of raw, from the start (flate hands out what it decoded of a
// truncated input), and returns what is new.
type promptDecoder struct {
	raw     io.Reader
	values  []string
	comp    []byte
	out     int // decoded bytes handed out
	pending []byte
	stream  io.Reader // past promptLimit
	err     error
	buf     [16 << 10]byte
}

func (d *promptDecoder) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		switch {
		case d.stream != nil:
			return d.stream.Read(p)
		case d.err != nil:
			return 0, d.err
		}
		n, err := d.raw.Read(d.buf[:])
		d.comp = append(d.comp, d.buf[:n]...)
		if len(d.comp) > promptLimit {
			dec, _, derr := policy.DecodeContent(d.values, io.MultiReader(bytes.NewReader(d.comp), d.raw))
			if derr == nil {
				_, derr = io.CopyN(io.Discard, dec, int64(d.out))
			}
			if derr != nil {
				d.err = derr
				continue
			}
			d.stream, d.comp = dec, nil
			continue
		}
		all, derr := d.decode()
		if len(all) > d.out {
			d.pending, d.out = all[d.out:], len(all)
		}
		if err != nil {
			d.err = err
			if errors.Is(err, io.EOF) && derr != nil && !errors.Is(derr, io.EOF) {
				d.err = derr // a corrupt or truncated coding at a clean end
			}
		}
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// decode decodes what was received so far: everything decodable, and
// the error that stopped it (io.ErrUnexpectedEOF mid-stream).
func (d *promptDecoder) decode() ([]byte, error) {
	dec, _, err := policy.DecodeContent(d.values, bytes.NewReader(d.comp))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(dec)
	if err == nil {
		err = io.EOF
	}
	return out, err
}
